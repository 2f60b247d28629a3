"""Before/after timing of the Python paths the consolidation of issue 15 touched.

The wave steppers (Q1 and fd4, compiled-op and torch-op backends), the
depthwise module's forward + backward (its autograd Functions) and a tiny call
(Python overhead).  Two versions of leanconv cannot share one process, so run
this script from each checkout in turn, alternating, and compare the best
times (each line printed is one JSON record):

    for r in 1 2 3; do
      for tree in ../before ../after; do (cd $tree && PYTHONPATH=python python benchmarks/consolidation_ab.py); done
    done

Recorded: benchmarks/results/consolidation-before-after.md.
"""
import json
import time

import torch

import leanconv
from leanconv.nn import DepthwiseConv2d
from leanconv.wave.solver import WaveSolver


def best_ms(fn, repeats: int = 5, seconds: float = 0.25) -> float:
    """Best mean time (ms) of `repeats` runs, each calling fn for >= `seconds`."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            fn()
            calls += 1
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    n = 129
    axis = torch.linspace(-1, 1, n)
    pulse = torch.exp(-(axis[:, None] ** 2 + axis[None] ** 2) * 50)
    u0 = pulse.expand(8, n, n)
    speed = torch.full((8, n, n), 1.0)
    times = {}
    for scheme in ("q1", "fd4"):
        for backend in ("kernel", "torch"):
            solver = WaveSolver(speed, scheme=scheme, backend=backend, boundary="absorbing")
            times[f"wave {scheme} {backend} 100 steps"] = best_ms(lambda: solver.run(u0, steps=100, every=10))
    module = DepthwiseConv2d(64, kernel_size=7, padding=3, backend="leanconv")
    x = torch.randn(8, 64, 56, 56, requires_grad=True)
    times["DepthwiseConv2d k7 fwd+bwd"] = best_ms(lambda: module(x).sum().backward())
    tiny = torch.randn(1, 64, 8, 8, requires_grad=True)
    times["DepthwiseConv2d tiny fwd+bwd"] = best_ms(lambda: module(tiny).sum().backward())
    print(json.dumps({"python": leanconv.__file__, "ms": times}))


if __name__ == "__main__":
    main()
