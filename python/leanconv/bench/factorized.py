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

Peak memory: :func:`leanconv.bench.common.peak_memory_bytes`.
"""
from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.factorized import resolve_rank
from ..ops import one_way_conv, one_way_conv_unfused
from ..ops._geometry import pad_last_first
from .common import Timing, environment, returns_exit_code, select_cases, setup_run, write_report

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
        """The CP rank keeping 1/``compression`` of the dense weights, by FactorizedConv's own rule."""
        return resolve_rank(1 / compression, self.channels, self.channels, (self.kernel,) * self.dims)

    def flops_vs_dense(self, rank: int) -> float:
        """FLOPs of the CP path (two channel GEMMs, the chain of 1-D filters) over the dense layer's."""
        return rank * (2 * self.channels + self.dims * self.kernel) / (self.channels**2 * self.kernel**self.dims)


LAYERS = [
    Layer("2d 64->64 3x3 56x56 N=8", 2, 8, 64, 56),
    Layer("2d 64->64 3x3 28x28 N=8", 2, 8, 64, 28),
    Layer("2d 128->128 3x3 56x56 N=8", 2, 8, 128, 56),
    Layer("2d 128->128 3x3 28x28 N=8", 2, 8, 128, 28),
    Layer("3d 32->32 3x3x3 32^3 N=2", 3, 2, 32, 32),
]
COMPRESSIONS = [5, 10, 20]


def _say(head: str, rows: list[dict]) -> None:
    print(f"{head}: " + ", ".join(
        f"{r['impl']} {r['fwd_ms']:.2f}/{r['fwd_bwd_ms']:.2f} ms" + (f" {r['peak_mb']:.0f} MB" if "peak_mb" in r else "")
        for r in rows), flush=True)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------ section: layers
def _layers_for(layer: Layer, rank: int, device: str, with_tltorch: bool) -> dict[str, nn.Module]:
    """leanconv's factorized layer at ``rank`` and, with ``with_tltorch``, tensorly-torch's two CP layers."""
    from ..nn import FactorizedConv2d, FactorizedConv3d

    cls = FactorizedConv2d if layer.dims == 2 else FactorizedConv3d
    layers = {"leanconv": cls(layer.channels, layer.channels, layer.kernel, padding=layer.kernel // 2, rank=rank)}
    if with_tltorch:
        import tltorch

        for impl in ("factorized", "reconstructed"):
            m = tltorch.FactorizedConv(layer.channels, layer.channels, layer.kernel, order=layer.dims,
                                       padding=layer.kernel // 2, bias=True, factorization="cp", rank=rank,
                                       implementation=impl)
            m.reset_parameters()  # tensorly-torch leaves the factors uninitialized otherwise
            layers[f"tltorch {impl}"] = m
    return {name: m.to(device) for name, m in layers.items()}


def bench_layers(layers, compressions, device, min_run_time, with_tltorch, clock=None):
    timing = Timing(device, min_run_time, clock)
    rows = []
    for layer in layers:
        torch.manual_seed(0)
        x = torch.randn(layer.input_shape(), device=device)
        dense = (nn.Conv2d if layer.dims == 2 else nn.Conv3d)(layer.channels, layer.channels, layer.kernel,
                                                              padding=layer.kernel // 2).to(device)
        d = timing.module(dense, x)
        rows.append({"layer": layer.name, "compression": 1, "rank": None, "impl": "dense nn.Conv", **d,
                     "params": _params(dense), "flops_vs_dense": 1.0})
        print(f"{layer.name}: dense fwd {d['fwd_ms']:.2f} ms, fwd+bwd {d['fwd_bwd_ms']:.2f} ms", flush=True)
        for comp in compressions:
            rank = layer.rank_for(comp)
            group = []
            for name, module in _layers_for(layer, rank, device, with_tltorch).items():
                r = timing.module(module, x)
                group.append({"layer": layer.name, "compression": comp, "rank": rank, "impl": name, **r,
                              "params": _params(module), "flops_vs_dense": layer.flops_vs_dense(rank),
                              "speedup_fwd_bwd_vs_dense": d["fwd_bwd_ms"] / r["fwd_bwd_ms"]})
            lean, tf = group[0], next((r for r in group if r["impl"] == "tltorch factorized"), None)
            if tf is not None:
                lean["speedup_fwd_bwd_vs_tltorch_factorized"] = tf["fwd_bwd_ms"] / lean["fwd_bwd_ms"]
                lean["speedup_fwd_vs_tltorch_factorized"] = tf["fwd_ms"] / lean["fwd_ms"]
            _say(f"  {comp}x (R={rank})", group)
            rows += group
    return rows


# ------------------------------------------------------------------ section: chain
def _torch_depthwise(input, weight, bias, stride, pairs, dilation) -> torch.Tensor:
    """PyTorch's depthwise F.conv2d/3d, called as ``leanconv.ops.depthwise_conv`` ((before, after) pairs)."""
    n = weight.dim() - 2
    if pairs[0::2] != pairs[1::2]:
        input, pairs = F.pad(input, pad_last_first(pairs)), [0] * (2 * n)
    return (F.conv2d if n == 2 else F.conv3d)(input, weight, bias, stride, pairs[0::2], dilation, input.shape[1])


CHAINS = {
    "fused one_way_conv": one_way_conv,
    "unfused (leanconv depthwise per axis)": one_way_conv_unfused,
    "PyTorch depthwise F.conv per axis": functools.partial(one_way_conv_unfused, conv=_torch_depthwise),
}


def bench_chain(layers, compressions, device, min_run_time, clock=None):
    timing = Timing(device, min_run_time, clock)
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
            group = [{"layer": layer.name, "rank": rank, "impl": name,
                      **timing.passes(lambda x, chain=chain: chain(x, fs, s, padding=1), t, [*fs, s], gy)}
                     for name, chain in CHAINS.items()]
            for r in group:
                r["fused_speedup_fwd"] = r["fwd_ms"] / group[0]["fwd_ms"]
                r["fused_speedup_fwd_bwd"] = r["fwd_bwd_ms"] / group[0]["fwd_bwd_ms"]
            _say(f"chain {layer.name} R={rank}", group)
            rows += group
    return rows


# ------------------------------------------------------------------ section: gemm
def _gemm_candidates(x: torch.Tensor, w: torch.Tensor) -> dict:
    """Library calls for the channel mixing ``C -> R`` by ``w`` (C, R): name -> (input, function)."""
    (n, c), rank = x.shape[:2], w.shape[1]
    xcl = x.contiguous(memory_format=torch.channels_last)
    return {
        "torch.bmm, factor expanded over N, planar (used)": (
            x, lambda x: torch.bmm(w.t().unsqueeze(0).expand(n, rank, c), x.reshape(n, c, -1))),
        "torch.matmul (R,C)@(N,C,HW) planar": (x, lambda x: torch.matmul(w.t(), x.reshape(n, c, -1))),
        "F.conv1d 1x1 planar": (x, lambda x: F.conv1d(x.reshape(n, c, -1), w.t().unsqueeze(2))),
        "F.conv2d 1x1 planar": (x, lambda x: F.conv2d(x, w.t().reshape(rank, c, 1, 1))),
        "F.conv2d 1x1 channels_last": (xcl, lambda x: F.conv2d(x, w.t().reshape(rank, c, 1, 1))),
        "torch.mm (NHW,C)@(C,R) channels_last": (xcl, lambda x: torch.mm(x.permute(0, 2, 3, 1).reshape(-1, c), w)),
    }


def bench_gemm(layers, compressions, device, min_run_time, clock=None):
    timing = Timing(device, min_run_time, clock)
    rows = []
    for layer in [la for la in layers if la.dims == 2]:
        rank = layer.rank_for(compressions[len(compressions) // 2])
        torch.manual_seed(0)
        x = torch.randn(layer.input_shape(), device=device)
        w = torch.randn(layer.channels, rank, device=device, requires_grad=True)
        group = [{"layer": layer.name, "rank": rank, "impl": name,
                  **timing.passes(fn, inp, [w], torch.randn_like(fn(inp)))}
                 for name, (inp, fn) in _gemm_candidates(x, w).items()]
        _say(f"gemm {layer.name} R={rank}", group)
        rows += group
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

    from ..nn import FactorizedConv3d

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
@dataclass(frozen=True)
class Plan:
    """What the command line asked for, as the sections take it."""

    layers: list[Layer]
    compressions: list[int]
    device: str
    min_run_time: float
    with_tltorch: bool
    clock: Callable[[], float] | None


@dataclass(frozen=True)
class Section:
    run: Callable[[Plan], list[dict]]
    columns: tuple[str, ...]
    notes: str


SECTIONS = {
    "layers": Section(
        lambda p: bench_layers(p.layers, p.compressions, p.device, p.min_run_time, p.with_tltorch, p.clock),
        ("layer", "compression", "rank", "impl", "params", "flops_vs_dense", "fwd_ms", "fwd_bwd_ms", "peak_mb",
         "speedup_fwd_bwd_vs_dense", "speedup_fwd_bwd_vs_tltorch_factorized", "speedup_fwd_vs_tltorch_factorized"),
        "Forward: no grad. fwd+bwd: grads of input and all parameters. peak_mb: peak memory of one fwd+bwd beyond "
        "input and parameters (CPU: PyTorch profiler allocation events; GPU: max_memory_allocated). speedups > 1 "
        "mean leanconv is faster."),
    "chain": Section(
        lambda p: bench_chain(p.layers, p.compressions, p.device, p.min_run_time, p.clock),
        ("layer", "rank", "impl", "fwd_ms", "fwd_bwd_ms", "fused_speedup_fwd", "fused_speedup_fwd_bwd"),
        "The chain of 1-D filters on the (N, R, ...) intermediate, padding 1. fused_speedup_*: time of this row / "
        "time of the fused kernel (> 1: the fused kernel is faster)."),
    "gemm": Section(
        lambda p: bench_gemm(p.layers, p.compressions, p.device, p.min_run_time, p.clock),
        ("layer", "rank", "impl", "fwd_ms", "fwd_bwd_ms"),
        "Channel mixing C_in -> R candidates (the first 1x1 step), at the 10x rank."),
    "decompose": Section(
        lambda p: bench_decompose(),
        ("layer", "impl", "rank", "iterations", "kernel_mb", "peak_growth_mb", "khatri_rao_gb_tensorly_default",
         "seconds", "rel_error", "note"),
        "Peak memory of from_conv = growth of the process's max resident set (fresh process per row). ALS "
        "iterations are capped (memory per iteration is constant). khatri_rao_gb_tensorly_default: size of the "
        "Khatri-Rao product tensorly's default MTTKRP forms for a spatial mode, which leanconv's chunked MTTKRP "
        "never forms."),
}


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
    from ..commands import device, int_at_least, positive_float, subset_of
    from .common import OUT_HELP, parser as make_parser

    parser = make_parser("factorized", __doc__.split("\n\n")[0])
    parser.add_argument("--device", type=device, default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--sections", type=subset_of(SECTIONS), default="layers,chain,gemm",
                        help=f"comma list of {', '.join(SECTIONS)} (decompose: minutes, several GB)")
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


def _tltorch_available() -> bool:
    try:
        import tltorch  # noqa: F401
    except ImportError:
        print("tensorly-torch is not installed: its baselines are skipped (pip install tensorly-torch)")
        return False
    return True


@returns_exit_code
def main(argv=None) -> int:
    import time

    parser = build_parser()
    args = parser.parse_args(argv)
    out = setup_run(args, parser.error)
    layers, compressions, min_run_time = LAYERS, args.compressions, args.min_run_time
    if args.quick:
        layers = [la for la in LAYERS if "28x28" in la.name or la.dims == 3]
        compressions, min_run_time = [10], min(min_run_time, 0.2)
    plan = Plan(select_cases(layers, args.layers, LAYERS, parser.error, option="--layers"), compressions,
                args.device, min_run_time, not args.no_tltorch and _tltorch_available(),
                time.process_time if args.cpu_time else None)
    env = environment(args.device)
    env["clock"] = "process CPU time" if args.cpu_time else "wall"
    suffix = "" if args.device == "cpu" else f"_{args.device.replace(':', '')}"
    for name in args.sections:
        section = SECTIONS[name]
        json_path, md_path = write_report(f"factorized_{name}{suffix}", env, section.run(plan), out,
                                          section.columns, section.notes)
        print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
