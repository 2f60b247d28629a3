"""Benchmark of the one-way factorized (CP) convolution.

Sections (all measured in the same run, medians of torch.utils.benchmark):

* ``layers``: FactorizedConv2d/3d (leanconv) against the dense nn.Conv2d/3d
  (oneDNN / cuDNN) and tensorly-torch's FactorizedConv with CP at the same
  rank, implementations "factorized" and "reconstructed".  Layers 64->64 and
  128->128 3x3 at 56x56 and 28x28 (N=8), 3-D 32->32 3x3x3 at 32^3 (N=2);
  ranks that give 5x, 10x and 20x fewer weights.  Forward (no grad) and
  forward+backward (input and all parameters need grad) times, weight counts,
  FLOPs relative to dense, peak memory of a forward+backward.
* ``chain``: the fused chain of 1-D filters (``one_way_conv``) against the
  unfused one (one leanconv depthwise convolution per axis) and against
  PyTorch's depthwise F.conv per axis, on the R-channel intermediate.
* ``gemm``: candidate library calls for the channel mixing (C_in -> R), planar
  and channels_last, forward+backward.
* ``decompose``: peak memory (growth of the process's maximum resident set,
  each case in a fresh process) and time of ``FactorizedConv3d.from_conv`` on
  large Conv3d layers, and of tensorly-torch's ``from_conv`` where it fits.

Peak memory, CPU: the PyTorch profiler with ``profile_memory=True`` records
every allocation and free made through PyTorch's CPU allocator (tensors, saved
activations, gradients, oneDNN scratch that PyTorch allocates); the peak is
the largest running sum of those events over one forward+backward, i.e. the
memory beyond the input and the parameters that existed before.  Memory that
a library mallocs on its own (e.g. MKL's GEMM packing buffers) is not seen;
tracemalloc would see none of it.  GPU: torch.cuda.max_memory_allocated()
minus the memory allocated before the step.
"""
from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import environment, returns_exit_code, write_report

__all__ = ["main", "LAYERS", "COMPRESSIONS"]


@dataclass(frozen=True)
class Layer:
    name: str
    dims: int
    batch: int
    channels: int
    size: int
    kernel: int = 3

    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.channels) + (self.size,) * self.dims

    def rank_for(self, compression: float) -> int:
        dense = self.channels**2 * self.kernel**self.dims
        per_rank = 2 * self.channels + self.dims * self.kernel + 1
        return max(1, math.floor(dense / compression / per_rank))

    def dense_flops(self) -> float:
        return 2.0 * self.batch * self.size**self.dims * self.channels**2 * self.kernel**self.dims

    def cp_flops(self, rank: int) -> float:
        points = self.batch * self.size**self.dims
        return 2.0 * points * rank * (2 * self.channels + self.dims * self.kernel)


LAYERS = [
    Layer("2d 64->64 3x3 56x56 N=8", 2, 8, 64, 56),
    Layer("2d 64->64 3x3 28x28 N=8", 2, 8, 64, 28),
    Layer("2d 128->128 3x3 56x56 N=8", 2, 8, 128, 56),
    Layer("2d 128->128 3x3 28x28 N=8", 2, 8, 128, 28),
    Layer("3d 32->32 3x3x3 32^3 N=2", 3, 2, 32, 32),
]
COMPRESSIONS = [5, 10, 20]


# ------------------------------------------------------------------ measuring
_TIMER = {"clock": None}  # None: wall clock (torch.utils.benchmark's default)


def median_ms(fn, min_run_time: float) -> float:
    """Median time of ``fn()`` in ms; with ``--cpu-time`` the process's CPU time, which
    on a machine shared with other jobs does not count the time spent waiting for a core."""
    import torch.utils.benchmark as tbench

    kw = {"timer": _TIMER["clock"]} if _TIMER["clock"] is not None else {}
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(), **kw)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory_bytes(step, device: str) -> int:
    """Peak bytes allocated by ``step()`` beyond what was live before it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def _fwd_bwd(module: nn.Module, x: torch.Tensor, gy: torch.Tensor):
    params = [p for p in module.parameters() if p.requires_grad]

    def step():
        y = module(x)
        grads = torch.autograd.grad(y, [x, *params], gy)
        del y, grads

    return step


def measure(module: nn.Module, x: torch.Tensor, device: str, min_run_time: float) -> dict:
    with torch.no_grad():
        y = module(x)
    gy = torch.randn_like(y)
    xg = x.detach().requires_grad_()
    step = _fwd_bwd(module, xg, gy)

    def fwd():
        with torch.no_grad():
            module(x)
        _sync(device)

    def train():
        step()
        _sync(device)

    train()  # warm-up (oneDNN primitive creation, CUDA plans)
    return {
        "fwd_ms": median_ms(fwd, min_run_time),
        "fwd_bwd_ms": median_ms(train, min_run_time),
        "peak_mb": peak_memory_bytes(step, device) / 2**20,
    }


# ------------------------------------------------------------------ section: layers
def _tltorch_layer(layer: Layer, rank: int, implementation: str, device: str):
    import tltorch

    m = tltorch.FactorizedConv(
        layer.channels, layer.channels, layer.kernel, order=layer.dims, padding=layer.kernel // 2, bias=True,
        factorization="cp", rank=rank, implementation=implementation,
    )
    m.reset_parameters()  # tensorly-torch leaves the factors uninitialized otherwise
    return m.to(device)


def bench_layers(layers, compressions, device, min_run_time, with_tltorch):
    from leanconv.nn import FactorizedConv2d, FactorizedConv3d

    rows = []
    for layer in layers:
        torch.manual_seed(0)
        x = torch.randn(layer.input_shape(), device=device)
        dense_cls = nn.Conv2d if layer.dims == 2 else nn.Conv3d
        dense = dense_cls(layer.channels, layer.channels, layer.kernel, padding=layer.kernel // 2).to(device)
        d = measure(dense, x, device, min_run_time)
        dense_params = sum(p.numel() for p in dense.parameters())
        rows.append({"layer": layer.name, "compression": 1, "rank": None, "impl": "dense nn.Conv", **d,
                     "params": dense_params, "flops_vs_dense": 1.0})
        print(f"{layer.name}: dense fwd {d['fwd_ms']:.2f} ms, fwd+bwd {d['fwd_bwd_ms']:.2f} ms", flush=True)
        cls = FactorizedConv2d if layer.dims == 2 else FactorizedConv3d
        for comp in compressions:
            rank = layer.rank_for(comp)
            flops = layer.cp_flops(rank) / layer.dense_flops()
            impls = {"leanconv": cls(layer.channels, layer.channels, layer.kernel, padding=layer.kernel // 2,
                                     rank=rank).to(device)}
            if with_tltorch:
                for impl in ("factorized", "reconstructed"):
                    impls[f"tltorch {impl}"] = _tltorch_layer(layer, rank, impl, device)
            results, lc_row = {}, None
            for name, module in impls.items():
                r = measure(module, x, device, min_run_time)
                results[name] = r
                row = {"layer": layer.name, "compression": comp, "rank": rank, "impl": name, **r,
                       "params": sum(p.numel() for p in module.parameters()), "flops_vs_dense": flops,
                       "speedup_fwd_bwd_vs_dense": d["fwd_bwd_ms"] / r["fwd_bwd_ms"]}
                rows.append(row)
                lc_row = row if name == "leanconv" else lc_row
            if "tltorch factorized" in results:
                tf, lc = results["tltorch factorized"], results["leanconv"]
                lc_row["speedup_fwd_bwd_vs_tltorch_factorized"] = tf["fwd_bwd_ms"] / lc["fwd_bwd_ms"]
                lc_row["speedup_fwd_vs_tltorch_factorized"] = tf["fwd_ms"] / lc["fwd_ms"]
            print(f"  {comp}x (R={rank}): " + ", ".join(
                f"{n} {r['fwd_ms']:.2f}/{r['fwd_bwd_ms']:.2f} ms {r['peak_mb']:.0f} MB" for n, r in results.items()),
                flush=True)
    return rows


# ------------------------------------------------------------------ section: chain
def bench_chain(layers, compressions, device, min_run_time):
    from leanconv.ops import one_way_conv, one_way_conv_unfused

    def torch_per_axis(t, filters, scale):
        n = t.dim() - 2
        conv = F.conv2d if n == 2 else F.conv3d
        y = t
        for axis in reversed(range(n)):
            f = filters[axis] * scale[:, None] if axis == 0 else filters[axis]
            shape = [1] * n
            shape[axis] = f.shape[1]
            pad = [0] * n
            pad[axis] = f.shape[1] // 2
            y = conv(y, f.reshape(f.shape[0], 1, *shape), None, 1, pad, 1, t.shape[1])
        return y

    impls = {
        "fused one_way_conv": lambda t, fs, s: one_way_conv(t, fs, s, padding=1),
        "unfused (leanconv depthwise per axis)": lambda t, fs, s: one_way_conv_unfused(t, fs, s, padding=1),
        "PyTorch depthwise F.conv per axis": torch_per_axis,
    }
    rows = []
    for layer in layers:
        for comp in compressions:
            rank = layer.rank_for(comp)
            torch.manual_seed(0)
            shape = (layer.batch, rank) + (layer.size,) * layer.dims
            t = torch.randn(shape, device=device)
            fs = [torch.randn(rank, layer.kernel, device=device, requires_grad=True) for _ in range(layer.dims)]
            s = torch.randn(rank, device=device, requires_grad=True)
            gy = torch.randn(shape, device=device)
            base = None
            for name, fn in impls.items():
                tg = t.detach().requires_grad_()

                def fwd(fn=fn):
                    with torch.no_grad():
                        fn(t, fs, s)
                    _sync(device)

                def step(fn=fn, tg=tg):
                    torch.autograd.grad(fn(tg, fs, s), [tg, *fs, s], gy)
                    _sync(device)

                step()
                r = {"fwd_ms": median_ms(fwd, min_run_time), "fwd_bwd_ms": median_ms(step, min_run_time)}
                if base is None:
                    base = r
                rows.append({"layer": layer.name, "rank": rank, "impl": name, **r,
                             "fused_speedup_fwd": r["fwd_ms"] / base["fwd_ms"],
                             "fused_speedup_fwd_bwd": r["fwd_bwd_ms"] / base["fwd_bwd_ms"]})
            print(f"chain {layer.name} R={rank}: " + ", ".join(
                f"{row['impl']} {row['fwd_ms']:.2f}/{row['fwd_bwd_ms']:.2f} ms" for row in rows[-len(impls):]),
                flush=True)
    return rows


# ------------------------------------------------------------------ section: gemm
def bench_gemm(layers, compressions, device, min_run_time):
    rows = []
    for layer in [la for la in layers if la.dims == 2]:
        rank = layer.rank_for(compressions[len(compressions) // 2])
        torch.manual_seed(0)
        x = torch.randn(layer.input_shape(), device=device)
        xcl = x.contiguous(memory_format=torch.channels_last)
        w = torch.randn(layer.channels, rank, device=device, requires_grad=True)
        n, c = x.shape[:2]
        cands = {
            "torch.bmm, factor expanded over N, planar (used)": (
                x, lambda x: torch.bmm(w.t().unsqueeze(0).expand(n, rank, c), x.reshape(n, c, -1))),
            "torch.matmul (R,C)@(N,C,HW) planar": (x, lambda x: torch.matmul(w.t(), x.reshape(n, c, -1))),
            "F.conv1d 1x1 planar": (x, lambda x: F.conv1d(x.reshape(n, c, -1), w.t().unsqueeze(2))),
            "F.conv2d 1x1 planar": (x, lambda x: F.conv2d(x, w.t().reshape(rank, c, 1, 1))),
            "F.conv2d 1x1 channels_last": (xcl, lambda x: F.conv2d(x, w.t().reshape(rank, c, 1, 1))),
            "torch.mm (NHW,C)@(C,R) channels_last": (xcl, lambda x: torch.mm(x.permute(0, 2, 3, 1).reshape(-1, c), w)),
        }
        for name, (inp, fn) in cands.items():
            xg = inp.detach().requires_grad_()
            gy = torch.randn_like(fn(inp))

            def step(fn=fn, xg=xg, gy=gy):
                torch.autograd.grad(fn(xg), [xg, w], gy)
                _sync(device)

            def fwd(fn=fn, inp=inp):
                with torch.no_grad():
                    fn(inp)
                _sync(device)

            rows.append({"layer": layer.name, "rank": rank, "impl": name,
                         "fwd_ms": median_ms(fwd, min_run_time), "fwd_bwd_ms": median_ms(step, min_run_time)})
        print(f"gemm {layer.name} R={rank}: " + ", ".join(
            f"{r['impl']} {r['fwd_ms']:.2f}/{r['fwd_bwd_ms']:.2f} ms" for r in rows[-len(cands):]), flush=True)
    return rows


# ------------------------------------------------------------------ section: decompose
DECOMPOSE_CASES = [
    # (in, out, k, ratio, n_iter_max, which)
    (256, 128, 3, 0.1, 3, "leanconv"),
    (256, 128, 3, 0.1, 3, "tltorch"),
    (1024, 512, 3, 0.1, 3, "leanconv"),
]


def _child() -> None:
    """Runs one from_conv in this (fresh) process and prints a JSON line."""
    import json
    import resource
    import sys
    import time

    import tensorly  # noqa: F401  (imports and library start-up are not the decomposition's memory)

    from leanconv.nn import FactorizedConv3d
    from leanconv.nn.factorized import resolve_rank

    cin, cout, k, ratio, iters, which = json.loads(sys.argv[1])

    def run(conv, rank):
        if which == "leanconv":
            m = FactorizedConv3d.from_conv(conv, rank, n_iter_max=iters, tol=0)
            return (m.weight - conv.weight).norm() / conv.weight.norm()
        import tltorch

        m = tltorch.FactorizedConv.from_conv(conv, rank=rank, factorization="cp", implementation="factorized",
                                             decomposition_kwargs={"n_iter_max": iters})
        return (m.weight.to_tensor() - conv.weight).norm() / conv.weight.norm()

    with torch.no_grad():
        run(nn.Conv3d(8, 8, k), 4)  # warm-up: loads LAPACK/MKL paths and tltorch
    torch.manual_seed(0)
    conv = nn.Conv3d(cin, cout, k)
    rank = resolve_rank(ratio, cin, cout, (k,) * 3)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with torch.no_grad():
        rel = run(conv, rank).item()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_growth_mb": (peak - base) / 1024, "kernel_mb": conv.weight.numel() * 4 / 2**20,
                      "rank": rank, "seconds": seconds, "rel_error": rel}))


def bench_decompose(max_khatri_rao_gb: float = 4.0):
    import json
    import subprocess
    import sys

    rows = []
    for cin, cout, k, ratio, iters, which in DECOMPOSE_CASES:
        from leanconv.nn.factorized import resolve_rank

        rank = resolve_rank(ratio, cin, cout, (k,) * 3)
        # tensorly's default MTTKRP forms a (C_out*C_in*k^2) x R Khatri-Rao product for a spatial mode
        kr_gb = cout * cin * k * k * rank * 4 / 2**30
        row = {"layer": f"Conv3d {cin}->{cout} k={k}", "impl": which, "rank": rank, "iterations": iters,
               "khatri_rao_gb_tensorly_default": kr_gb}
        if which == "tltorch" and kr_gb > max_khatri_rao_gb:
            row["note"] = f"skipped: would need > {kr_gb:.1f} GB"
            rows.append(row)
            continue
        code = "from leanconv.bench.factorized import _child; _child()"
        out = subprocess.run([sys.executable, "-c", code, json.dumps([cin, cout, k, ratio, iters, which])],
                             capture_output=True, text=True)
        if out.returncode != 0:
            row["note"] = "failed: " + out.stderr.strip().splitlines()[-1]
        else:
            row.update(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"decompose {row}", flush=True)
        rows.append(row)
    return rows


# ------------------------------------------------------------------ main
SECTIONS = ("layers", "chain", "gemm", "decompose")


def _sections(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SECTIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(SECTIONS)}, got {text!r}")
    return names


def _compressions(text: str) -> list[int]:
    try:
        values = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        values = []
    if not values or any(v < 2 for v in values):
        raise argparse.ArgumentTypeError(f"expected a comma list of integers >= 2 (fewer weights by that factor), "
                                         f"got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    from ..commands import device, int_at_least, positive_float
    from .common import OUT_HELP, parser as make_parser

    parser = make_parser("factorized", __doc__.split("\n\n")[0])
    parser.add_argument("--device", type=device, default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--sections", type=_sections, default="layers,chain,gemm",
                        help="comma list of layers, chain, gemm, decompose (decompose: minutes, several GB)")
    parser.add_argument("--layers", default="", help="only layers whose name contains one of these comma-separated words")
    parser.add_argument("--compressions", type=_compressions, default=",".join(map(str, COMPRESSIONS)))
    parser.add_argument("--min-run-time", type=positive_float, default=0.5, help="seconds of timing per measurement")
    parser.add_argument("--no-tltorch", action="store_true", help="skip the tensorly-torch baselines")
    parser.add_argument("--threads", type=int_at_least(0), default=0,
                        help="torch.set_num_threads for the run (0: leave torch's default); 1 gives steadier "
                             "figures on a loaded machine")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU time instead of the wall clock (CPU, one thread: "
                             "steady figures on a machine shared with other jobs)")
    parser.add_argument("--quick", action="store_true", help="28x28 and 3-D layers at 10x only, short timings")
    parser.add_argument("--out", default=None, help=OUT_HELP)
    return parser


@returns_exit_code
def main(argv=None) -> int:
    from .common import results_dir

    parser = build_parser()
    args = parser.parse_args(argv)
    threads = args.threads if args.threads > 0 else torch.get_num_threads()
    if args.cpu_time and (args.device != "cpu" or threads != 1):
        parser.error("--cpu-time needs --device cpu and --threads 1")
    try:
        out = results_dir(args.out)
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.cpu_time:
        import time

        _TIMER["clock"] = time.process_time
    layers = LAYERS
    compressions = args.compressions
    min_run_time = args.min_run_time
    if args.quick:
        layers = [la for la in LAYERS if "28x28" in la.name or la.dims == 3]
        compressions, min_run_time = [10], min(min_run_time, 0.2)
    if args.layers:
        words = [w.strip() for w in args.layers.split(",") if w.strip()]
        layers = [la for la in layers if any(w in la.name for w in words)]
    with_tltorch = not args.no_tltorch
    if with_tltorch:
        try:
            import tltorch  # noqa: F401
        except ImportError:
            print("tensorly-torch is not installed: its baselines are skipped (pip install tensorly-torch)")
            with_tltorch = False
    sections = args.sections
    env = environment(args.device)
    env["clock"] = "process CPU time" if args.cpu_time else "wall"
    suffix = "" if args.device == "cpu" else f"_{args.device.replace(':', '')}"
    for section in sections:
        if section == "layers":
            rows = bench_layers(layers, compressions, args.device, min_run_time, with_tltorch)
            cols = ["layer", "compression", "rank", "impl", "params", "flops_vs_dense", "fwd_ms", "fwd_bwd_ms",
                    "peak_mb", "speedup_fwd_bwd_vs_dense", "speedup_fwd_bwd_vs_tltorch_factorized",
                    "speedup_fwd_vs_tltorch_factorized"]
            notes = ("Forward: no grad. fwd+bwd: grads of input and all parameters. peak_mb: peak memory of one "
                     "fwd+bwd beyond input and parameters (CPU: PyTorch profiler allocation events; GPU: "
                     "max_memory_allocated). speedups > 1 mean leanconv is faster.")
        elif section == "chain":
            rows = bench_chain(layers, compressions, args.device, min_run_time)
            cols = ["layer", "rank", "impl", "fwd_ms", "fwd_bwd_ms", "fused_speedup_fwd", "fused_speedup_fwd_bwd"]
            notes = ("The chain of 1-D filters on the (N, R, ...) intermediate, padding 1. fused_speedup_*: time of "
                     "this row / time of the fused kernel (> 1: the fused kernel is faster).")
        elif section == "decompose":
            rows = bench_decompose()
            cols = ["layer", "impl", "rank", "iterations", "kernel_mb", "peak_growth_mb",
                    "khatri_rao_gb_tensorly_default", "seconds", "rel_error", "note"]
            notes = ("Peak memory of from_conv = growth of the process's max resident set (fresh process per "
                     "row). ALS iterations are capped (memory per iteration is constant). "
                     "khatri_rao_gb_tensorly_default: size of the Khatri-Rao product tensorly's default MTTKRP "
                     "forms for a spatial mode, which leanconv's chunked MTTKRP never forms.")
        elif section == "gemm":
            rows = bench_gemm(layers, compressions, args.device, min_run_time)
            cols = ["layer", "rank", "impl", "fwd_ms", "fwd_bwd_ms"]
            notes = "Channel mixing C_in -> R candidates (the first 1x1 step), at the 10x rank."
        else:  # pragma: no cover  (refused by the parser)
            raise AssertionError(section)
        json_path, md_path = write_report(f"factorized_{section}{suffix}", env, rows, out, cols, notes)
        print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
