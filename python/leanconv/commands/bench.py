"""``leanconv bench NAME [args]``: run a benchmark (same as benchmarks/bench_NAME.py)."""
from __future__ import annotations

import argparse
import importlib


def register(sub: argparse._SubParsersAction) -> None:
    from leanconv.bench import BENCHMARKS

    p = sub.add_parser(
        "bench",
        help="run a kernel or model benchmark against PyTorch in the same run",
        description="Benchmarks: " + ", ".join(BENCHMARKS) + "; 'all' runs each with its defaults. "
        "Arguments after NAME go to the benchmark (try `leanconv bench NAME --help`).",
    )
    p.add_argument("name", choices=[*BENCHMARKS, "all"])
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leanconv.bench import BENCHMARKS

    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    rc = 0
    for name in names:
        module = importlib.import_module(f"leanconv.bench.{BENCHMARKS[name]}")
        rc |= int(module.main(args.args if args.name != "all" else []) or 0)
    return rc
