"""Data-set settings and the batched simulation of trajectories.

A trajectory is fully determined by ``(config, seed, index)``: its random
numbers come from ``numpy.random.default_rng([seed, index])``, so shards can be
generated in any order, resumed, or in parallel, and give the same bytes.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .grid import Grid, Sponge, stable_dt
from .media import MEDIA, velocity_model
from .solver import WaveSolver
from .sources import PointSources, gaussian_pulses

__all__ = ["DatasetConfig", "simulate_trajectories", "solver_velocity", "initial_conditions", "fine_solver",
           "SOURCES"]

SOURCES = ("pulse", "ricker")


@dataclass(frozen=True)
class DatasetConfig:
    """How the trajectories of a data set are made (stored in its manifest).

    The domain is the unit square with ``grid x grid`` nodes (``grid - 1``
    cells, ``h = 1 / (grid - 1)``); frames are the nodal values, so a frame
    is ``grid x grid``.  The time step is ``courant * h / c_max`` for every
    trajectory (``c_max`` of the range, not of the model), so all
    trajectories share ``dt`` and the snapshot spacing ``every * dt``.

    Attributes:
        grid: nodes per side.
        steps: solver steps per trajectory; ``steps // every + 1`` frames
            are kept (frame 0 is the initial state).
        every: solver steps between stored frames.
        courant: ``dt`` as a fraction of the stability limit.
        boundary: boundary kind(s), see :class:`leanconv.wave.Boundary`.
        sponge: width in cells of a sponge layer on absorbing sides (0: none).
        media: velocity model kinds to draw from, uniformly per trajectory.
        c_min, c_max: velocity range.
        source: ``'pulse'`` (Gaussian initial displacements at rest) or
            ``'ricker'`` (one Ricker point source, zero initial state).
        pulses: (min, max) number of Gaussian pulses.
        pulse_width: (min, max) standard deviation of a pulse, in cells.
        ricker_ppw: (min, max) points per peak wavelength at ``c_min``; the
            peak frequency is ``c_min / (ppw * h)``.
        dtype: precision of the simulation (``'float32'`` or ``'float64'``);
            frames are stored as float32 either way.
        shard_size: trajectories per shard file.
        coarsen: keep every ``coarsen``-th node along each axis in the stored
            frames and velocity (``(grid - 1) % coarsen == 0``): the solver runs
            on the fine grid, the data set holds its nodal values on a grid
            ``coarsen`` times coarser (for surrogates that step on a coarse grid).
            Coarsened snapshots cannot be continued by the solver.
        scheme: ``'fd4'`` (default: fourth-order finite differences in space
            and time; ``courant`` is a fraction of its own, 1.06x larger,
            stability limit) or ``'q1'`` (bilinear finite elements, second
            order).  fd4 is the default because it is the cheaper one at every
            accuracy measured (``leanconv bench wave --work-precision``).
            See :class:`leanconv.wave.WaveSolver`.
    """

    grid: int = 64
    steps: int = 400
    every: int = 10
    courant: float = 0.5
    boundary: str = "neumann"
    sponge: int = 0
    media: tuple[str, ...] = ("constant", "layered", "inclusions", "random")
    c_min: float = 1.0
    c_max: float = 2.0
    source: str = "pulse"
    pulses: tuple[int, int] = (1, 3)
    pulse_width: tuple[float, float] = (2.0, 4.0)
    ricker_ppw: tuple[float, float] = (10.0, 20.0)
    dtype: str = "float32"
    shard_size: int = 64
    coarsen: int = 1
    scheme: str = "fd4"

    def __post_init__(self) -> None:
        def positive_int(name: str, minimum: int = 1) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                raise ValueError(f"DatasetConfig: {name} must be an integer >= {minimum}, got {v!r}")

        positive_int("grid", 8)
        positive_int("steps")
        positive_int("every")
        positive_int("shard_size")
        positive_int("sponge", 0)
        positive_int("coarsen")
        if (self.grid - 1) % self.coarsen:
            raise ValueError(
                f"DatasetConfig: coarsen ({self.coarsen}) must divide grid - 1 ({self.grid - 1}) so that the "
                "coarse nodes are nodes of the solver grid"
            )
        if self.every > self.steps:
            raise ValueError(f"DatasetConfig: every ({self.every}) must not exceed steps ({self.steps})")
        if not (0 < self.courant <= 1):
            raise ValueError(f"DatasetConfig: courant must be in (0, 1], got {self.courant!r}")
        if not (0 < self.c_min <= self.c_max < math.inf):
            raise ValueError(f"DatasetConfig: need 0 < c_min <= c_max, got {self.c_min}, {self.c_max}")
        object.__setattr__(self, "media", tuple(self.media))
        if not self.media or any(m not in MEDIA for m in self.media):
            raise ValueError(f"DatasetConfig: media must be a non-empty subset of {sorted(MEDIA)}, got {self.media}")
        if self.source not in SOURCES:
            raise ValueError(f"DatasetConfig: source must be one of {SOURCES}, got {self.source!r}")
        for name in ("pulses", "pulse_width", "ricker_ppw"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi):
                raise ValueError(f"DatasetConfig: {name} must be (min, max) with 0 < min <= max, got {(lo, hi)}")
            object.__setattr__(self, name, (lo, hi))
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"DatasetConfig: dtype must be 'float32' or 'float64', got {self.dtype!r}")
        from .grid import Boundary

        Boundary.parse(self.boundary)
        from .solver import SCHEMES

        if self.scheme not in SCHEMES:
            raise ValueError(f"DatasetConfig: scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.sponge and not Boundary.parse(self.boundary).damped:
            raise ValueError("DatasetConfig: a sponge needs at least one absorbing side")

    # -- derived quantities
    @property
    def h(self) -> float:
        return 1.0 / (self.grid - 1)

    @property
    def dt(self) -> float:
        from .fd4 import stable_dt_fd4

        limit = stable_dt(self.h, self.h, self.c_max) if self.scheme == "q1" else stable_dt_fd4(self.h, self.h,
                                                                                                  self.c_max)
        return self.courant * limit

    @property
    def frame_grid(self) -> int:
        """Nodes per side of the stored frames."""
        return (self.grid - 1) // self.coarsen + 1

    @property
    def frames(self) -> int:
        """Frames per trajectory (including the initial one)."""
        return self.steps // self.every + 1

    @property
    def snapshot_dt(self) -> float:
        return self.every * self.dt

    def sponge_layer(self) -> Sponge | None:
        if not self.sponge:
            return None
        return Sponge(self.sponge, Sponge(self.sponge).sigma_max(self.c_max, self.h))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DatasetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"DatasetConfig: unknown setting(s) {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def solver_settings(self) -> dict[str, Any]:
        """What a solver needs to continue these trajectories (also in the manifest)."""
        sponge = self.sponge_layer()
        return {
            "shape": [self.frame_grid, self.frame_grid],
            "solver_shape": [self.grid, self.grid],
            "coarsen": self.coarsen,
            "spacing": self.h,
            "dt": self.dt,
            "every": self.every,
            "snapshot_dt": self.snapshot_dt,
            "frames": self.frames,
            "courant": self.courant,
            "boundary": self.boundary,
            "sponge": None if sponge is None else {"width": sponge.width, "strength": sponge.strength},
            "compute_dtype": self.dtype,
            # (recorded for the fourth-order scheme only: manifests written before it existed stay valid)
            **({"scheme": self.scheme} if self.scheme != "q1" else {}),
        }


def _draw(config: DatasetConfig, seed: int, index: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Velocity model (float32-representable) and source parameters of trajectory ``index``."""
    rng = np.random.default_rng([int(seed), int(index)])
    kind = config.media[int(rng.integers(len(config.media)))]
    shape = (config.grid, config.grid)  # the solver's grid (frames may be coarsened)
    c = velocity_model(kind, rng, shape, config.c_min, config.c_max).astype(np.float32)
    h = config.h
    if config.source == "pulse":
        n = int(rng.integers(config.pulses[0], config.pulses[1] + 1))
        src = {
            "centers": rng.uniform(0.15, 0.85, (n, 2)),
            "widths": rng.uniform(*config.pulse_width, n) * h,
            "amplitudes": rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.0, n),
        }
    else:
        ppw = rng.uniform(*config.ricker_ppw)
        src = {"point": rng.uniform(0.2, 0.8, 2), "f0": config.c_min / (ppw * h), "amplitude": 1.0}
    return c, src


def solver_velocity(config: DatasetConfig, seed: int, indices: Sequence[int]) -> np.ndarray:
    """Velocity models ``(N, grid, grid)`` of trajectories ``indices`` on the solver's
    grid (the stored velocity is the same at every ``coarsen``-th node)."""
    return np.stack([_draw(config, seed, i)[0] for i in indices])


def initial_conditions(
    config: DatasetConfig, seed: int, indices: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Velocity models ``(N, grid, grid)`` (float32 values), initial displacements
    ``(N, grid, grid)`` (float64; zero for Ricker sources) and the source parameters
    of trajectories ``indices``, on the solver's grid; the initial velocity is zero."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    draws = [_draw(config, seed, i) for i in indices]
    if not draws:
        raise ValueError("indices must not be empty")
    velocity = np.stack([c for c, _ in draws])
    if config.source == "pulse":
        grid = Grid.for_shape((config.grid, config.grid), config.h)
        u0 = np.stack([gaussian_pulses(grid, s["centers"], s["widths"], s["amplitudes"])[0] for _, s in draws])
    else:
        u0 = np.zeros_like(velocity, dtype=np.float64)
    return velocity, u0, [s for _, s in draws]


def fine_solver(config: DatasetConfig, velocity: Any, *, coarsen: int = 1, dt: float | None = None,
                device: torch.device | str | None = "cpu") -> WaveSolver:
    """The data set's solver for ``velocity`` ``(N, grid, grid)`` on its own grid, or
    on the grid ``coarsen`` times coarser (every ``coarsen``-th node; ``dt`` grows
    with ``h``, so the Courant number and the boundaries stay the same, unless
    ``dt`` is given; a sponge keeps its width in length units)."""
    if not isinstance(coarsen, int) or coarsen < 1 or (config.grid - 1) % coarsen:
        raise ValueError(f"coarsen must be a positive integer dividing grid - 1 = {config.grid - 1}, got {coarsen!r}")
    c = torch.as_tensor(np.asarray(velocity))[..., ::coarsen, ::coarsen].to(torch.float64)
    sponge = config.sponge_layer()
    if sponge is not None and coarsen > 1:
        sponge = Sponge(max(1, round(sponge.width / coarsen)), sponge.strength)
    return WaveSolver(c, spacing=config.h * coarsen, dt=config.dt * coarsen if dt is None else dt,
                      boundary=config.boundary,
                      scheme=config.scheme,
                      sponge=sponge, device=device, dtype=getattr(torch, config.dtype))


def simulate_trajectories(
    config: DatasetConfig,
    seed: int,
    indices: Sequence[int],
    *,
    device: torch.device | str | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate trajectories ``indices`` of the data set ``(config, seed)`` as one batch.

    Returns ``(frames, velocity)``: float32 arrays ``(N, T, H, W)`` and
    ``(N, H, W)``.  ``progress(n)`` is called as trajectories finish.
    """
    velocity, u0, draws = initial_conditions(config, seed, indices)
    solver = fine_solver(config, velocity, device=device or "cpu")
    if config.source == "pulse":
        source = None
    else:
        points = np.stack([s["point"] for s in draws])[:, None, :]
        f0 = np.array([[s["f0"]] for s in draws])
        source = PointSources(points, f0).bind(solver)
    dtype = solver.dtype
    frames = solver.run(
        torch.from_numpy(u0).to(dtype),
        steps=config.steps,
        every=config.every,
        source=source,
        out_dtype=torch.float32,
        out_device="cpu",
        progress=progress,
    )
    k = config.coarsen
    return np.ascontiguousarray(frames.numpy()[..., ::k, ::k]), np.ascontiguousarray(velocity[:, ::k, ::k])
