"""Before/after timing of the depthwise kernels that read the input in place.

Times leanconv's depthwise forward (float32, N=8, C=64, 56x56 or --width,
padding K//2) and PyTorch's on the same input, in interleaved rounds, for
K = 3x3, 5x5, 7x7 and 51x5 (9x9 to 31x31 with --cases): channels_last (the direct kernels) or, with
--layout nchw, NCHW (the planar kernels; PyTorch is then timed on the NCHW
input and on a channels_last copy, its faster layout being the target).  Two builds of leanconv cannot share one process,
so run it under each build in turn, alternating, and compare the best times
(one JSON record per case):

    for r in 1 2 3; do
      for so in before.so after.so; do cp $so $SITE/leanconv/_C*.so; python benchmarks/direct_kernels_ab.py; done
    done

Recorded: benchmarks/results/avx512-epyc-heap-malloc/direct-kernels-before-after.md,
benchmarks/results/avx512-epyc-heap-malloc/planar-kernels-before-after.md.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="3x3,5x5,7x7,51x5", help=f"comma-separated subset of {list(CASES)}")
    parser.add_argument("--layout", choices=["channels_last", "nchw"], default="channels_last")
    parser.add_argument("--width", type=int, default=56, help="input height and width")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for name in args.cases.split(","):
        k = CASES[name]
        pad = [kk // 2 for kk in k]
        x = torch.randn(8, 64, args.width, args.width)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        if args.layout == "channels_last":
            x = x_cl
        w, b = torch.randn(64, 1, *k), torch.randn(64)
        ours = lambda: depthwise_conv(x, w, b, [1, 1], [p for p in pad for _ in (0, 1)], [1, 1])  # noqa: E731
        theirs = lambda: F.conv2d(x, w, b, padding=pad, groups=64)  # noqa: E731
        theirs_cl = lambda: F.conv2d(x_cl, w, b, padding=pad, groups=64)  # noqa: E731
        torch.testing.assert_close(ours(), theirs(), atol=1e-4, rtol=1e-4)
        t_ours, t_theirs, t_cl = float("inf"), float("inf"), float("inf")
        for _ in range(args.rounds):
            t_theirs = min(t_theirs, best_ms(theirs))
            if args.layout == "nchw":
                t_cl = min(t_cl, best_ms(theirs_cl))
            t_ours = min(t_ours, best_ms(ours))
        record = {"case": name, "layout": args.layout, "width": args.width, "threads": args.threads,
                  "torch_ms": round(t_theirs, 4), "leanconv_ms": round(t_ours, 4),
                  "torch_over_leanconv": round(t_theirs / t_ours, 3)}
        if args.layout == "nchw":
            record |= {"torch_channels_last_ms": round(t_cl, 4),
                       "best_torch_over_leanconv": round(min(t_theirs, t_cl) / t_ours, 3)}
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
