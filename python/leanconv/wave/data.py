"""Wave data sets in Python: open a folder (memory-mapped) or make one in memory, and
continue trajectories with the finite-element solver ("FE reference" rollouts)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .generate import DatasetConfig, simulate_trajectories
from .grid import Sponge
from .solver import WaveSolver
from .store import ARRAYS, DatasetError, _new_manifest, iter_shards, read_manifest, write_dataset
from .verify import check_shard, manifest_problems, seed_problem

__all__ = ["WaveData", "open_dataset", "generate", "make_dataset", "solver_for", "reference_rollout",
           "snapshot_energy"]


@dataclass
class _Shard:
    start: int
    count: int
    paths: dict[str, Path] | None = None
    arrays: dict[str, np.ndarray] | None = None

    def array(self, name: str) -> np.ndarray:
        if self.arrays is None:
            arrays = {}
            for key, path in self.paths.items():
                try:
                    arrays[key] = np.load(path, mmap_mode="r", allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise DatasetError(f"{path}: cannot map the shard ({exc}); run `leanconv dataset verify`") from exc
            self.arrays = arrays
        return self.arrays[name]

    def __getstate__(self) -> dict[str, Any]:
        # memory maps are reopened in the receiving process (DataLoader workers) instead of copied
        state = dict(self.__dict__)
        if self.paths is not None:
            state["arrays"] = None
        return state


class WaveData:
    """The trajectories of a wave data set: frames ``(N, T, H, W)`` and velocities ``(N, H, W)``.

    Made by :func:`open_dataset` (shards memory-mapped from a folder) or
    :func:`generate` (arrays in memory).  ``meta`` is the manifest (settings,
    seed, ...).  Frames are float32 nodal values on the unit square, ``every``
    solver steps (``snapshot_dt`` in time) apart; frame 0 is the initial state.
    """

    def __init__(self, meta: dict[str, Any], shards: list[_Shard], root: Path | None = None) -> None:
        self.meta = meta
        self.root = root
        self._shards = shards
        self._starts = np.array([s.start for s in shards], dtype=np.int64)
        self._n = sum(s.count for s in shards)

    # -- settings
    @property
    def config(self) -> DatasetConfig:
        return DatasetConfig.from_dict(self.meta["config"])

    @property
    def settings(self) -> dict[str, Any]:
        """Solver settings: ``shape, spacing, dt, every, snapshot_dt, frames, boundary, sponge, ...``."""
        return self.meta["solver"]

    @property
    def every(self) -> int:
        return int(self.settings["every"])

    @property
    def snapshot_dt(self) -> float:
        return float(self.settings["snapshot_dt"])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.settings["shape"])

    @property
    def frames_per_trajectory(self) -> int:
        return int(self.settings["frames"])

    def __len__(self) -> int:
        return self._n

    def _locate(self, i: int) -> tuple[_Shard, int]:
        if not (0 <= i < self._n):
            raise IndexError(f"trajectory {i} out of range for {self._n} trajectories")
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        shard = self._shards[k]
        return shard, i - shard.start

    def frames(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start:stop`` of trajectory ``i`` (a read-only view for mapped data)."""
        shard, j = self._locate(i)
        return shard.array("frames")[j, start:stop]

    def velocity(self, i: int) -> np.ndarray:
        """Velocity model ``(H, W)`` of trajectory ``i``."""
        shard, j = self._locate(i)
        return shard.array("velocity")[j]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All frames ``(N, T, H, W)`` and velocities ``(N, H, W)`` as (copied) arrays."""
        fr = np.concatenate([s.array("frames") for s in self._shards])
        ve = np.concatenate([s.array("velocity") for s in self._shards])
        return fr, ve

    def solver(self, velocity: Any, device: Any = None, dtype: torch.dtype | None = None) -> WaveSolver:
        """A :class:`WaveSolver` with this data set's settings for ``velocity`` ``(B, H, W)``."""
        return solver_for(self.settings, velocity, device=device, dtype=dtype)

    def __repr__(self) -> str:
        where = f"{self.root}" if self.root is not None else "in memory"
        return (f"WaveData({self._n} trajectories x {self.frames_per_trajectory} frames of "
                f"{self.frame_shape[0]}x{self.frame_shape[1]}, {where})")


def open_dataset(root: str | os.PathLike, verify: str = "full") -> WaveData:
    """Open a data-set folder written by ``leanconv simulate`` / :func:`write_dataset`.

    ``verify``: ``"full"`` (default) checks every shard's size, header and
    SHA-256 against the manifest before mapping it; ``"quick"`` skips the
    SHA-256; both also check the seed against the first stored velocity
    model; ``"none"`` only reads the manifest.  Always checked: the manifest's
    own consistency (:func:`leanconv.wave.verify.manifest_problems`).  A
    missing, truncated or altered shard or an inconsistent manifest raises
    :class:`DatasetError` naming the file.
    """
    if verify not in ("full", "quick", "none"):
        raise ValueError(f"verify must be 'full', 'quick' or 'none', got {verify!r}")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetError(f"data set {str(root)!r} is a file, not a data set folder (pass the folder that holds "
                           "manifest.json)")
    manifest = read_manifest(root)
    problems = manifest_problems(manifest)
    if problems:
        p = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise DatasetError(f"{root / p.name}: inconsistent manifest: {p.message}{more}; "
                           f"run `leanconv dataset verify {root}`")
    if not manifest["complete"]:
        raise DatasetError(
            f"{root}: the data set is incomplete (its writing was interrupted); rerun `leanconv simulate` "
            "with the same arguments to finish it"
        )
    shards = []
    for s in iter_shards(manifest):
        if verify != "none":
            problems = check_shard(root, s, full=verify == "full")
            if problems:
                p = problems[0]
                raise DatasetError(f"{root / p.name}: {p.kind} shard: {p.message}; run `leanconv dataset verify {root}`")
            if not shards:  # the seed against the first stored velocity model
                p = seed_problem(root, manifest, s)
                if p is not None:
                    raise DatasetError(f"{root / p.name}: inconsistent manifest: {p.message}; "
                                       f"run `leanconv dataset verify {root}`")
        shards.append(_Shard(s["start"], s["count"], paths={a: root / s["files"][a]["name"] for a in ARRAYS}))
    return WaveData(manifest, shards, root)


def generate(config: DatasetConfig | None = None, samples: int = 128, seed: int = 0, *,
             device: str | None = None, progress: bool = False) -> WaveData:
    """Simulate a data set in memory (same trajectories as :func:`write_dataset` would store)."""
    config = config or DatasetConfig()
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=samples, unit="traj", desc="simulate")
    frames, velocity = [], []
    try:
        for start in range(0, samples, config.shard_size):
            idx = range(start, min(samples, start + config.shard_size))
            fr, ve = simulate_trajectories(config, seed, idx, device=device,
                                           progress=None if bar is None else bar.update)
            frames.append(fr)
            velocity.append(ve)
    finally:
        if bar is not None:
            bar.close()
    meta = _new_manifest(config, samples, seed)
    meta["complete"] = True
    shard = _Shard(0, samples, arrays={"frames": np.concatenate(frames), "velocity": np.concatenate(velocity)})
    return WaveData(meta, [shard])


def make_dataset(out: str | os.PathLike | None = None, *, samples: int = 128, seed: int = 0,
                 device: str | None = None, progress: bool = False, overwrite: bool = False,
                 **settings: Any) -> WaveData:
    """Quick data set for demos and tests: in memory (``out=None``) or written to ``out``.

    ``settings`` are :class:`DatasetConfig` fields; the defaults here are
    small: ``grid=32, steps=200, every=5`` (41 frames of 32x32).  Returns the
    :class:`WaveData` (memory-mapped from ``out`` when given).
    """
    settings = {"grid": 32, "steps": 200, "every": 5, **settings}
    config = DatasetConfig(**settings)
    if out is None:
        return generate(config, samples, seed, device=device, progress=progress)
    write_dataset(out, config, samples, seed, device=device, progress=progress, overwrite=overwrite)
    return open_dataset(out)


def solver_for(settings: dict[str, Any] | WaveData, velocity: Any, *, device: Any = None,
               dtype: torch.dtype | None = None) -> WaveSolver:
    """A :class:`WaveSolver` with a data set's solver settings (``WaveData.settings`` or the manifest's ``solver``)."""
    if isinstance(settings, WaveData):
        settings = settings.settings
    if int(settings.get("coarsen", 1)) > 1:
        raise ValueError(
            f"this data set stores frames coarsened {settings['coarsen']}x from the solver grid "
            f"{tuple(settings['solver_shape'])}: its snapshots cannot be continued by the solver; "
            "re-simulate the trajectories with simulate_trajectories(config, seed, indices) instead"
        )
    c = torch.as_tensor(np.asarray(velocity) if not isinstance(velocity, torch.Tensor) else velocity)
    if c.dim() == 2:
        c = c.unsqueeze(0)
    if tuple(c.shape[-2:]) != tuple(settings["shape"]):
        raise ValueError(f"velocity has frames {tuple(c.shape[-2:])}, the data set's are {tuple(settings['shape'])}")
    sponge = settings.get("sponge")
    dtype = dtype or getattr(torch, settings.get("compute_dtype", "float32"))
    return WaveSolver(
        c.to(torch.float64),
        spacing=settings["spacing"],
        dt=settings["dt"],
        boundary=settings["boundary"],
        sponge=None if not sponge else Sponge(sponge["width"], sponge["strength"]),
        scheme=settings.get("scheme", "q1"),
        device=device if device is not None else (c.device if isinstance(velocity, torch.Tensor) else "cpu"),
        dtype=dtype,
    )


def reference_rollout(settings: dict[str, Any] | WaveData, velocity: Any, u_prev: Any, u_now: Any,
                      intervals: int, *, device: Any = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The finite-element reference continuation of snapshots, batched, on CPU or GPU.

    Args:
        settings: the data set (``WaveData``) or its ``settings`` dict.
        velocity: ``(B, H, W)`` velocity models.
        u_prev, u_now: ``(B, H, W)`` consecutive snapshots (one snapshot
            interval, ``every`` solver steps, apart).
        intervals: how many snapshot intervals to advance.
    Returns:
        ``(B, intervals, H, W)``: the next snapshots, in the data set's compute
        dtype on ``device`` (default: where ``velocity`` lives).  For a
        source-free data set with reflecting or Dirichlet walls they equal the
        stored frames to round-off; the cost is ``every`` solver steps per
        interval (see :meth:`WaveSolver.advance`).
    """
    solver = solver_for(settings, velocity, device=device, dtype=dtype)
    every = int((settings.settings if isinstance(settings, WaveData) else settings)["every"])
    return solver.advance(u_prev, u_now, intervals, every=every)


def snapshot_energy(settings: dict[str, Any] | WaveData, velocity: Any, u_prev: Any, u_now: Any, *,
                    device: Any = None) -> torch.Tensor:
    """Discrete energy of consecutive snapshots (one snapshot interval apart), float64 ``(B,)``.

    ``1/2 v^T M v + 1/2 u_now^T K u_prev`` with ``v = (u_now - u_prev) / snapshot_dt``
    and the data set's mass (which depends on ``velocity``) and stiffness; see
    :meth:`WaveSolver.energy`.  Exactly conserved only between consecutive
    solver steps; between snapshots ``every`` steps apart it is the same
    quantity to ``O(snapshot_dt^2)``, so compare drifts, not absolute values,
    across snapshot spacings.
    """
    settings = settings.settings if isinstance(settings, WaveData) else settings
    every = int(settings["every"])
    k = int(settings.get("coarsen", 1))
    if k > 1:  # the same energy functional on the grid of the stored frames
        settings = {**settings, "spacing": settings["spacing"] * k, "coarsen": 1}
    settings = {**settings, "scheme": "q1"}  # the Q1 energy functional, whatever scheme made the frames
    solver = solver_for(settings, velocity, device=device, dtype=torch.float64)
    return solver.energy(u_prev, u_now, interval=every)
