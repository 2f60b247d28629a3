"""Wave solver benchmark: cell updates per second of the fast path against a sparse mat-vec loop.

For each grid (nodes per side) and batch size, one velocity model per batch
item is stepped by

* ``kernel``: :class:`leanconv.wave.WaveSolver` with leanconv's compiled op
  ``wave_step_`` (fused, in place, all steps of an item in cache),
* ``torch``: the same solver stepping with plain torch ops, and
* ``sparse``: the same scheme with the operators assembled by scikit-fem and
  one scipy ``csr @ dense(N, B)`` product plus diagonal scalings per step
  (:class:`leanconv.wave.reference.ReferenceSolver`) - the plain loop.

Both run in the same process, in the same precision, on the same boundary
(reflecting by default); a "cell update" is one node advanced by one step.
Optionally (``--generation``) it also times making data sets in memory.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from ..commands import device, int_at_least, nonnegative_float
from .common import OUT_HELP, environment, paired_rounds, parser, results_dir, returns_exit_code, write_report

DEFAULT_GRIDS = (64, 128, 256, 512)
DEFAULT_BATCHES = (1, 64)


def _steps_for(cells: int) -> int:
    """Steps per timed call: about 5e8 cell updates, between 20 and 1000 steps (amortises copying the state in and out)."""
    return int(min(1000, max(20, 5e8 // cells)))


def fast_call(n: int, batch: int, dtype: torch.dtype, device: str, boundary: str, backend: str, steps: int):
    """A function marching ``steps`` steps of WaveSolver (nothing stored) on ``batch`` models."""
    from leanconv.wave import WaveSolver

    g = torch.Generator().manual_seed(0)
    c = (1.0 + torch.rand(batch, n, n, generator=g, dtype=torch.float64))
    solver = WaveSolver(c, boundary=boundary, dtype=dtype, device=device, backend=backend)
    u0 = torch.randn(batch, n, n, generator=g).to(device=device, dtype=dtype)
    u1 = solver.first_step(u0)
    solver.march(u0, u1, 2)  # warm-up (allocations, caches, CUDA context)
    return lambda: solver.march(u0, u1, steps)


def sparse_call(n: int, batch: int, dtype: Any, boundary: str, steps: int):
    """A function running ``steps`` steps of the scikit-fem/scipy loop on ``batch`` models."""
    from leanconv.wave.reference import ReferenceSolver

    rng = np.random.default_rng(0)
    ref = ReferenceSolver(1.0 + rng.random((n, n)), boundary=boundary, dtype=dtype).repeat(batch)
    cols = (lambda a: a.reshape(batch, -1).T.copy()) if batch > 1 else (lambda a: a.reshape(-1))
    u_prev = cols(rng.standard_normal((batch, n, n)).astype(dtype))
    u_now = cols(rng.standard_normal((batch, n, n)).astype(dtype))
    if batch == 1:  # plain vectors, as a single-model loop would hold them
        ref._m_dt2, ref._inv_lhs, ref._c_2dt = (x[:, 0] for x in (ref._m_dt2, ref._inv_lhs, ref._c_2dt))

    def loop() -> None:
        a, b = u_prev, u_now
        for _ in range(steps):
            a, b = b, ref.step_cols(a, b)

    ref.step_cols(u_prev, u_now)  # warm-up
    return loop


def time_generation(grid: int, samples: int, steps: int, every: int, device: str) -> float:
    """Seconds to simulate a data set of ``samples`` trajectories in memory."""
    from leanconv.wave import DatasetConfig, generate

    config = DatasetConfig(grid=grid, steps=steps, every=every)
    generate(config, 2, seed=1, device=device)  # warm-up
    t0 = time.perf_counter()
    generate(config, samples, seed=0, device=device)
    return time.perf_counter() - t0


def build_parser() -> argparse.ArgumentParser:
    p = parser("wave", __doc__.split("\n\n")[0])
    p.add_argument("--grids", type=int_at_least(3), nargs="+", default=list(DEFAULT_GRIDS),
                   help=f"nodes per side, >= 3 (default {' '.join(map(str, DEFAULT_GRIDS))})")
    p.add_argument("--batches", type=int_at_least(1), nargs="+", default=list(DEFAULT_BATCHES))
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", type=device, default="cpu", help="cpu or cuda (the sparse loop always runs on CPU)")
    p.add_argument("--boundary", default="neumann")
    p.add_argument("--backends", nargs="+", default=["kernel", "torch"], choices=["kernel", "torch"],
                   help="solver step implementations to time")
    p.add_argument("--min-time", type=nonnegative_float, default=2.0,
                   help="seconds the slowest implementation runs per case (at least 5 interleaved rounds)")
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="torch threads (default: torch's current setting)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time with the process's CPU time instead of wall time (needs --threads 1, CPU)")
    p.add_argument("--no-sparse", action="store_true", help="skip the sparse baseline (GPU-only sweeps)")
    p.add_argument("--generation", action="store_true", help="also time data-set generation (200 trajectories)")
    p.add_argument("--quick", action="store_true", help="a short run: grids 64 and 128, batches 1 and 8, 0.5 s per case")
    p.add_argument("--work-precision", action="store_true",
                   help="instead: cost against accuracy of the q1 and fd4 schemes on the main job's problem "
                        "(its own options: leanconv bench wave --work-precision --help)")
    p.add_argument("--out", default=None, help=OUT_HELP)
    return p


@returns_exit_code
def main(argv: list[str] | None = None) -> int:
    argv = list(argv) if argv is not None else None
    if argv is not None and "--work-precision" in argv:
        from .wave_accuracy import main as work_precision

        argv.remove("--work-precision")
        return work_precision(argv)
    p = build_parser()
    args = p.parse_args(argv)
    if args.quick:
        if args.grids == list(DEFAULT_GRIDS):
            args.grids = [64, 128]
        if args.batches == list(DEFAULT_BATCHES):
            args.batches = [1, 8]
        args.min_time = min(args.min_time, 0.5)
    try:
        from leanconv.wave.grid import Boundary

        Boundary.parse(args.boundary)
    except ValueError as exc:
        p.error(f"argument --boundary: {exc}")
    threads = args.threads if args.threads is not None else torch.get_num_threads()
    if args.cpu_time and (args.device != "cpu" or threads != 1):
        p.error("--cpu-time needs --device cpu and --threads 1")
    try:
        out = results_dir(args.out)
    except ValueError as exc:
        p.error(str(exc))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.cpu_time else time.perf_counter
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
    dtype = getattr(torch, args.dtype)
    np_dtype = np.float32 if args.dtype == "float32" else np.float64
    from leanconv.wave.solver import _kernel_available

    backends = [b for b in args.backends if b != "kernel" or _kernel_available(torch.device(args.device))]
    if "kernel" in args.backends and "kernel" not in backends:
        print("note: leanconv's compiled wave_step_ op is not available here; timing the torch path only")
    rows = []
    for n in args.grids:
        for batch in args.batches:
            cells = batch * n * n
            steps = _steps_for(cells)
            row = {"grid": f"{n}x{n}", "batch": batch, "device": args.device, "dtype": args.dtype}
            fns = {b: fast_call(n, batch, dtype, args.device, args.boundary, b, steps) for b in backends}
            if not args.no_sparse:
                fns["sparse"] = sparse_call(n, batch, np_dtype, args.boundary, steps)
            rounds = paired_rounds(fns, args.min_time, clock, sync)
            times = {k: np.asarray(v) / steps for k, v in rounds.items()}
            row["rounds"] = len(times[next(iter(times))])
            for k, t in times.items():
                row[f"{k}_Mcells_per_s"] = cells / float(np.median(t)) / 1e6
            if not args.no_sparse:
                for b in backends:
                    ratios = times["sparse"] / times[b]  # within each round: same load on both sides
                    row[f"{b}_vs_sparse"] = float(np.median(ratios))
                    row[f"{b}_vs_sparse_min"] = float(ratios.min())
            rows.append(row)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    notes = ("Million cell updates per second (median over `rounds` interleaved rounds: each round times every "
             "implementation once, so all see the same machine load) of explicit steps; `kernel` / `torch` = "
             "leanconv.wave.WaveSolver with the compiled wave_step_ op / with plain torch ops, "
             "`sparse` = scikit-fem assembly + scipy csr @ dense(N, batch) loop (single-threaded), same run; "
             "`*_vs_sparse` = median over the rounds of the speed ratio within a round, `*_vs_sparse_min` = "
             "its lowest round. "
             f"Boundary {args.boundary}; each batch item has its own velocity model.")
    if args.generation:
        gen_rows = []
        for grid, steps, every in ((32, 200, 5), (64, 400, 10)):
            secs = time_generation(grid, 200, steps, every, args.device)
            gen_rows.append({"grid": grid, "trajectories": 200, "steps": steps, "frames": steps // every + 1,
                             "seconds": secs, "trajectories_per_s": 200 / secs})
            print(f"generation grid={grid} steps={steps}: {secs:.2f} s for 200 trajectories", flush=True)
        from .common import markdown_table

        notes += "\n\nData-set generation in memory (`leanconv.wave.generate`, float32):\n\n" + markdown_table(gen_rows)
    import os

    notes += f"\n\nLoad average (1, 5, 15 min) after the run: {', '.join(f'{x:.1f}' for x in os.getloadavg())}."
    name = "wave" if args.device == "cpu" else f"wave-{args.device.split(':')[0]}"
    if args.cpu_time:
        name += "-cputime"
    env = environment(args.device)
    env["clock"] = "process CPU time" if args.cpu_time else "wall"
    json_path, md_path = write_report(name, env, rows, out, notes=notes)
    print(f"wrote {json_path} and {md_path}")
    return 0
