"""Shared pieces of the benchmarks: timing, peak memory, environment description, reports.

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
import os
import platform
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write_text
from .._report import calls_per_timing, markdown_table, paired_rounds  # noqa: F401  (the benchmarks' timing and tables)


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


def case_parser(name: str, description: str, *, dtypes: Sequence[str], quick_help: str, rounds_help: str,
                min_run_time_help: str):
    """The parser of a benchmark that times named cases in rounds: ``--device``, ``--dtype`` (one of
    ``dtypes``), ``--quick``, ``--cases``, ``--rounds``, ``--min-run-time``, ``--threads``, ``--out``
    (the help of ``--quick``, ``--rounds`` and ``--min-run-time`` is the benchmark's own)."""
    import argparse

    from ..commands import int_at_least, positive_float

    ap = parser(name, description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=list(dtypes), default="float32")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--cases", default="", help="comma-separated substrings: run only the cases whose name has one")
    ap.add_argument("--rounds", type=int_at_least(1), default=None, help=rounds_help)
    ap.add_argument("--min-run-time", type=positive_float, default=None, help=min_run_time_help)
    ap.add_argument("--threads", type=int_at_least(1), default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--out", type=Path, default=None, help=OUT_HELP)
    return ap


def median_ms(fn: Callable[[], Any], min_run_time: float = 0.5, clock: Callable[[], float] | None = None) -> float:
    """Median time of ``fn()`` in milliseconds: wall time (CUDA synchronised), or ``clock``'s
    (``time.process_time``: this process's CPU time, which on a machine shared with other jobs
    does not count the time spent waiting for a core)."""
    import torch.utils.benchmark as tbench  # imported here: it pulls in torch's C++ extension tooling

    kw = {} if clock is None else {"timer": clock}
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(), **kw)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def peak_memory_bytes(step, device: str) -> int:
    """Peak bytes allocated by ``step()`` beyond what was live before it.

    CPU: the PyTorch profiler with ``profile_memory=True`` records every
    allocation and free made through PyTorch's CPU allocator (tensors, saved
    activations, gradients, oneDNN scratch that PyTorch allocates); the peak is
    the largest running sum of those events over the step, i.e. the memory
    beyond what existed before (input, parameters).  Memory that a library
    mallocs on its own (e.g. MKL's GEMM packing buffers) is not seen;
    tracemalloc would see none of it.  GPU: ``torch.cuda.max_memory_allocated()``
    minus the memory allocated before the step.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


@dataclass(frozen=True)
class Timing:
    """How each measurement runs: on ``device`` (synchronised after every call), for
    ``min_run_time`` seconds, by ``clock`` (None: the wall clock; ``--cpu-time``: the process's)."""

    device: str
    min_run_time: float
    clock: Callable[[], float] | None = None

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def passes(self, fn, x: torch.Tensor, params, grad: torch.Tensor, peak: bool = False) -> dict:
        """Median ms of ``fn(x)`` without autograd (``fwd_ms``) and of ``fn`` with the gradients of
        its input and ``params`` (``fwd_bwd_ms``), after one warm-up (oneDNN primitives, CUDA
        plans); with ``peak`` also the peak memory of one forward+backward (``peak_mb``)."""
        xg = x.detach().requires_grad_()

        def fwd():
            with torch.no_grad():
                fn(x)
            self.sync()

        def step():
            torch.autograd.grad(fn(xg), [xg, *params], grad)
            self.sync()

        step()
        times = {"fwd_ms": median_ms(fwd, self.min_run_time, self.clock),
                 "fwd_bwd_ms": median_ms(step, self.min_run_time, self.clock)}
        return {**times, "peak_mb": peak_memory_bytes(step, self.device) / 2**20} if peak else times

    def module(self, module: torch.nn.Module, x: torch.Tensor) -> dict:
        """:meth:`passes` of a layer, gradients of all its parameters, peak memory included."""
        with torch.no_grad():
            grad = torch.randn_like(module(x))
        return self.passes(module, x, [p for p in module.parameters() if p.requires_grad], grad, peak=True)


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
    # glibc malloc settings (e.g. MALLOC_MMAP_THRESHOLD_) and preloaded allocators change CPU
    # times a lot: large tensors taken from and given back to the system page-fault on each call
    allocator = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "LD_PRELOAD"}
    if allocator:
        env["allocator_env"] = allocator
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


def select_cases(cases: Sequence[Any], spec: str, every: Sequence[Any], error: Callable[[str], Any],
                 option: str = "--cases") -> list[Any]:
    """The cases whose ``name`` holds one of the comma-separated substrings of ``spec`` (all when
    empty); ``error`` (an argument parser's) is called when none matches, naming ``option`` and the
    cases of ``every``."""
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    if not wanted:
        return list(cases)
    chosen = [c for c in cases if any(s in c.name for s in wanted)]
    if not chosen:
        error(f"argument {option}: no case matches {spec!r} (cases: {', '.join(c.name for c in every)})")
    return chosen


def setup_run(args: Any, error: Callable[[str], Any]) -> Path:
    """The common start of a benchmark with ``--device``, ``--out`` and ``--threads`` (and
    ``--cpu-time`` where it has one): refuse a CUDA run without a GPU, CPU time other than on one
    CPU thread, and an unwritable results folder (through ``error``, an argument parser's), apply
    ``--threads``; returns the results folder."""
    if args.device == "cuda" and not torch.cuda.is_available():
        error("argument --device: cuda: no GPU is visible to torch here")
    if getattr(args, "cpu_time", False) and (args.device != "cpu" or (args.threads or torch.get_num_threads()) != 1):
        error("--cpu-time needs --device cpu and --threads 1")
    try:
        out = results_dir(args.out)
    except ValueError as exc:
        error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    return out
