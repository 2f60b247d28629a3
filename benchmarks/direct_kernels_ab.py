"""Before/after timing of leanconv's CPU depthwise kernels, one build at a time.

Times one pass of leanconv's depthwise convolution (float32, N=8, C=--channels
(64), --width x --width (56), padding K//2, stride --stride (1)) and PyTorch's
on the same tensors, in interleaved rounds, for K = 3x3, 5x5, 7x7 and 51x5
(9x9 to 31x31 with --cases), on channels_last tensors or (--layout nchw) NCHW
ones.  --pass: forward (default; with --layout nchw PyTorch is also timed on a
channels_last copy, its faster layout being the target), grad_input or
grad_weight (the backward ops alone, against PyTorch's convolution_backward
for the same gradient).  Two builds of leanconv cannot share one process, so
run it under each build in turn, alternating, and compare the best times (one
JSON record per case):

    for r in 1 2 3; do
      for so in before.so after.so; do cp $so $SITE/leanconv/_C*.so; python benchmarks/direct_kernels_ab.py; done
    done

Recorded: benchmarks/results/avx512-epyc-heap-malloc/direct-kernels-before-after.md,
benchmarks/results/avx512-epyc-heap-malloc/planar-kernels-before-after.md,
benchmarks/results/avx512-epyc-heap-malloc/tile-kernels-before-after.md.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

from leanconv.ops.depthwise import depthwise_conv

CASES = {"3x3": (3, 3), "5x5": (5, 5), "7x7": (7, 7), "51x5": (51, 5), "9x9": (9, 9), "13x13": (13, 13),
         "17x17": (17, 17), "31x31": (31, 31)}


def best_ms(fn, repeats: int = 7, calls: int = 10) -> float:
    """Best mean time (ms) over `repeats` runs of `calls` calls."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def passes(x, w, b, stride: int, pad: list[int]):
    """(leanconv, PyTorch) callables for each pass on input x."""
    c = x.shape[1]
    pads = [p for p in pad for _ in (0, 1)]
    ops = torch.ops.leanconv
    gy = torch.randn_like(depthwise_conv(x, w, b, [stride] * 2, pads, [1, 1]))
    aten_bwd = torch.ops.aten.convolution_backward

    def torch_bwd(mask):
        return lambda: aten_bwd(gy, x, w, None, [stride] * 2, pad, [1, 1], False, [0, 0], c, mask)[mask.index(True)]

    return {
        "forward": (lambda: depthwise_conv(x, w, b, [stride] * 2, pads, [1, 1]),
                    lambda: F.conv2d(x, w, b, stride, pad, 1, c)),
        "grad_input": (lambda: ops.depthwise_conv_backward_input(gy, w, list(x.shape), [stride] * 2, pads, [1, 1]),
                       torch_bwd([True, False, False])),
        "grad_weight": (lambda: ops.depthwise_conv_backward_weight(gy, x, list(w.shape[2:]), [stride] * 2, pads,
                                                                   [1, 1]).view_as(w),
                        torch_bwd([False, True, False])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="3x3,5x5,7x7,51x5", help=f"comma-separated subset of {list(CASES)}")
    parser.add_argument("--layout", choices=["channels_last", "nchw"], default="channels_last")
    parser.add_argument("--width", type=int, default=56, help="input height and width")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--pass", dest="which", choices=["forward", "grad_input", "grad_weight"], default="forward")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for name in args.cases.split(","):
        k = CASES[name]
        pad = [kk // 2 for kk in k]
        x = torch.randn(8, args.channels, args.width, args.width)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        if args.layout == "channels_last":
            x = x_cl
        w, b = torch.randn(args.channels, 1, *k), torch.randn(args.channels)
        ours, theirs = passes(x, w, b, args.stride, pad)[args.which]
        both = args.layout == "nchw" and args.which == "forward"
        theirs_cl = passes(x_cl, w, b, args.stride, pad)[args.which][1] if both else None
        # grad_weight sums N*H*W products per tap: float32 rounding grows with them
        tol = 1e-2 if args.which == "grad_weight" else 1e-4
        torch.testing.assert_close(ours(), theirs(), atol=tol, rtol=1e-3 if args.which == "grad_weight" else 1e-4)
        t_ours, t_theirs, t_cl = float("inf"), float("inf"), float("inf")
        for _ in range(args.rounds):
            t_theirs = min(t_theirs, best_ms(theirs))
            if both:
                t_cl = min(t_cl, best_ms(theirs_cl))
            t_ours = min(t_ours, best_ms(ours))
        record = {"case": name, "pass": args.which, "layout": args.layout, "width": args.width,
                  "channels": args.channels, "stride": args.stride, "threads": args.threads,
                  "torch_ms": round(t_theirs, 4), "leanconv_ms": round(t_ours, 4),
                  "torch_over_leanconv": round(t_theirs / t_ours, 3)}
        if both:
            record |= {"torch_channels_last_ms": round(t_cl, 4),
                       "best_torch_over_leanconv": round(min(t_theirs, t_cl) / t_ours, 3)}
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
