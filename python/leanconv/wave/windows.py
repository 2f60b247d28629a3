"""``WaveWindows``: a ``torch.utils.data.Dataset`` of (input frames, velocity, target frames) windows."""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .data import WaveData, open_dataset

__all__ = ["WaveWindows", "split_trajectories", "SPLITS"]

SPLITS = ("train", "val", "test", "all")


def split_trajectories(n: int, split: str, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> np.ndarray:
    """Trajectory indices of ``split`` (``train``/``val``/``test``/``all``) out of ``n``.

    A seeded permutation of ``0..n-1`` is cut at the cumulative ``fractions``
    (rounded), so the three splits are disjoint, cover every trajectory and do
    not depend on window settings.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1 (train, val, test), got {fractions}")
    order = np.random.default_rng(seed).permutation(n)
    if split == "all":
        return np.sort(order)
    cuts = np.rint(np.cumsum([0.0, *fractions]) * n).astype(int)
    k = ("train", "val", "test").index(split)
    return np.sort(order[cuts[k]:cuts[k + 1]])


class WaveWindows(Dataset):
    """Windows of wave trajectories for surrogate training.

    Item ``k`` is ``(inputs, velocity, targets)``: float32 tensors of shape
    ``(t_in, H, W)``, ``(1, H, W)`` and ``(t_out, H, W)``, where ``inputs`` are
    frames ``s .. s+t_in-1`` of one trajectory and ``targets`` the next
    ``t_out`` frames.  Window starts ``s`` run over ``0, stride, 2 stride, ...``
    while the window fits in the trajectory.

    Args:
        data: a :class:`WaveData` or a data-set folder (opened with
            ``open_dataset(path, verify)``; shards are memory-mapped and
            reopened in DataLoader workers).
        t_in, t_out: frames in and out (``t_in >= 1``, ``t_out >= 1``).
        stride: frames between window starts.
        split: ``'train'``, ``'val'``, ``'test'`` or ``'all'``; trajectories are
            split, not windows, so no trajectory leaks across splits.
        fractions: train/val/test fractions of the trajectories.
        split_seed: seed of the trajectory permutation.
        verify: checks made when ``data`` is a folder (see :func:`open_dataset`).

    Attributes: ``data``, ``trajectories`` (indices in this split),
    ``windows_per_trajectory``, ``snapshot_dt``.
    """

    def __init__(
        self,
        data: WaveData | str | os.PathLike,
        t_in: int,
        t_out: int,
        *,
        stride: int = 1,
        split: str = "train",
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        verify: str = "full",
    ) -> None:
        for name, v in (("t_in", t_in), ("t_out", t_out), ("stride", stride)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"WaveWindows: {name} must be a positive integer, got {v!r}")
        self.data = data if isinstance(data, WaveData) else open_dataset(data, verify=verify)
        T = self.data.frames_per_trajectory
        if t_in + t_out > T:
            raise ValueError(
                f"WaveWindows: t_in + t_out = {t_in + t_out} frames do not fit in a trajectory of {T} frames"
            )
        self.t_in, self.t_out, self.stride = t_in, t_out, stride
        self.trajectories = split_trajectories(len(self.data), split, fractions, split_seed)
        if len(self.trajectories) == 0:
            raise ValueError(
                f"WaveWindows: split {split!r} is empty ({len(self.data)} trajectories, fractions {tuple(fractions)})"
            )
        self.split = split
        self.windows_per_trajectory = (T - t_in - t_out) // stride + 1

    @property
    def snapshot_dt(self) -> float:
        return self.data.snapshot_dt

    def __len__(self) -> int:
        return len(self.trajectories) * self.windows_per_trajectory

    def window(self, k: int) -> tuple[int, int]:
        """``(trajectory index, first frame)`` of window ``k``."""
        if not (0 <= k < len(self)):
            raise IndexError(f"window {k} out of range for {len(self)} windows")
        t, w = divmod(k, self.windows_per_trajectory)
        return int(self.trajectories[t]), w * self.stride

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i, s = self.window(int(k))
        frames = np.array(self.data.frames(i, s, s + self.t_in + self.t_out), dtype=np.float32)
        velocity = np.array(self.data.velocity(i), dtype=np.float32)[None]
        x = torch.from_numpy(frames[: self.t_in])
        y = torch.from_numpy(frames[self.t_in:])
        return x, torch.from_numpy(velocity), y

    def __repr__(self) -> str:
        return (f"WaveWindows({self.split}: {len(self.trajectories)} trajectories x {self.windows_per_trajectory} "
                f"windows, t_in={self.t_in}, t_out={self.t_out}, stride={self.stride})")
