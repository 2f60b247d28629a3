"""Work-precision of the wave schemes on the main job's problem (``leanconv bench wave --work-precision``).

The problem is the demo data set's as it was made with Q1 (the one the
simulator issue compared with Devito on): 257 x 257 nodes (velocity models
drawn there), reflecting walls, one to three Gaussian pulses at rest,
frames every 1/64 time units (41 frames) compared on the 33 x 33 frame nodes;
its last ``--trajectories`` trajectories (velocity models and pulses drawn
from the data set's seed).  Every configuration - a scheme (``q1``, ``fd4``),
a grid (the velocity sampled at its nodes; on a grid finer than 257 the
bilinear interpolant of the 257-node model), a number of steps per frame
interval (the largest time step at a target Courant number) and a precision -
runs the batch from the pulses at t = 0 and is scored against one fine
reference (``fd4``, float64, ``--reference-grid`` nodes, Courant 0.5): PDEBench
nRMSE at frame 10 and at the last frame, averaged over the trajectories.
Costs are per trajectory and frame interval on the whole batch, timed in
interleaved rounds.  The report gives, for each accuracy level, the cheapest
configuration of each scheme that reaches it and the ratio of their costs,
and a work-precision plot (cost against nRMSE@10, log-log).

Devito (an optional benchmark extra, :mod:`leanconv.bench.wave_devito`), the
finite-difference code seismic users would pick, runs the same problem in the
same rounds when it is installed (``--devito auto``, the default): time order
2, space orders 2, 4 and 8, one compiled operator per configuration (compile
time excluded), one trajectory per call; the report then also gives, per
level, Devito's cheapest configuration and its cost over the project's
cheapest (above 1: leanconv is cheaper).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..commands import int_at_least, nonnegative_float
from .common import OUT_HELP, environment, paired_rounds, parser, results_dir, write_report

__all__ = ["Config", "main", "build_parser", "cheapest_by_level"]

LEVELS = (5e-2, 2e-2, 1e-2, 5e-3, 2e-3, 1.3e-3, 1e-3, 5e-4, 3e-4)


@dataclass(frozen=True)
class Config:
    """One solver configuration: ``scheme`` (``q1``, ``fd4`` or ``devito``), nodes per side, Courant
    number (a fraction of the scheme's own stability limit), precision, and Devito's space order."""

    scheme: str
    grid: int
    courant: float
    dtype: str = "float32"
    order: int = 0

    @property
    def label(self) -> str:
        name = f"devito-o{self.order}" if self.scheme == "devito" else self.scheme
        return f"{name} {self.grid} C{self.courant:g} {self.dtype.replace('float', 'f')}"


PROJECT = ("q1", "fd4")  # the project's schemes
DEFAULT_CONFIGS = (
    *[Config("q1", g, 0.5) for g in (33, 65, 129, 257)],
    Config("q1", 513, 0.5, "float64"),
    *[Config("fd4", g, c) for g in (33, 65, 129, 257) for c in (0.95, 0.5)],
    Config("fd4", 513, 0.95), Config("fd4", 513, 0.95, "float64"),
)
DEVITO_CONFIGS = (
    *[Config("devito", g, 0.9, order=o) for g in (33, 65, 129, 257) for o in (2, 4, 8)],
    *[Config("devito", g, 0.5, order=o) for g in (129, 257) for o in (4, 8)],
    Config("devito", 257, 0.25, "float64", order=4), Config("devito", 513, 0.9, order=4),
    Config("devito", 513, 0.5, "float64", order=8),
)
QUICK_CONFIGS = (Config("q1", 9, 0.5), Config("q1", 17, 0.5), Config("fd4", 9, 0.9), Config("fd4", 17, 0.9))
QUICK_DEVITO = (Config("devito", 17, 0.9, order=4),)


def _problem(quick: bool):
    from ..surrogate.demo import DemoConfig
    from ..wave import DatasetConfig

    d = DemoConfig()
    if quick:
        return DatasetConfig(grid=17, steps=32, every=4, coarsen=2, pulse_width=(2.0, 3.0), media=d.media), 12
    # the problem of the simulator issue's comparison: the demo's data set as it was made before the demo
    # moved to the fd4 scheme (velocity models drawn on 257 x 257 nodes, Q1, 640 steps)
    return DatasetConfig(grid=257, steps=640, every=16, coarsen=8, pulse_width=(16.0, 28.0), media=d.media), 160


def _fields(config: Any, grid: int, velocity: np.ndarray, draws: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """The velocity models and the initial pulses on a grid of ``grid`` nodes per side (float64)."""
    from ..wave import Grid, gaussian_pulses

    c = torch.from_numpy(velocity).double()
    n = config.grid
    if (n - 1) % (grid - 1) == 0:
        k = (n - 1) // (grid - 1)
        c = c[:, ::k, ::k]
    else:  # finer than the data set's grid: the bilinear interpolant of its nodal model
        c = torch.nn.functional.interpolate(c[:, None], size=(grid, grid), mode="bilinear", align_corners=True)[:, 0]
    mesh = Grid.for_shape((grid, grid), 1.0 / (grid - 1))
    u0 = np.stack([gaussian_pulses(mesh, s["centers"], s["widths"], s["amplitudes"])[0] for s in draws])
    return c.contiguous(), torch.from_numpy(u0)


def _steps_per_interval(config: Any, scheme: str, grid: int, courant: float, c_max: float) -> int:
    from ..wave.fd4 import stable_dt_fd4
    from ..wave.grid import stable_dt

    h = 1.0 / (grid - 1)
    limit = (stable_dt if scheme == "q1" else stable_dt_fd4)(h, h, c_max)
    return max(1, math.ceil(config.snapshot_dt / (courant * limit) - 1e-9))


def frames_call(config: Any, cfg: Config, velocity: np.ndarray, draws: list[dict], frame_grid: int):
    """A function running the configuration on the batch, returning its frames on the frame nodes
    ``(B, T, f, f)`` (float64), and the steps per interval."""
    from ..wave import WaveSolver

    c, u0 = _fields(config, cfg.grid, velocity, draws)
    s = (cfg.grid - 1) // (frame_grid - 1)
    if cfg.scheme == "devito":
        from . import wave_devito

        return wave_devito.frames_call(cfg.grid, cfg.order, cfg.courant, cfg.dtype, c, u0, config.snapshot_dt,
                                       config.frames, s, config.c_max)
    m = _steps_per_interval(config, cfg.scheme, cfg.grid, cfg.courant, config.c_max)
    dtype = getattr(torch, cfg.dtype)
    solver = WaveSolver(c, spacing=1.0 / (cfg.grid - 1), dt=config.snapshot_dt / m, boundary=config.boundary,
                        scheme=cfg.scheme, dtype=dtype)
    intervals = config.frames - 1

    def run() -> torch.Tensor:
        out = [u0[:, ::s, ::s].double()]
        prev, now = u0.to(dtype), solver.first_step(u0)
        if m > 1:
            prev, now = solver.march(prev, now, m - 1)
        out.append(now[:, ::s, ::s].double())
        for _ in range(intervals - 1):
            prev, now = solver.march(prev, now, m)
            out.append(now[:, ::s, ::s].double())
        return torch.stack(out, dim=1)

    return run, m


def cheapest_by_level(rows: list[dict], key: str, levels=LEVELS) -> list[dict]:
    """For each accuracy level: the cheapest configuration of each scheme with ``key`` <= level,
    and the ratio of their costs (q1 / fd4: above 1, fd4 is cheaper).  With Devito rows also the
    project's cheapest (``leanconv``, either scheme) and ``devito_over_leanconv`` (above 1: leanconv
    is cheaper)."""
    families = {"q1": ("q1",), "fd4": ("fd4",)}
    if any(r["scheme"] == "devito" for r in rows):
        families.update(leanconv=PROJECT, devito=("devito",))

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    out = []
    for level in levels:
        row: dict[str, Any] = {"level": level, "metric": key}
        for family, schemes in families.items():
            ok = [r for r in rows if r["scheme"] in schemes and r[key] <= level]
            best = min(ok, key=lambda r: r["ms"]) if ok else None
            row[f"{family}_config"] = best["config"] if best else None
            row[f"{family}_ms"] = best["ms"] if best else None
        row["q1_over_fd4"] = ratio(row["q1_ms"], row["fd4_ms"])
        if "devito" in families:
            row["devito_over_leanconv"] = ratio(row["devito_ms"], row["leanconv_ms"])
        out.append(row)
    return out


def plot(rows: list[dict], path: Path, key: str = "nrmse@10") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for scheme, marker in (("q1", "o"), ("fd4", "s"), ("devito", "^")):
        pts = sorted((r[key], r["ms"], r["config"]) for r in rows if r["scheme"] == scheme)
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, ls="", label=scheme)
        for e, ms, label in pts:
            ax.annotate(label.split(" ", 1)[1] if scheme != "devito" else label[7:], (e, ms), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"{key} (nRMSE against the fine reference)")
    ax.set_ylabel("ms per trajectory and frame interval")
    ax.set_title("Work-precision on the main job's problem")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = parser("wave --work-precision", __doc__.split("\n\n")[0])
    p.add_argument("--trajectories", type=int_at_least(1), default=32, help="the data set's last N (default 32)")
    p.add_argument("--reference-grid", type=int_at_least(3), default=513,
                   help="nodes per side of the fd4 float64 reference (default 513)")
    p.add_argument("--min-time", type=nonnegative_float, default=0.0,
                   help="seconds the slowest configuration runs at least (after 3 interleaved rounds)")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="torch threads")
    p.add_argument("--devito", choices=["auto", "yes", "no"], default="auto",
                   help="run Devito's configurations too: auto (default) when it is installed")
    p.add_argument("--quick", action="store_true", help="a tiny problem (smoke test)")
    p.add_argument("--out", default=None, help=OUT_HELP)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..wave.generate import initial_conditions

    args = build_parser().parse_args(argv)
    out = results_dir(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    config, samples = _problem(args.quick)
    from . import wave_devito

    if args.devito == "yes" and not wave_devito.available():
        raise SystemExit("--devito yes: Devito is not installed (pip install devito)")
    devito = args.devito == "yes" or (args.devito == "auto" and wave_devito.available())
    configs = (QUICK_CONFIGS if args.quick else DEFAULT_CONFIGS) + (
        (QUICK_DEVITO if args.quick else DEVITO_CONFIGS) if devito else ())
    ref_grid = 33 if args.quick else args.reference_grid
    n = min(args.trajectories, samples)
    indices = list(range(samples - n, samples))
    velocity, _, draws = initial_conditions(config, 0, indices)
    frame_grid = config.frame_grid
    env = environment("cpu")
    env.update(problem=f"demo data set, trajectories {indices[0]}..{indices[-1]}", reference=f"fd4 {ref_grid} "
               "float64 C0.5", frames=config.frames, **(wave_devito.describe() if devito else {}))
    print(", ".join(f"{k}: {v}" for k, v in env.items()))
    ref_run, ref_m = frames_call(config, Config("fd4", ref_grid, 0.5, "float64"), velocity, draws, frame_grid)
    reference = ref_run()
    calls, frames, steps = {}, {}, {}
    for cfg in tqdm(configs, desc="accuracy", disable=None):
        calls[cfg.label], steps[cfg.label] = frames_call(config, cfg, velocity, draws, frame_grid)
        frames[cfg.label] = calls[cfg.label]()  # also the warm-up
    times = paired_rounds(calls, args.min_time, min_rounds=3)
    intervals = config.frames - 1
    rows = []
    last = config.frames - 1
    k10 = min(10, last)
    for cfg in configs:
        f = frames[cfg.label]
        err = torch.linalg.vector_norm(f - reference, dim=(2, 3)) / torch.linalg.vector_norm(reference, dim=(2, 3))
        ms = float(np.median(times[cfg.label])) * 1e3 / (n * intervals)
        rows.append({"config": cfg.label, "scheme": cfg.scheme, "grid": cfg.grid, "dtype": cfg.dtype,
                     "courant": cfg.courant, "order": cfg.order or None, "steps_per_interval": steps[cfg.label],
                     "ms": ms, "ms_best": float(np.min(times[cfg.label])) * 1e3 / (n * intervals),
                     f"nrmse@{k10}": float(err[:, k10].mean()), f"nrmse@{last}": float(err[:, last].mean())})
        print(f"{cfg.label:>22}: {ms:8.4f} ms, nRMSE@{k10} {rows[-1][f'nrmse@{k10}']:.3g}, @{last} "
              f"{rows[-1][f'nrmse@{last}']:.3g} ({steps[cfg.label]} steps per interval)")
    levels = cheapest_by_level(rows, f"nrmse@{k10}") + (cheapest_by_level(rows, f"nrmse@{last}") if last != k10 else [])
    def ms(v):
        return "-" if v is None else f"{v:.4g} ms"

    def x(v):
        return "-" if v is None else f"{v:.2f}x"

    for r in levels:
        line = (f"{r['metric']} <= {r['level']:g}: q1 {r['q1_config']} ({ms(r['q1_ms'])}), fd4 {r['fd4_config']} "
                f"({ms(r['fd4_ms'])}), q1/fd4 {x(r['q1_over_fd4'])}")
        if devito:
            line += (f"; devito {r['devito_config']} ({ms(r['devito_ms'])}), devito/leanconv "
                     f"{x(r['devito_over_leanconv'])}")
        print(line)
    from .._report import markdown_table

    out.mkdir(parents=True, exist_ok=True)
    png = plot(rows, out / ("wave-work-precision" + ("-quick" if args.quick else "") + ".png"), f"nrmse@{k10}")
    notes = (f"Reference: fd4, {ref_grid} nodes, float64, Courant 0.5 ({ref_m} steps per interval). ms: per "
             f"trajectory and frame interval, batch of {n}, median of {len(next(iter(times.values())))} "
             "interleaved rounds. Cheapest configuration per accuracy level (q1_over_fd4 > 1: fd4 is "
             "cheaper" + ("; devito_over_leanconv > 1: the project's cheapest beats Devito's" if devito else "")
             + f"):\n\n{markdown_table(levels)}\nPlot: {png.name}")
    name = "wave-work-precision" + ("-quick" if args.quick else "")
    json_path, md_path = write_report(name, env, rows, out, None, notes)
    print(f"wrote {json_path}, {md_path} and {png}")
    return 0
