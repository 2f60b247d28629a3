"""Finite-element simulator of the 2-D scalar wave equation and its data sets.

Solver:
    :class:`WaveSolver` - batched explicit Q1 finite elements (lumped mass,
    central differences) on CPU or GPU; ``run``, ``advance``, ``energy``.
    :mod:`leanconv.wave.reference` - the same operators assembled with
    scikit-fem and a sparse stepping loop (the reference).
    :class:`Boundary`, :class:`Sponge`, :func:`stable_dt`.
Sources and media:
    :func:`ricker`, :class:`PointSources`, :func:`gaussian_pulses`,
    :func:`velocity_model` and :data:`MEDIA`.
Data sets:
    :class:`DatasetConfig`, :func:`write_dataset` (resumable, atomic shards),
    :func:`open_dataset`, :func:`generate`, :func:`make_dataset`,
    :func:`verify_dataset`, :class:`WaveData`, :class:`WaveWindows` (the
    ``torch.utils.data.Dataset`` for surrogates), :func:`reference_rollout`,
    :func:`solver_for` (FE continuation of snapshots) and :func:`snapshot_energy`.
"""
from .analytic import ricker_point_source_2d, standing_mode
from .data import WaveData, generate, make_dataset, open_dataset, reference_rollout, snapshot_energy, solver_for
from .generate import DatasetConfig, simulate_trajectories, solver_velocity
from .grid import Boundary, Grid, Sponge, stable_dt
from .media import MEDIA, velocity_model
from .solver import WaveSolver
from .sources import PointSources, gaussian_pulses, ricker
from .store import DatasetError, write_dataset
from .verify import VerifyReport, verify_dataset
from .windows import WaveWindows, split_trajectories

__all__ = [
    "WaveSolver", "Boundary", "Grid", "Sponge", "stable_dt",
    "ricker", "PointSources", "gaussian_pulses", "MEDIA", "velocity_model",
    "standing_mode", "ricker_point_source_2d",
    "DatasetConfig", "simulate_trajectories", "solver_velocity", "write_dataset", "open_dataset", "generate", "make_dataset",
    "verify_dataset", "VerifyReport", "DatasetError", "WaveData", "WaveWindows", "split_trajectories",
    "reference_rollout", "solver_for", "snapshot_energy",
]
