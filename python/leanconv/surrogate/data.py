"""The surrogates' view of a wave data set (see :mod:`leanconv.wave`)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..wave import WaveData, WaveWindows, open_dataset, split_trajectories

__all__ = ["open_data", "open_split", "normalization_stats"]

_CACHE: dict[str, WaveData] = {}


def open_data(data: WaveData | str | os.PathLike) -> WaveData:
    """A :class:`WaveData` from a folder (verified once per process) or as given."""
    if isinstance(data, WaveData):
        return data
    key = os.path.abspath(os.fspath(data))
    if key not in _CACHE:
        if not os.path.isdir(key):
            raise FileNotFoundError(f"data set {data} does not exist; make one with `leanconv simulate --out {data}`")
        _CACHE[key] = open_dataset(key, verify="full")
    return _CACHE[key]


def open_split(data: WaveData | str | os.PathLike, split: str, t_in: int, t_out: int, stride: int = 1) -> WaveWindows:
    """Windows (t_in frames in, t_out frames out) of one split (``train``/``val``/``test``)."""
    return WaveWindows(open_data(data), t_in, t_out, stride=stride, split=split)


def normalization_stats(data: WaveData | str | os.PathLike) -> dict[str, Any]:
    """Input scaling for the surrogates from the training trajectories:
    ``u_scale`` (RMS of the frames), ``c_mean`` and ``c_scale`` (mean and std
    of the velocity, std floored at 1e-3 of the mean for constant media)."""
    wd = open_data(data)
    idx = split_trajectories(len(wd), "train")
    sq, n, cs = 0.0, 0, []
    for i in idx:
        f = np.asarray(wd.frames(int(i)), dtype=np.float64)
        sq += float(np.square(f).sum())
        n += f.size
        cs.append(np.asarray(wd.velocity(int(i)), dtype=np.float64))
    c = np.stack(cs)
    u_scale = float(np.sqrt(sq / max(n, 1)))
    c_mean = float(c.mean())
    return {"u_scale": u_scale if u_scale > 0 else 1.0, "c_mean": c_mean,
            "c_scale": max(float(c.std()), 1e-3 * abs(c_mean), 1e-12)}
