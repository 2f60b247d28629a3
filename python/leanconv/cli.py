"""The ``leanconv`` command (also ``python -m leanconv``).

Each sub-command lives in its own module under ``leanconv.commands`` with a
``register(subparsers)`` function that adds its parser and sets
``func(args) -> int``.  Modules are imported only when listed here, and the
heavy imports happen inside the ``func`` they set, so ``leanconv --help`` stays fast.

User errors are handled here, in one place: a bad argument, a data set or run
folder that does not fit, an output that cannot be written, ... print one line
``leanconv COMMAND: error: MESSAGE`` on stderr and give exit code 2 (the
commands check what they can before any work starts, so nothing is written).
``leanconv --debug COMMAND ...`` shows the Python traceback instead.  Ctrl-C
gives exit code 130.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from .commands import ArgumentParser

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

# the values leanconv's CPU kernels accept in LEANCONV_CPU_ISA (see csrc/cpu/isa.cpp)
CPU_ISAS = ("generic", "avx2", "avx512")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="leanconv",
        description="Compressed and large-kernel convolutions for PyTorch: tools and demos.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error instead of its one-line message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"leanconv.commands.{name}").register(sub)
    return parser


# errno values of OSErrors that are the user's or the machine's state, not a bug
_OS_USER_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
                   errno.EDQUOT, errno.EISDIR, errno.ENOTDIR, errno.ENOTEMPTY, errno.ENAMETOOLONG}


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for an exception that is a user error, or None for a bug."""
    if isinstance(exc, ValueError):  # an argument, a data set (DatasetError), a model file, a registry name ...
        return _one_line(str(exc))
    if isinstance(exc, OSError):
        if exc.errno is None:  # raised by leanconv with its own message
            return _one_line(str(exc))
        if exc.errno in _OS_USER_ERRNOS:
            where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
            what = {errno.EEXIST: "already exists", errno.ENOSPC: "no space left on the device",
                    errno.EROFS: "read-only file system", errno.EDQUOT: "disk quota exceeded"}.get(
                exc.errno, (exc.strerror or str(exc)).lower())
            return _one_line(f"{where}: {what}" if where is not None else what)
        return None
    try:
        from ._ext import ExtensionUnavailableError

        if isinstance(exc, ExtensionUnavailableError):
            return _one_line(str(exc))
    except ImportError:  # pragma: no cover
        pass
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return _one_line(f"out of memory ({exc}); use a smaller --batch-size, model or data set".replace(" ()", ""))
    return None


def _one_line(text: str) -> str:
    lines = [s.strip() for s in str(text).strip().splitlines() if s.strip()]
    return " ".join(lines) if lines else "(no message)"


def cpu_isa_problem() -> str | None:
    """A message when the environment variable LEANCONV_CPU_ISA holds a value the kernels refuse."""
    value = os.environ.get("LEANCONV_CPU_ISA")
    if value is None or value == "" or value in CPU_ISAS:
        return None
    return (f"environment variable LEANCONV_CPU_ISA={value!r} is not an instruction set leanconv knows: "
            f"use one of {', '.join(CPU_ISAS)}, or unset it")


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # sys.exit("message")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or an argument error (one line, exit code 2)
        return _exit_code(exc)
    name = "leanconv " + args.command + (f" {args.action}" if getattr(args, "action", None) else "")
    isa = cpu_isa_problem()
    if isa is not None:
        print(f"{name}: error: {isa}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # a benchmark's own argument parser
        return _exit_code(exc)
    except Exception as exc:
        message = None if args.debug else user_error_message(exc)
        if message is None:
            raise
        print(f"{name}: error: {message}", file=sys.stderr)
        return 2
