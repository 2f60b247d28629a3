"""Timing in interleaved rounds and markdown tables: shared by the benchmarks
(:mod:`leanconv.bench`) and the surrogate comparison (:mod:`leanconv.surrogate.evaluate`)."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["paired_rounds", "markdown_table"]


def paired_rounds(fns: dict[str, Callable[[], Any]], min_run_time: float,
                  clock: Callable[[], float] = time.perf_counter, sync: Callable[[], Any] | None = None,
                  min_rounds: int = 5, max_rounds: int = 50) -> dict[str, list[float]]:
    """Seconds per call of every function in ``fns``, timed in interleaved rounds.

    Each round calls every function once (the order reverses every other
    round), so all of them see the same load of a shared machine and a ratio
    can be taken within each round.  Rounds go on until there are at least
    ``min_rounds`` and the slowest function has run ``min_run_time`` seconds
    (at most ``max_rounds``).  ``clock`` is wall time by default (pass
    ``time.process_time`` for this process's CPU time); ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before each reading of the clock.
    """
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    while True:
        for k in names if len(times[names[0]]) % 2 == 0 else reversed(names):
            if sync:
                sync()
            t0 = clock()
            fns[k]()
            if sync:
                sync()
            times[k].append(clock() - t0)
        rounds = len(times[names[0]])
        if rounds >= max_rounds or (rounds >= min_rounds and max(sum(t) for t in times.values()) >= min_run_time):
            return times


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
