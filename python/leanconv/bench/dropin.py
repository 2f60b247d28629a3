"""Drop-in benchmark: each leanconv module against the torch module it replaces, as a user swaps them.

For every case, ``DepthwiseConv2d/3d`` (default ``backend="auto"``: the faster of
leanconv's kernel and PyTorch's for each call signature, chosen on the first
call) is timed against ``nn.Conv2d/3d(C, C, k, groups=C)`` holding the same
weights, on the same input in the same layout (NCHW or channels_last) and
dtype, for the forward pass and for forward + backward (input, weight and
bias gradients), in interleaved rounds.  The ratio is torch time / leanconv
time per round (> 1: the drop-in module is faster); the table gives the
median over the rounds and the lowest and highest round; a round times each
module over ``calls_per_timing`` calls in a row (about 5 ms of the faster
one: one call of a sub-millisecond layer is mostly timer noise).  The first call,
which measures both implementations, is excluded from the rounds and
reported on its own (``first_call_ms``), with the implementation it chose
(``chosen``) and the one running at the end (``final``: a choice made by less
than 1.5x is measured once more after 100 calls).

    leanconv bench dropin --threads 2 --out benchmarks/results
    leanconv bench dropin --dtype bfloat16 --device cuda
"""
from __future__ import annotations

import argparse
import math

import torch
from torch import nn
from tqdm import tqdm

from .common import (calls_per_timing, case_parser, environment, paired_rounds, returns_exit_code, select_cases, setup_run,
                     write_report)
from .depthwise import Case  # the same cases: a depthwise layer with 'same' padding, stride 1

TIMING_S = 0.005  # seconds of the faster module per timing (calls_per_timing)

__all__ = ["Case", "CASES", "main", "build_parser"]


CASES = [
    *[Case(f"k{k}", (8, 64, 56, 56), (k, k)) for k in (3, 5, 7, 9, 13, 17, 31)],
    Case("k51x5", (8, 64, 56, 56), (51, 5)),
    Case("k5x51", (8, 64, 56, 56), (5, 51)),
    *[Case(f"3-D k{k}", (2, 32, 24, 24, 24), (k, k, k)) for k in (3, 7)],
]
QUICK = [Case("k3 small", (2, 8, 12, 12), (3, 3)), Case("k7 small", (2, 8, 12, 12), (7, 7)),
         Case("3-D k3 small", (1, 4, 6, 6, 6), (3, 3, 3))]
LAYOUTS = ("nchw", "channels_last")
PASSES = ("forward", "fwd+bwd")


def _modules(case: Case, device: str, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
    from ..nn import DepthwiseConv2d, DepthwiseConv3d

    dims = len(case.kernel)
    c = case.shape[1]
    ref = (nn.Conv2d if dims == 2 else nn.Conv3d)(c, c, case.kernel, padding=case.padding, groups=c)
    mine = (DepthwiseConv2d if dims == 2 else DepthwiseConv3d)(c, c, case.kernel, padding=case.padding,
                                                               backend="auto")
    mine.load_state_dict(ref.state_dict())
    return mine.to(device, dtype), ref.to(device, dtype)


def _call(module: nn.Module, x: torch.Tensor, backward: bool):
    params = [p for p in module.parameters()]

    def run():
        if not backward:
            with torch.no_grad():
                return module(x)
        y = module(x)
        return torch.autograd.grad(y, [x, *params], torch.ones_like(y))

    return run


def run_case(case: Case, layout: str, pass_name: str, device: str, dtype: torch.dtype, min_run_time: float,
             min_rounds: int) -> dict:
    import time

    from ..nn import backend_choices, clear_backend_choices

    clear_backend_choices()  # the first call below measures, whatever ran before
    g = torch.Generator().manual_seed(0)
    x = torch.randn(case.shape, generator=g).to(device, dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
    backward = pass_name == "fwd+bwd"
    x.requires_grad_(backward)
    mine, ref = _modules(case, device, dtype)
    sync = torch.cuda.synchronize if device == "cuda" else None
    fn_mine, fn_ref = _call(mine, x, backward), _call(ref, x, backward)
    if sync:
        sync()
    t0 = time.perf_counter()
    fn_mine()  # the first call chooses the implementation (it times both)
    if sync:
        sync()
    first_ms = (time.perf_counter() - t0) * 1e3
    chosen = backend_choices()[-1]["backend"]
    fn_ref()  # warm-up of the reference
    fns = {"leanconv": fn_mine, "torch": fn_ref}
    number = calls_per_timing(fns, TIMING_S, sync=sync)
    times = paired_rounds(fns, min_run_time, sync=sync, min_rounds=min_rounds, number=number)
    final = backend_choices()[-1]  # a close first choice is measured again after 100 calls
    ratios = sorted(t / m for t, m in zip(times["torch"], times["leanconv"]))
    med = ratios[len(ratios) // 2] if len(ratios) % 2 else math.sqrt(ratios[len(ratios) // 2 - 1] *
                                                                     ratios[len(ratios) // 2])
    return {
        "case": case.name, "shape": "x".join(map(str, case.shape)), "kernel": "x".join(map(str, case.kernel)),
        "layout": layout, "pass": pass_name, "chosen": chosen,
        "final": final["backend"] + (" (re-measured)" if final["how"] == "re-measured" else ""),
        "leanconv_ms": sorted(times["leanconv"])[len(times["leanconv"]) // 2] * 1e3,
        "torch_ms": sorted(times["torch"])[len(times["torch"]) // 2] * 1e3,
        "ratio": med, "ratio_low": ratios[0], "ratio_high": ratios[-1], "rounds": len(ratios),
        "first_call_ms": first_ms, "calls_per_timing": number,
    }


COLUMNS = ["case", "layout", "pass", "chosen", "final", "leanconv_ms", "torch_ms", "ratio", "ratio_low", "ratio_high",
           "rounds", "calls_per_timing", "first_call_ms"]


def build_parser() -> argparse.ArgumentParser:
    return case_parser("dropin", __doc__, dtypes=["float32", "bfloat16", "float16"],
                       quick_help="three tiny cases, short timing (a smoke test)",
                       rounds_help="at least this many rounds (default 5)",
                       min_run_time_help="seconds the slower module runs at least, per case (default 1.0, quick 0.05)")


@returns_exit_code
def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    out = setup_run(args, ap.error)
    cases = select_cases(QUICK if args.quick else CASES, args.cases, CASES + QUICK, ap.error)
    min_run_time = args.min_run_time or (0.05 if args.quick else 1.0)
    rounds = args.rounds or (3 if args.quick else 5)
    dtype = getattr(torch, args.dtype)
    env = environment(args.device)
    env.update(dtype=args.dtype, min_rounds=rounds, min_run_time_s=min_run_time)
    print(", ".join(f"{k}: {v}" for k, v in env.items()))
    rows = []
    work = [(c, lay, p) for c in cases for lay in LAYOUTS for p in PASSES]
    for case, layout, pass_name in tqdm(work, desc="drop-in cases", disable=None):
        r = run_case(case, layout, pass_name, args.device, dtype, min_run_time, rounds)
        tqdm.write(f"{r['case']:>12} {r['layout']:>13} {r['pass']:>8}: chose {r['chosen']:>8}, final {r['final']} | "
                   f"leanconv {r['leanconv_ms']:9.3f} ms, torch {r['torch_ms']:9.3f} ms -> {r['ratio']:5.2f}x "
                   f"({r['ratio_low']:.2f}-{r['ratio_high']:.2f}) | first call {r['first_call_ms']:.0f} ms")
        rows.append(r)
    worst = min(rows, key=lambda r: r["ratio"])
    summary = (f"Worst case: {worst['case']} {worst['layout']} {worst['pass']}: {worst['ratio']:.2f}x "
               f"(rounds {worst['ratio_low']:.2f}-{worst['ratio_high']:.2f}); "
               f"{sum(r['ratio'] >= 0.97 for r in rows)} of {len(rows)} cases at or above 0.97x.")
    print(summary)
    notes = ("ratio: torch module time / leanconv module time per interleaved round, median (low-high over the "
             "rounds); > 1: the drop-in module is faster.  Both modules get the same input in the same layout and "
             "dtype.  chosen: the implementation backend='auto' picked on the first call (which timed both: "
             "first_call_ms, not part of the rounds); final: the one running after the rounds (a choice made "
             "by less than 1.5x is measured once more after 100 calls, inside the rounds).  " + summary)
    suffix = (f"-{args.threads}threads" if args.threads else "") + ("-quick" if args.quick or args.cases else "")
    json_path, md_path = write_report(f"dropin-{args.device}-{args.dtype}{suffix}", env, rows, out, COLUMNS, notes)
    print(f"wrote {json_path} and {md_path}")
    return 0
