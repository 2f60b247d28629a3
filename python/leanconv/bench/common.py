"""Shared pieces of the benchmarks: timing, environment description, reports.

Timing uses ``torch.utils.benchmark`` (it synchronises CUDA and picks repeat
counts), or :func:`paired_rounds` where implementations are compared on a
shared machine; we report medians.  Results go to ``./benchmark-results/``
under the current folder (or ``--out``, e.g. ``--out benchmarks/results`` in a
source checkout) as JSON plus a markdown table, written atomically; never into
the installed package or the source tree unless asked.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write_text
from .._report import markdown_table, paired_rounds  # noqa: F401  (the benchmarks' timing and tables)


RESULTS_DIR = "benchmark-results"
OUT_HELP = f"results folder (default ./{RESULTS_DIR} under the current folder)"


def default_results_dir() -> Path:
    """``./benchmark-results`` under the current folder (a checkout's committed
    ``benchmarks/results`` is written only when given as ``--out``)."""
    return Path.cwd() / RESULTS_DIR


def results_dir(out: str | Path | None) -> Path:
    """The results folder for ``--out`` (default :func:`default_results_dir`), refused before
    any timing when it cannot be written."""
    from .._preflight import check_output_dir

    path = Path(out) if out is not None else default_results_dir()
    check_output_dir(path, "--out")
    return path


def returns_exit_code(main: Callable[..., int]) -> Callable[..., int]:
    """Make a benchmark's ``main(argv)`` return the exit code of an argument error
    (or of ``--help``) instead of raising SystemExit, like ``leanconv.cli.main``."""
    import functools

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)

    return wrapper


def parser(name: str, description: str, **kwargs: Any):
    """The argument parser of benchmark ``name`` (one-line errors, prog ``leanconv bench NAME``)."""
    from ..commands import ArgumentParser

    return ArgumentParser(prog=f"leanconv bench {name}", description=description, **kwargs)


def median_ms(fn: Callable[[], Any], min_run_time: float = 0.5) -> float:
    """Median wall time of ``fn()`` in milliseconds (CUDA synchronised)."""
    import torch.utils.benchmark as tbench  # imported here: it pulls in torch's C++ extension tooling

    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def environment(device: str) -> dict[str, Any]:
    """Where and when a benchmark ran."""
    env = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "device": device,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    try:
        from leanconv import build_info

        info = build_info()
        env["leanconv_cpu_isa"] = info["cpu_isa"]
        env["leanconv_backends"] = info["backends"]
    except Exception as exc:  # the report is still useful without it
        env["leanconv_build"] = f"unavailable: {exc}"
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_report(
    name: str,
    env: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    out_dir: Path | None = None,
    columns: Sequence[str] | None = None,
    notes: str = "",
) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` under ``out_dir``; return both paths."""
    out_dir = Path(out_dir) if out_dir is not None else default_results_dir()
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    atomic_write_text(json_path, json.dumps({"environment": env, "rows": list(rows)}, indent=2) + "\n")
    env_line = ", ".join(f"{k}: {v}" for k, v in env.items())
    md = f"# {name}\n\n{env_line}\n\n" + (notes + "\n\n" if notes else "") + markdown_table(rows, columns)
    atomic_write_text(md_path, md)
    return json_path, md_path


def select_cases(cases: Sequence[Any], spec: str, every: Sequence[Any], error: Callable[[str], Any]) -> list[Any]:
    """The cases whose ``name`` holds one of the comma-separated substrings of ``spec`` (all when
    empty); ``error`` (an argument parser's) is called when none matches, naming the cases of ``every``."""
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    if not wanted:
        return list(cases)
    chosen = [c for c in cases if any(s in c.name for s in wanted)]
    if not chosen:
        error(f"argument --cases: no case matches {spec!r} (cases: {', '.join(c.name for c in every)})")
    return chosen


def setup_run(args: Any, error: Callable[[str], Any]) -> Path:
    """The common start of a benchmark with ``--device``, ``--out`` and ``--threads``: refuse a CUDA
    run without a GPU and an unwritable results folder (through ``error``, an argument parser's),
    apply ``--threads``; returns the results folder."""
    if args.device == "cuda" and not torch.cuda.is_available():
        error("argument --device: cuda: no GPU is visible to torch here")
    try:
        out = results_dir(args.out)
    except ValueError as exc:
        error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    return out
