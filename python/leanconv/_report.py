"""Timing in interleaved rounds and markdown tables: shared by the benchmarks
(:mod:`leanconv.bench`), the surrogate comparison (:mod:`leanconv.surrogate.evaluate`)
and the drop-in modules' backend choice (:mod:`leanconv.nn._select`, calls per timing)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["paired_rounds", "calls_per_timing", "repeats_for", "markdown_table"]


def paired_rounds(fns: dict[str, Callable[[], Any]], min_run_time: float,
                  clock: Callable[[], float] = time.perf_counter, sync: Callable[[], Any] | None = None,
                  min_rounds: int = 5, max_rounds: int = 50, number: int = 1) -> dict[str, list[float]]:
    """Seconds per call of every function in ``fns``, timed in interleaved rounds.

    Each round calls every function ``number`` times in a row (its time is
    the mean of those calls; see :func:`calls_per_timing`), one function
    after the other (the order reverses every other round), so all of them
    see the same load of a shared machine and a ratio can be taken within
    each round.  Rounds go on until there are at least ``min_rounds`` and
    the slowest function has run ``min_run_time`` seconds (at most
    ``max_rounds``).  ``clock`` is wall time by default (pass
    ``time.process_time`` for this process's CPU time); ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before each reading of the clock.
    """
    if number < 1:
        raise ValueError(f"paired_rounds: number must be >= 1, got {number}")
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    while True:
        for k in names if len(times[names[0]]) % 2 == 0 else reversed(names):
            if sync:
                sync()
            t0 = clock()
            for _ in range(number):
                fns[k]()
            if sync:
                sync()
            times[k].append((clock() - t0) / number)
        rounds = len(times[names[0]])
        if rounds >= max_rounds or (rounds >= min_rounds and
                                    max(sum(t) for t in times.values()) * number >= min_run_time):
            return times


def calls_per_timing(fns: dict[str, Callable[[], Any]], target: float, clock: Callable[[], float] = time.perf_counter,
                     sync: Callable[[], Any] | None = None, most: int = 100) -> int:
    """How many calls in a row make one timing of the fastest function last about ``target``
    seconds (1 to ``most``), from one timed call of each: a single call of a sub-millisecond
    function is mostly timer and scheduling noise."""
    fastest = float("inf")
    for fn in fns.values():
        if sync:
            sync()
        t0 = clock()
        fn()
        if sync:
            sync()
        fastest = min(fastest, clock() - t0)
    return repeats_for(fastest, target, most)


def repeats_for(seconds_per_call: float, target: float, most: int) -> int:
    """Calls in a row (1 to ``most``) that take about ``target`` seconds at ``seconds_per_call``."""
    return int(min(most, max(1, math.ceil(target / max(seconds_per_call, 1e-9)))))


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as a markdown table (floats with 4 significant digits)."""
    if not rows:
        return "(no rows)\n"
    columns = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"
