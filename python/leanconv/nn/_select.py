"""Per-shape choice of implementation for the drop-in modules ("auto" backend).

A drop-in module is only worth using where it is not slower than the torch
module it replaces.  leanconv's kernels win by large factors at large kernels
and lose at some small ones, so each module picks, for every new call
signature (device, dtype, layout, shapes, stride, padding, dilation, which
gradients are needed, threads), the faster of its two exact implementations -
leanconv's kernel or PyTorch's convolution (for FactorizedConv: the CP path or
the dense reconstructed kernel) - the way ``torch.backends.cudnn.benchmark``
does: both run twice to warm up, then in three interleaved rounds (six when
they are within 5 % of each other; forward, plus backward when gradients are
needed; a fast call repeated for about a millisecond per timing; CUDA timed
with events), and the faster one is kept for the rest of the process -
leanconv's only when it is more than 5 % faster (within that margin the
module runs what it replaces).  A choice made by less than 1.5x is measured
once more after 100 calls of its signature (a process's first calls can run
at other speeds than later ones), and that choice is final; on CUDA every
choice is measured once more (cuDNN compiles some kernels on their first
call, which can take a second).  Under ``torch.compile``
nothing can be measured while tracing: a cached choice is not consulted and
a built-in table decides (see each module's ``_table_backend``).

Controls: the module argument ``backend="auto" | "leanconv" | "torch"``; when
it is not given, the environment variable ``LEANCONV_BACKEND`` (same values;
default ``auto``).  :func:`backend_choices` lists what was chosen,
:func:`save_backend_choices` / :func:`load_backend_choices` keep choices
across processes (loaded choices are used without measuring), and
:func:`clear_backend_choices` forgets them.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.fx

from .._report import repeats_for
from ..ops._geometry import autocast_dtype

__all__ = ["BACKENDS", "backend_choices", "save_backend_choices", "load_backend_choices", "clear_backend_choices"]

BACKENDS = ("auto", "leanconv", "torch")
ENV = "LEANCONV_BACKEND"
KEY_FIELDS = ("module", "device", "dtype", "layout", "input_shape", "kernel", "stride", "padding", "dilation",
              "grad_input", "grad_weight", "threads")
ROUNDS = 3
MAX_ROUNDS = 6  # when the two are within CLOSE after ROUNDS rounds, up to this many
CLOSE = 1.05  # also the margin by which leanconv's path must beat PyTorch's to be chosen
DECISIVE = 3.0  # after the first round, a candidate this many times slower is out
TIMING_S = 1e-3  # a timing repeats a fast call until it lasts about this long (at most MAX_CALLS calls)
MAX_CALLS = 20
# Only a first call this long judges a candidate at once (9x slower than the other): a
# process's first call of an implementation can take a few hundred ms for initialisation
# alone (leanconv's first fwd+bwd of a process: 0.27 s, against 13 ms for PyTorch's
# convolution, whose own first call came before), while some PyTorch CPU kernels take
# seconds per call (bfloat16 31x31 fwd+bwd) and are not worth three more runs.
SLOW_CALL_S = 1.0
# A choice made by less than this factor is measured once more after RECHECK_AFTER calls of
# its signature: a process's first calls can run at other speeds than later ones (glibc's
# allocator adapts its thresholds to the blocks freed, oneDNN and the caches warm up)
RECHECK_AFTER = 100
RECHECK_WITHIN = 1.5

_CHOICES: dict[tuple, dict[str, Any]] = {}
# The checks below run on every call of an auto module: the cheapest forms available.
# torch.fx symbolic tracing in progress (the flag behind is_fx_symbolic_tracing, whose
# torch.compile half is checked on its own in pick)
_fx_tracing = getattr(torch.fx._symbolic_trace, "_get_is_fx_tracing",
                      getattr(torch.fx._symbolic_trace, "is_fx_symbolic_tracing", torch.fx._symbolic_trace.is_fx_tracing))
# LEANCONV_BACKEND read from os.environ's own mapping (os.environ.get encodes the key on
# every call); os.environ.get where that mapping is not there
_ENV_DATA = getattr(os.environ, "_data", None)
_ENV_KEY = os.environ.encodekey(ENV) if _ENV_DATA is not None and hasattr(os.environ, "encodekey") else None


def _env_value() -> str | None:
    if _ENV_KEY is None:
        return os.environ.get(ENV)
    value = _ENV_DATA.get(_ENV_KEY)
    return None if value is None else os.environ.decodevalue(value)


def check_backend(backend: str | None, owner: str) -> str | None:
    """A module's ``backend`` argument (None: from ``LEANCONV_BACKEND`` at each call)."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"{owner}: backend must be one of {BACKENDS} (or None for ${ENV}), got {backend!r}")
    return backend


def requested(backend: str | None) -> str:
    """The module's own setting, else ``LEANCONV_BACKEND``, else ``'auto'``."""
    if backend is not None:
        return backend
    env = _env_value()
    if env is None:
        return "auto"
    env = env.strip().lower() or "auto"
    if env not in BACKENDS:
        raise ValueError(f"{ENV} must be one of {BACKENDS}, got {os.environ[ENV]!r}")
    return env


def layout_of(t: torch.Tensor) -> str:
    if t.is_contiguous():
        return "contiguous"
    for name, mf in (("channels_last", torch.channels_last), ("channels_last_3d", torch.channels_last_3d)):
        if t.dim() == (4 if name == "channels_last" else 5) and t.is_contiguous(memory_format=mf):
            return name
    return "strided"


def _tuple(v: Sequence[int]) -> tuple:
    return v if type(v) is tuple else tuple(v)


def call_key(module: str, input: torch.Tensor, kernel: Sequence[int], stride: Sequence[int],
             padding: Any, dilation: Sequence[int], params: Sequence[torch.Tensor | None]) -> tuple:
    """The signature a choice is kept for (see :data:`KEY_FIELDS`).  Runs on every call of
    a module: kept cheap (a few microseconds)."""
    grad = torch.is_grad_enabled()
    device = input.device
    # (device.type costs 0.2 us, is_cuda / is_cpu a sixth of that)
    kind = "cuda" if input.is_cuda else "cpu" if input.is_cpu else device.type
    dtype = autocast_dtype(kind) or input.dtype
    grad_weight = False
    if grad:
        for p in params:
            if p is not None and p.requires_grad:
                grad_weight = True
                break
    # input.shape: a torch.Size, a tuple (equal to and hashed as the plain tuple of a saved key)
    return (module, device, dtype, layout_of(input), input.shape, _tuple(kernel), _tuple(stride),
            padding if isinstance(padding, str) else _tuple(padding), _tuple(dilation),
            grad and input.requires_grad, grad_weight, torch.get_num_threads() if kind == "cpu" else 0)


def _plain(key: tuple) -> list:
    """A key with its device and dtype as strings and the input shape a plain tuple (for
    JSON and for reading)."""
    return [str(v).replace("torch.", "") if isinstance(v, (torch.device, torch.dtype)) else
            tuple(v) if isinstance(v, torch.Size) else v for v in key]


def _from_plain(values: list) -> tuple:
    values = [_tuples(v) for v in values]
    values[1], values[2] = torch.device(values[1]), getattr(torch, values[2])
    return tuple(values)


def _time_call(name: str, fn: Callable[[], Any], device: torch.device, number: int = 1) -> float:
    """Seconds per call over ``number`` calls in a row (CUDA: events on the current stream)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / number
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def pick(module: str, setting: str | None, input: torch.Tensor, kernel: Sequence[int], stride: Sequence[int],
         padding: Any, dilation: Sequence[int], params: Sequence[torch.Tensor | None],
         forwards: dict[str, Callable[..., torch.Tensor]], table: Callable[[], str]) -> str:
    """The implementation a module runs for this call: ``'leanconv'`` or ``'torch'``.

    ``setting``: the module's ``backend`` argument; ``forwards``: both implementations as
    functions of ``(input, *params)``; ``table()``: the built-in choice, used while
    ``torch.compile`` or ``torch.fx`` traces (nothing can be timed then)."""
    backend = requested(setting)
    if backend != "auto":
        return backend
    if torch.compiler.is_compiling() or _fx_tracing():
        return table()
    key = call_key(module, input, kernel, stride, padding, dilation, params)
    hit = _CHOICES.get(key)
    if hit is not None:
        countdown = hit.get("recheck_in")
        if countdown is None:
            return hit["backend"]
        if countdown > 1:
            hit["recheck_in"] = countdown - 1
            return hit["backend"]
    prior = None if hit is None else {k: v / 1e3 for k, v in hit.get("times_ms", {}).items()}
    return choose(key, timed_candidates(input, params, forwards, key[9], key[10]), input.device,
                  again=hit is not None, prior=prior)


def timed_candidates(input: torch.Tensor, params: Sequence[torch.Tensor | None],
                     forwards: dict[str, Callable[..., torch.Tensor]], grad_input: bool,
                     grad_weight: bool) -> dict[str, Callable[[], None]]:
    """Each implementation as a call to time: forward on detached copies of the inputs,
    then backward (gradient of ones, no random numbers drawn) when gradients are needed."""
    x = input.detach().requires_grad_(grad_input)
    ps = [None if p is None else p.detach().requires_grad_(grad_weight and p.requires_grad) for p in params]
    wrt = [t for t in (x, *ps) if t is not None and t.requires_grad]

    def run(fwd: Callable[..., torch.Tensor]) -> None:
        if not wrt:
            with torch.no_grad():
                fwd(x, *ps)
            return
        with torch.enable_grad():
            y = fwd(x, *ps)
            torch.autograd.grad(y, wrt, torch.ones_like(y))

    return {name: (lambda f=f: run(f)) for name, f in forwards.items()}


def choose(key: tuple, candidates: dict[str, Callable[[], Any]], device: torch.device, again: bool = False,
           prior: dict[str, float] | None = None) -> str:
    """Time ``candidates`` (warm-up, then :data:`ROUNDS` interleaved rounds, up to
    :data:`MAX_ROUNDS` while their best times are within :data:`CLOSE`; a timing of a fast
    candidate repeats it for about :data:`TIMING_S`), keep the faster one for ``key`` and
    return its name.  ``again``: the re-measurement after :data:`RECHECK_AFTER` calls (a
    first choice by less than :data:`RECHECK_WITHIN` asks for it), whose result is final;
    ``prior``: the first measurement's best seconds per call, which the re-measurement's
    join (each candidate's best of both: load only adds time, so a burst of it during
    either measurement does not turn the choice)."""
    names = list(candidates)
    # warm-up (allocator, lazy initialisation such as oneDNN's kernel generation, caches),
    # twice, timed too: a candidate that is even DECISIVE**2 times slower is out at once
    # (PyTorch's bfloat16 31x31 depthwise fwd+bwd takes seconds on CPU: timing it four times
    # would make the first call cost a minute) - after the first call only when it took
    # SLOW_CALL_S or more, since a first call can be slow for its initialisation alone
    # (on CUDA never after the first call: there a first call of seconds is cuDNN compiling
    # its kernel for the shape - 1-1.6 s for bfloat16 channels_last on an H200 - and every
    # CUDA choice is measured once more after RECHECK_AFTER calls, which costs milliseconds)
    cuda = device.type == "cuda"
    warm = {name: _time_call(name, candidates[name], device) for name in names}
    for second in (False, True):
        if second:
            warm = {name: min(warm[name], _time_call(name, candidates[name], device)) for name in names}
        if max(warm.values()) > DECISIVE**2 * min(warm.values()) and (
                second or (max(warm.values()) >= SLOW_CALL_S and not cuda)):
            return _keep(key, min(warm, key=warm.get), warm, again, recheck=cuda)
    # one call of a sub-millisecond layer is mostly timer noise: time several in a row
    number = repeats_for(min(warm.values()), TIMING_S, MAX_CALLS)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(MAX_ROUNDS):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(_time_call(name, candidates[name], device, number))
        best = {k: min(v) for k, v in times.items()}
        if r == 0 and max(best.values()) > DECISIVE * min(best.values()):
            break
        if r + 1 >= ROUNDS and max(best.values()) > CLOSE * min(best.values()):
            break
    best = {k: min(v) for k, v in times.items()}
    if prior:
        best = {k: min(v, prior.get(k, v)) for k, v in best.items()}
    winner = min(best, key=best.get)
    if "torch" in best and best["torch"] <= CLOSE * best[winner]:
        # within the margin, run what the user replaced: a near tie measured on the first call
        # can turn either way later (allocator and cache state), and the module then costs
        # only its call overhead on top of PyTorch's
        winner = "torch"
    return _keep(key, winner, best, again,
                 recheck=cuda or max(best.values()) < RECHECK_WITHIN * min(best.values()))


def _keep(key: tuple, winner: str, seconds: dict[str, float], again: bool, recheck: bool) -> str:
    """Record the choice for ``key`` (with the times it was made on; a first choice with
    ``recheck`` is measured once more after :data:`RECHECK_AFTER` calls) and return it."""
    entry = {"backend": winner, "how": "re-measured" if again else "measured",
             "times_ms": {k: v * 1e3 for k, v in seconds.items()}}
    if recheck and not again:
        entry["recheck_in"] = RECHECK_AFTER
    _CHOICES[key] = entry
    return winner


def backend_choices() -> list[dict[str, Any]]:
    """Every choice made (or loaded) in this process: the call signature's fields, the
    backend, how it was decided (measured, re-measured or loaded), the measured times (ms)
    where measured, and ``recheck_in``: calls left before a close choice is measured again."""
    return [{**dict(zip(KEY_FIELDS, _plain(key))), **value} for key, value in _CHOICES.items()]


def clear_backend_choices() -> None:
    """Forget every choice (the next call of each signature measures again)."""
    _CHOICES.clear()


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def save_backend_choices(path: str | os.PathLike) -> Path:
    """Write the choices to a JSON file (atomically); returns its path."""
    from .._io import atomic_write_text

    path = Path(path)
    rows = [{"key": _plain(key), **{k: v for k, v in value.items() if k != "recheck_in"}}
            for key, value in _CHOICES.items()]
    atomic_write_text(path, json.dumps({"format": "leanconv-backend-choices/1", "fields": list(KEY_FIELDS),
                                        "choices": rows}, indent=1) + "\n")
    return path


def load_backend_choices(path: str | os.PathLike) -> int:
    """Add the choices of a file written by :func:`save_backend_choices` (they are used
    without measuring; a signature chosen in this process already keeps its choice).
    Returns the number of choices read."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable backend-choices file ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != "leanconv-backend-choices/1" \
            or list(data.get("fields", [])) != list(KEY_FIELDS):
        raise ValueError(f"{path}: not a leanconv backend-choices file of this version "
                         f"(format leanconv-backend-choices/1 with fields {list(KEY_FIELDS)})")
    n = 0
    for row in data["choices"]:
        try:
            if row.get("backend") not in ("leanconv", "torch") or len(row.get("key", [])) != len(KEY_FIELDS):
                raise ValueError
            key = _from_plain(row["key"])
            if not isinstance(key[2], torch.dtype):
                raise ValueError
        except (ValueError, TypeError, AttributeError, RuntimeError):
            raise ValueError(f"{path}: bad entry {row!r}") from None
        _CHOICES.setdefault(key, {"backend": row["backend"], "how": "loaded", "times_ms": row.get("times_ms")})
        n += 1
    return n
