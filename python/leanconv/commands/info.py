"""``leanconv info``: what was compiled and what this machine offers."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print build information (backends, CUDA archs, CPU ISA, threads, GPU)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leanconv import build_info, format_build_info

    info = build_info()
    print(json.dumps(info, indent=2) if args.json else format_build_info(info))
    return 0
