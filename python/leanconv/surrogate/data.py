"""The surrogates' view of a wave data set (see :mod:`leanconv.wave`)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..wave import DatasetError, WaveData, WaveWindows, open_dataset, split_trajectories
from ..wave.store import ARRAYS, dataset_digest

__all__ = ["open_data", "open_split", "normalization_stats", "data_layout", "layout_mismatches", "split_sizes"]

_CACHE: dict[str, WaveData] = {}


def open_data(data: WaveData | str | os.PathLike) -> WaveData:
    """A :class:`WaveData` from a folder (verified once per process) or as given."""
    if isinstance(data, WaveData):
        return data
    key = os.path.abspath(os.fspath(data))
    if key not in _CACHE:
        if not os.path.exists(key):
            raise FileNotFoundError(f"data set {data} does not exist; make one with `leanconv simulate --out {data}`")
        if not os.path.isdir(key):
            raise DatasetError(f"data set {data} is a file, not a data set folder (pass the folder that holds "
                               "manifest.json)")
        _CACHE[key] = open_dataset(key, verify="full")
    return _CACHE[key]


def data_layout(data: WaveData | str | os.PathLike) -> dict[str, Any]:
    """What a surrogate trained on ``data`` expects of data it is rolled out on: the frame
    grid, the time between frames, and the arrays each trajectory has (its channels)."""
    wd = open_data(data)
    shards = wd.meta.get("shards") or []
    channels = sorted(shards[0]["files"]) if shards else list(ARRAYS)
    return {"frame_shape": [int(n) for n in wd.frame_shape], "snapshot_dt": float(wd.snapshot_dt),
            "channels": channels}


def data_identity(data: WaveData | str | os.PathLike) -> str:
    """The data set's manifest digest (:func:`leanconv.wave.store.dataset_digest`)."""
    return dataset_digest(open_data(data).meta)


def layout_mismatches(trained: dict[str, Any] | None, data: WaveData | str | os.PathLike) -> list[str]:
    """How ``data`` differs from the training data described by ``trained`` (a
    :func:`data_layout`): one phrase per difference (empty when it matches or nothing was recorded)."""
    if not trained:
        return []
    mine = data_layout(data)
    out = []
    if list(trained.get("frame_shape", mine["frame_shape"])) != mine["frame_shape"]:
        out.append("{} x {} frames, the data set's are {} x {}".format(*trained["frame_shape"], *mine["frame_shape"]))
    dt = trained.get("snapshot_dt", mine["snapshot_dt"])
    if not np.isclose(dt, mine["snapshot_dt"], rtol=1e-9, atol=0.0):
        out.append(f"frames {dt:.6g} apart, the data set's are {mine['snapshot_dt']:.6g} apart")
    if list(trained.get("channels", mine["channels"])) != mine["channels"]:
        out.append(f"channels {', '.join(trained['channels'])}, the data set has {', '.join(mine['channels'])}")
    return out


def split_sizes(n: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, int]:
    """Trajectories in each split of a data set of ``n`` (see :func:`leanconv.wave.split_trajectories`)."""
    return {s: len(split_trajectories(n, s, fractions)) for s in ("train", "val", "test")}


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
