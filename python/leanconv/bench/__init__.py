"""Benchmarks (``leanconv bench NAME`` or ``python benchmarks/bench_NAME.py``).

Each benchmark module ``leanconv.bench.<name>`` has ``main(argv) -> int``; the
shared timing and reporting helpers are in :mod:`leanconv.bench.common`.
"""

# name -> module under leanconv.bench, in the order `leanconv bench all` runs them
BENCHMARKS: dict[str, str] = {
    "depthwise": "depthwise",
    "dropin": "dropin",
    "factorized": "factorized",
    "wave": "wave",
    "models": "models",
}
