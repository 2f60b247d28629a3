"""How the wave solver uses torch's intra-op threads on CPU (one policy, one place).

Each multi-threaded torch op ends in a thread barrier, and on a busy machine
(more runnable threads than cores) every barrier can cost a scheduler time
slice: the many small ops of set-up, snapshot copies and the torch-ops stepper
then took 10x the stepping itself.  So, while a solver method runs, torch ops
run on one thread; the compiled stepping op (which threads over the batch
itself, one item per thread with all its steps in cache) gets the caller's
thread count back for its own calls; the torch-ops stepper runs chunks of the
batch on that many Python worker threads with one intra-op thread each
(torch releases the GIL inside ops).  Not thread-safe: use a solver from one
thread at a time.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch

__all__ = ["ThreadPolicy"]


class ThreadPolicy:
    """The thread policy of one solver (a no-op off the CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.cpu = device.type == "cpu"
        self._caller: int | None = None  # the caller's thread count while a method runs

    @property
    def threads(self) -> int:
        """The threads the stepping may use: the caller's count."""
        return self._caller or torch.get_num_threads()

    @contextlib.contextmanager
    def bookkeeping(self) -> Iterator[None]:
        """Run the enclosed torch ops on one thread (nested uses are free)."""
        if not self.cpu or self._caller is not None:
            yield
            return
        n = torch.get_num_threads()
        self._caller = n
        if n > 1:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            self._caller = None
            if n > 1:
                torch.set_num_threads(n)

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """All the caller's threads for one call of the compiled op, then back."""
        n, now = self.threads, torch.get_num_threads()
        if not self.cpu or n <= 1 or now == n:
            yield
            return
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(now)

    def run_chunks(self, work: Callable[[slice], None], slices: Sequence[slice]) -> None:
        """``work`` on every slice, on up to :attr:`threads` Python workers of one intra-op thread each."""
        from concurrent.futures import ThreadPoolExecutor

        main = torch.get_num_threads()
        try:
            with ThreadPoolExecutor(max_workers=min(self.threads, len(slices)),
                                    initializer=torch.set_num_threads, initargs=(1,)) as pool:
                for f in [pool.submit(work, sl) for sl in slices]:
                    f.result()
        finally:
            if torch.get_num_threads() != main:  # torch's thread pools are process-wide
                torch.set_num_threads(main)
