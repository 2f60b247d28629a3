"""Sub-commands of the ``leanconv`` command line, one module each, and the argument
types they share: each refuses a bad value while the arguments are parsed, with
one line naming the argument and what was expected (exit code 2), before any work.
"""
from __future__ import annotations

import argparse
import math

__all__ = ["UsageError", "ArgumentParser", "add_resume_or_force", "int_at_least", "positive_float", "nonnegative_float", "device",
           "subset_of"]


class UsageError(ValueError):
    """A command was given arguments it cannot use (one line on stderr, exit code 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line:
    ``PROG: error: MESSAGE (see `PROG --help`)`` on stderr, exit code 2.
    Sub-command parsers made by ``add_subparsers`` are of the same class."""

    def error(self, message: str):  # noqa: D401  (argparse's hook)
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def int_at_least(minimum: int):
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _float(text: str, ok, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _float(text, lambda v: v > 0, "a number > 0")


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _float(text, lambda v: v >= 0, "a number >= 0")


def subset_of(choices):
    """argparse type: a comma list of names from ``choices`` (at least one), as a list."""
    choices = list(choices)

    def parse(text: str) -> list[str]:
        names = [s.strip() for s in text.split(",") if s.strip()]
        if not names or any(s not in choices for s in names):
            raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(choices)}, got {text!r}")
        return names

    parse.__name__ = "comma list"
    return parse


def device(text: str) -> str:
    """argparse type: ``cpu``, ``cuda`` or ``cuda:N`` that this machine has."""
    from .._preflight import check_device

    try:
        return check_device(text, what="")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None


def add_resume_or_force(p: argparse.ArgumentParser, resume_help: str) -> None:
    """The trainers' ``--resume`` / ``--force`` pair (mutually exclusive; the rule is
    :func:`leanconv.training.start_or_resume`'s)."""
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help=resume_help + "; without one, start a new run")
    again.add_argument("--force", action="store_true", help="start over, overwriting the checkpoint in --out")
