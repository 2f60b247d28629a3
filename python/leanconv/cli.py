"""The ``leanconv`` command (also ``python -m leanconv``).

Each sub-command lives in its own module under ``leanconv.commands`` with a
``register(subparsers)`` function that adds its parser and sets
``func(args) -> int``.  Modules are imported only when listed here, and the
heavy imports happen inside the ``func`` they set, so ``leanconv --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in the order they appear in --help.
COMMANDS = (
    "demo",
    "info",
    "simulate",
    "dataset",
    "train",
    "rollout",
    "train_classifier",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leanconv",
        description="Compressed and large-kernel convolutions for PyTorch: tools and demos.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"leanconv.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
