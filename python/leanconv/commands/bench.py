"""``leanconv bench NAME [args]``: run a benchmark (same as benchmarks/bench_NAME.py)."""
from __future__ import annotations

import argparse
import importlib


def register(sub: argparse._SubParsersAction) -> None:
    from leanconv.bench import BENCHMARKS

    p = sub.add_parser(
        "bench",
        help="run a kernel or model benchmark against PyTorch in the same run",
        description="Benchmarks: " + ", ".join(BENCHMARKS) + "; 'all' runs each in turn with the arguments "
        "after it (every benchmark must accept them, e.g. `leanconv bench all --device cuda --quick`). "
        "Arguments after NAME go to the benchmark (try `leanconv bench NAME --help`).  Results go to "
        "./benchmark-results under the current folder unless --out says otherwise "
        "(e.g. --out benchmarks/results in a source checkout).",
    )
    p.add_argument("name", choices=[*BENCHMARKS, "all"])
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the benchmark(s)")
    p.set_defaults(func=run, bench_parser=p)


def run(args: argparse.Namespace) -> int:
    import contextlib
    import io
    import sys

    from leanconv.bench import BENCHMARKS

    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    modules = {name: importlib.import_module(f"leanconv.bench.{BENCHMARKS[name]}") for name in names}
    if args.name == "all":
        if any(a in ("-h", "--help") for a in args.args):
            print(args.bench_parser.format_help())
            print("Options every benchmark takes: --device, --threads, --out, --quick (see "
                  "`leanconv bench NAME --help` for each: " + ", ".join(BENCHMARKS) + ").")
            return 0
        # every benchmark must take the arguments: refuse before any of them runs
        for name, module in modules.items():
            said = io.StringIO()
            try:
                with contextlib.redirect_stderr(said):
                    module.build_parser().parse_args(args.args)
            except SystemExit as exc:
                if exc.code:
                    why = said.getvalue().strip().split(": error: ", 1)[-1]
                    print(f"leanconv bench all: error: the {name} benchmark refuses these arguments: {why}",
                          file=sys.stderr)
                    return 2
    rc = 0
    for name, module in modules.items():
        rc |= int(module.main(args.args) or 0)
    return rc
