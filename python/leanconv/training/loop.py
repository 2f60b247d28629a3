"""Helpers of the epoch loops: the seeded order of an epoch and the progress bar."""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["epoch_generator", "progress_bar"]


def epoch_generator(seed: int, epoch: int, stride: int = 1_000_003) -> torch.Generator:
    """A CPU generator seeded from the run's ``seed`` and ``epoch`` alone (``seed * stride +
    epoch``): an epoch's shuffle (and whatever else draws from it) is the same whether the run
    was interrupted before that epoch or not."""
    return torch.Generator().manual_seed(seed * stride + epoch)


def progress_bar(total: int, *, enabled: bool = True, desc: str | None = None, unit: str = "batch",
                 initial: int = 0, leave: bool = False, **kwargs: Any):
    """A tqdm progress bar over ``total`` steps (``initial`` already done).  It shows only when
    ``enabled`` and the output is a terminal (logs stay readable); otherwise it is a bar that
    draws nothing, so loops can update it unconditionally."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, dynamic_ncols=True,
                disable=None if enabled else True, **kwargs)
