"""Depthwise convolution benchmark: leanconv against PyTorch (NCHW and channels_last).

For every case the four variants (PyTorch and leanconv, each on an NCHW and a
channels_last input) are timed in the same run, for the forward pass and for
forward + backward (grad_input and grad_weight).  Each variant is measured in
several rounds, interleaved with the others, and the median of the round
medians is reported, so a burst of load on a shared machine does not land on
one variant only.

    python benchmarks/bench_depthwise.py --device cpu
    leanconv bench depthwise --device cuda --dtype bfloat16

FLOPs: 2*N*C*prod(out)*prod(kernel) per convolution pass; forward + backward
counts three passes (forward, grad_input, grad_weight).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .common import (case_parser, environment, median_ms, returns_exit_code, select_cases, setup_run,
                     write_report)

__all__ = ["Case", "CPU_CASES", "GPU_CASES", "main"]


@dataclass(frozen=True)
class Case:
    """One depthwise layer: input shape (N, C, [D,] H, W), kernel, 'same' padding, stride 1."""

    name: str
    shape: tuple[int, ...]
    kernel: tuple[int, ...]

    @property
    def padding(self) -> tuple[int, ...]:
        return tuple(k // 2 for k in self.kernel)

    def gflop_per_pass(self) -> float:
        n, c, *spatial = self.shape
        out = [s + 2 * p - k + 1 for s, p, k in zip(spatial, self.padding, self.kernel)]
        return 2.0 * n * c * math.prod(out) * math.prod(self.kernel) / 1e9


def _sq(name: str, shape, k: int) -> Case:
    dims = len(shape) - 2
    return Case(name, tuple(shape), (k,) * dims)


# The issue's CPU table (N=8, C=64, 56x56), SLaK's 51x5 / 5x51, and a 3-D layer.
CPU_CASES = [
    *[_sq(f"56x56 k{k}", (8, 64, 56, 56), k) for k in (3, 7, 13, 31)],
    Case("56x56 k51x5", (8, 64, 56, 56), (51, 5)),
    Case("56x56 k5x51", (8, 64, 56, 56), (5, 51)),
    _sq("3d 24^3 k7", (2, 32, 24, 24, 24), 7),
]
# RepLKNet's layers (batch 64, 384 channels), GPU only.
GPU_CASES = [
    _sq(f"{r}x{r} k{k}", (64, 384, r, r), k) for r in (32, 16) for k in (7, 13, 17, 21, 27, 31)
]
QUICK_NAMES = {"56x56 k7", "56x56 k31", "3d 24^3 k7", "32x32 k7", "32x32 k31"}

VARIANTS = [("torch", "nchw"), ("torch", "cl"), ("leanconv", "nchw"), ("leanconv", "cl")]


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "nchw":
        return t.contiguous()
    return t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)


def _conv_fn(impl: str, case: Case):
    if impl == "torch":
        conv = F.conv2d if len(case.kernel) == 2 else F.conv3d
        return lambda x, w: conv(x, w, None, 1, case.padding, 1, x.shape[1])
    from leanconv.ops import depthwise_conv

    return lambda x, w: depthwise_conv(x, w, None, 1, list(case.padding), 1)


def _timers(case: Case, impl: str, layout: str, device: str, dtype: torch.dtype):
    """(forward, forward+backward) callables on fresh inputs of the case."""
    gen = torch.Generator().manual_seed(0)
    c = case.shape[1]
    x = _layout(torch.randn(case.shape, generator=gen).to(device, dtype), layout)
    w = torch.randn((c, 1, *case.kernel), generator=gen).to(device, dtype)
    conv = _conv_fn(impl, case)
    with torch.no_grad():
        gy = _layout(torch.randn(conv(x, w).shape, generator=gen).to(device, dtype), layout)
    xg, wg = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()

    def fwd():
        with torch.no_grad():
            return conv(x, w)

    def fwd_bwd():
        return torch.autograd.grad(conv(xg, wg), [xg, wg], gy)

    return fwd, fwd_bwd


DENSE_GFLOP = 2.0 * 8 * 64 * 64 * 56 * 56 * 9 / 1e9


def dense_reference(device: str, dtype: torch.dtype):
    """A dense 3x3 64->64 convolution on (8, 64, 56, 56) channels_last (oneDNN on CPU,
    cuDNN on GPU): the practical peak of the machine.  It is timed in every round
    of every case, since the speed of a shared machine changes with its load."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 64, 56, 56, generator=gen).to(device, dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3, generator=gen).to(device, dtype)

    def fn():
        with torch.no_grad():
            return F.conv2d(x, w, None, 1, 1)

    return fn


def check_targets(rows: list[dict]) -> list[str]:
    """The issue's CPU targets, evaluated on the rows of the 56x56 cases (one line each).

    The GFLOP/s target (>= 109, half of the 218 GFLOP/s a dense 3x3 convolution
    reached when the issue was filed) is also checked against half of the dense
    convolution timed in the same rounds as the case, since the machine's speed
    varies with its load.
    """
    lines = []
    by = {(r["case"], r["pass"]): r for r in rows}
    for k in (3, 7, 13, 31):
        f, fb = by.get((f"56x56 k{k}", "fwd")), by.get((f"56x56 k{k}", "fwd+bwd"))
        if f is None:
            continue
        for lay in ("nchw", "cl"):
            ratio = f[f"leanconv_{lay}_vs_best_torch"]
            lines.append(f"k{k} fwd, leanconv {lay}: {ratio:.2f}x best PyTorch (target >= 0.83, within 1.2x): "
                         + ("met" if ratio >= 1 / 1.2 else "MISSED"))
        if k == 31:
            ratio = f["torch_nchw_ms"] / min(f["leanconv_nchw_ms"], f["leanconv_cl_ms"])
            lines.append(f"k31 fwd: {ratio:.1f}x PyTorch NCHW (target >= 10x): " + ("met" if ratio >= 10 else "MISSED"))
        if fb is not None and k >= 7:
            for lay in ("nchw", "cl"):
                ratio = fb[f"leanconv_{lay}_vs_best_torch"]
                lines.append(f"k{k} fwd+bwd, leanconv {lay}: {ratio:.1f}x best PyTorch (target >= 5x): "
                             + ("met" if ratio >= 5 else "MISSED"))
        if k >= 13:
            for r, name in ((f, "fwd"), (fb, "fwd+bwd")):
                if r is None:
                    continue
                gf = max(r["leanconv_nchw_gflops"], r["leanconv_cl_gflops"])
                line = f"k{k} {name}: {gf:.0f} GFLOP/s (target >= 109): " + ("met" if gf >= 109 else "MISSED")
                dense = r.get("dense_ref_gflops")
                if dense:
                    share = gf / dense
                    line += (f"; {share:.0%} of the dense 3x3 conv timed alongside ({dense:.0f} GFLOP/s,"
                             " target >= 50%): " + ("met" if share >= 0.5 else "MISSED"))
                lines.append(line)
    return lines


def run_case(case: Case, device: str, dtype: torch.dtype, rounds: int, min_run_time: float, dense) -> list[dict]:
    fns = {v: _timers(case, *v, device, dtype) for v in VARIANTS}
    times: dict = {(v, p): [] for v in VARIANTS for p in range(2)}
    dense_ms = []
    for _ in range(rounds):
        dense_ms.append(median_ms(dense, min_run_time))
        for v in VARIANTS:
            for p in range(2):
                times[(v, p)].append(median_ms(fns[v][p], min_run_time))
    dense_gflops = DENSE_GFLOP / (sorted(dense_ms)[len(dense_ms) // 2] / 1e3)
    rows = []
    for p, pass_name in enumerate(("fwd", "fwd+bwd")):
        gflop = case.gflop_per_pass() * (1 if p == 0 else 3)
        ms = {v: sorted(times[(v, p)])[len(times[(v, p)]) // 2] for v in VARIANTS}
        best_torch = min(ms[("torch", "nchw")], ms[("torch", "cl")])
        row = {"case": case.name, "shape": "x".join(map(str, case.shape)),
               "kernel": "x".join(map(str, case.kernel)), "pass": pass_name}
        for impl, lay in VARIANTS:
            row[f"{impl}_{lay}_ms"] = ms[(impl, lay)]
        for impl, lay in VARIANTS:
            row[f"{impl}_{lay}_gflops"] = gflop / ms[(impl, lay)] * 1e3
        for lay in ("nchw", "cl"):
            row[f"leanconv_{lay}_vs_best_torch"] = best_torch / ms[("leanconv", lay)]
            row[f"leanconv_{lay}_vs_torch_{lay}"] = ms[("torch", lay)] / ms[("leanconv", lay)]
        row["dense_ref_gflops"] = dense_gflops
        row["leanconv_best_vs_dense_ref"] = max(row["leanconv_nchw_gflops"], row["leanconv_cl_gflops"]) / dense_gflops
        rows.append(row)
    return rows


def _format_row(r: dict) -> str:
    return (f"{r['case']:>14} {r['pass']:>8} | torch nchw {r['torch_nchw_ms']:9.2f} ms ({r['torch_nchw_gflops']:6.1f})"
          f"  cl {r['torch_cl_ms']:9.2f} ms ({r['torch_cl_gflops']:6.1f})"
          f" | leanconv nchw {r['leanconv_nchw_ms']:8.2f} ms ({r['leanconv_nchw_gflops']:6.1f})"
          f"  cl {r['leanconv_cl_ms']:8.2f} ms ({r['leanconv_cl_gflops']:6.1f})"
          f" | vs best torch: nchw {r['leanconv_nchw_vs_best_torch']:5.2f}x  cl {r['leanconv_cl_vs_best_torch']:5.2f}x"
          f" | {r['leanconv_best_vs_dense_ref']:4.0%} of dense 3x3 ({r['dense_ref_gflops']:.0f})")


COLUMNS = [
    "case", "pass", "torch_nchw_ms", "torch_cl_ms", "leanconv_nchw_ms", "leanconv_cl_ms",
    "torch_nchw_gflops", "torch_cl_gflops", "leanconv_nchw_gflops", "leanconv_cl_gflops",
    "leanconv_nchw_vs_best_torch", "leanconv_cl_vs_best_torch", "leanconv_nchw_vs_torch_nchw",
    "leanconv_cl_vs_torch_cl", "dense_ref_gflops", "leanconv_best_vs_dense_ref",
]


def build_parser() -> argparse.ArgumentParser:
    return case_parser("depthwise", __doc__, dtypes=["float32", "bfloat16", "float16", "float64"],
                       quick_help="fewer cases, shorter timing",
                       rounds_help="interleaved timing rounds (default 3, quick 1)",
                       min_run_time_help="seconds per measurement (default 0.3, quick 0.1)")


@returns_exit_code
def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)

    out = setup_run(args, ap.error)
    dtype = getattr(torch, args.dtype)
    cases = CPU_CASES if args.device == "cpu" else GPU_CASES
    if args.quick:
        cases = [c for c in cases if c.name in QUICK_NAMES]
    cases = select_cases(cases, args.cases, CPU_CASES if args.device == "cpu" else GPU_CASES, ap.error)
    rounds = args.rounds or (1 if args.quick else 3)
    min_run_time = args.min_run_time or (0.1 if args.quick else 0.3)

    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    env = environment(args.device)
    env.update(dtype=args.dtype, rounds=rounds, min_run_time_s=min_run_time)
    print(", ".join(f"{k}: {v}" for k, v in env.items()))
    dense = dense_reference(args.device, dtype)
    rows: list[dict] = []
    for case in tqdm(cases, desc="depthwise cases", disable=None):
        for r in run_case(case, args.device, dtype, rounds, min_run_time, dense):
            tqdm.write(_format_row(r))
            rows.append(r)

    notes = ("Times are medians (ms); GFLOP/s count 2*N*C*prod(out)*prod(kernel) per pass, three passes for "
             "fwd+bwd (forward, grad_input, grad_weight). Ratios are PyTorch time / leanconv time (> 1: leanconv "
             "faster); 'best torch' is the faster of PyTorch's two layouts. nchw/cl: the layout of the input. "
             "dense_ref_gflops: a dense 3x3 64->64 convolution (8x64x56x56, channels_last) timed in the same "
             "rounds as the case, the machine's practical peak at that time; leanconv_best_vs_dense_ref: the "
             "faster leanconv layout's GFLOP/s as a share of it.")
    targets = check_targets(rows) if args.device == "cpu" and args.dtype == "float32" else []
    if targets:
        print("\n".join(targets))
        notes += "\n\nIssue targets (CPU, float32):\n\n" + "\n".join(f"- {t}" for t in targets)
    suffix = (f"-{args.threads}threads" if args.threads else "") + ("-quick" if args.quick or args.cases else "")
    name = f"depthwise-{args.device}-{args.dtype}{suffix}"
    json_path, md_path = write_report(name, env, rows, out, COLUMNS, notes)
    print(f"wrote {json_path} and {md_path}")
    return 0
