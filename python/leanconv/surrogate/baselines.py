"""Equal-accuracy baselines: the FE solver itself on the grids between the frames and the data set's own.

A surrogate that steps on 33 x 33 frames must be compared with the FE solver
at the accuracy the surrogate reaches, not only with the solver on the data
set's (much finer) grid.  For every test window this module restarts the
data set's solver on each grid coarser than its own by a factor ``k`` that
divides both the frame coarsening and ``every`` (257, 129, 65, 33 for the
demo): the same velocity model sampled at the coarse nodes, ``dt`` ``k``
times larger (the same Courant number), the same sides, and as the starting
state the exact solution at the window's last input frame - the fine
solver's states at steps ``n - k`` and ``n``, sampled at the coarse nodes
(trajectories are regenerated from ``(config, seed, index)``).  On the frame
grid these are the frames the surrogate sees, plus the state one coarse step
before the last one.  The project's other schemes (the fourth-order ``fd4``
for a Q1 data set) run the same restarts on the coarser grids, so the
baseline at each accuracy is the cheapest scheme there.  Each grid's
snapshots are scored on the frame nodes against the stored frames, exactly
as the surrogates are.

:func:`speed_at_equal_accuracy` turns the table into one figure per
surrogate: the cost of the cheapest FE grid that is at least as accurate,
divided by the surrogate's cost (log-log interpolation between the two grids
that bracket the surrogate's error).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["FEGrid", "FEBaselines", "fe_grids", "speed_at_equal_accuracy"]


@dataclass(frozen=True)
class FEGrid:
    """One baseline grid: ``factor`` times coarser than the data set's solver grid."""

    factor: int
    nodes: int      # nodes per side
    every: int      # solver steps per snapshot interval on this grid
    sample: int     # every ``sample``-th node of this grid is a frame node
    scheme: str = "q1"
    lag: int = 0    # data-set solver steps between the two states a restart starts from (0: factor)

    @property
    def start_lag(self) -> int:
        return self.lag or self.factor

    @property
    def label(self) -> str:
        return f"{'FE' if self.scheme == 'q1' else self.scheme.upper()} {self.nodes}x{self.nodes}"


def fe_grids(config: Any, other_schemes: bool = True) -> list[FEGrid]:
    """The baseline grids of a data set (a :class:`leanconv.wave.DatasetConfig`),
    coarsest first: every factor ``k`` dividing both ``coarsen`` and ``every``, with
    the data set's scheme; with ``other_schemes`` also the project's other schemes
    on the grids coarser than the data set's own (where they are stable with the
    data set's time step and sides), listed after them."""
    from ..wave.solver import SCHEMES

    ks = [k for k in range(config.coarsen, 0, -1) if config.coarsen % k == 0 and config.every % k == 0]
    grids = [FEGrid(k, (config.grid - 1) // k + 1, config.every // k, config.coarsen // k, config.scheme) for k in ks]
    if other_schemes:
        for scheme in SCHEMES:
            if scheme == config.scheme:
                continue
            try:
                dataclasses.replace(config, scheme=scheme)
            except ValueError:  # a setting the other scheme refuses
                continue
            for g in grids[: len(ks)]:
                m = _steps_for(config, scheme, g) if g.factor > 1 else None
                if m is not None:
                    grids.append(dataclasses.replace(g, scheme=scheme, every=m, lag=config.every // m))
    return grids


def _steps_for(config: Any, scheme: str, grid: FEGrid) -> int | None:
    """Steps per snapshot interval of ``scheme`` on ``grid``: the fewest that divide the data set's
    ``every`` (so the restart's earlier state is one of its solver's) at or under the data set's
    Courant number of that scheme's own limit; None if there is none."""
    from ..wave.fd4 import stable_dt_fd4
    from ..wave.grid import stable_dt

    h = config.h * grid.factor
    limit = (stable_dt if scheme == "q1" else stable_dt_fd4)(h, h, config.c_max)
    for m in range(1, config.every + 1):
        if config.every % m == 0 and config.snapshot_dt / m <= config.courant * limit * (1 + 1e-9):
            return m
    return None


class FEBaselines:
    """FE continuations of test windows on every baseline grid.

    Args:
        data: a :class:`leanconv.wave.WaveData` whose trajectories are source-free
            (Gaussian pulses): the baselines restart the solver, and a Ricker
            source would have to be restarted with it.
        windows: ``(trajectory, last input frame)`` of every window.
        device: where the baselines step.

    Raises ``ValueError`` when the data set cannot be regenerated this way, or
    when the regenerated trajectories do not reproduce the stored frames (a
    data set made by another version of the solver).
    """

    def __init__(self, data: Any, windows: Sequence[tuple[int, int]], device: Any = "cpu") -> None:
        from ..wave.generate import fine_solver, initial_conditions

        self.config = config = data.config
        if config.source != "pulse":
            raise ValueError(f"FE baselines need source-free trajectories (source='pulse'), this data set has "
                             f"source={config.source!r}")
        if not windows:
            raise ValueError("windows must not be empty")
        self.device = torch.device(device)
        self.grids = fe_grids(config)
        self.windows = [(int(i), int(f)) for i, f in windows]
        trajs = sorted({i for i, _ in self.windows})
        row = {t: r for r, t in enumerate(trajs)}
        velocity, u0, _ = initial_conditions(config, int(data.meta["seed"]), trajs)
        solver = fine_solver(config, velocity, device=self.device)
        steps = {f * config.every for _, f in self.windows}
        wanted = {abs(n - g.start_lag) for n in steps for g in self.grids} | steps
        if any(n < g.start_lag for n in steps for g in self.grids) and solver.damped:
            raise ValueError("FE baselines: a window that starts at frame 0 of a damped data set has no earlier state")
        states = _states_at(solver, torch.from_numpy(u0), sorted(wanted))
        idx = torch.tensor([row[i] for i, _ in self.windows])
        self._velocity = velocity[idx.numpy()]
        self._start: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        for g in self.grids:
            k, lag = g.factor, g.start_lag
            prev = torch.stack([states[abs(f * config.every - lag)][row[i], ::k, ::k] for i, f in self.windows])
            now = torch.stack([states[f * config.every][row[i], ::k, ::k] for i, f in self.windows])
            self._start[(k, lag)] = (prev.contiguous(), now.contiguous())
        self._solvers = {(g.factor, g.scheme): self._solver(g, self._velocity) for g in self.grids}
        self._check_reproduced(data)

    def _check_reproduced(self, data: Any) -> None:
        """The regenerated state on the frame nodes must be the stored frame."""
        g = self.grids[0]
        now = self._start[(g.factor, g.start_lag)][1][:, :: g.sample, :: g.sample].float().cpu()
        stored = torch.stack([torch.from_numpy(np.array(data.frames(i, f, f + 1)[0])) for i, f in self.windows])
        scale = float(stored.abs().max()) or 1.0
        err = float((now - stored).abs().max()) / scale
        if err > 1e-4:
            raise ValueError(f"FE baselines: the regenerated trajectories differ from the stored frames by {err:.3g} "
                             "(relative); the data set was made by another version of the solver")

    def _solver(self, grid: FEGrid, velocity: np.ndarray) -> Any:
        """The solver of ``grid`` (its scheme, nodes and time step) for ``velocity`` (on the data set's grid)."""
        from ..wave.generate import fine_solver

        config = self.config if grid.scheme == self.config.scheme else dataclasses.replace(self.config,
                                                                                           scheme=grid.scheme)
        return fine_solver(config, velocity, coarsen=grid.factor, dt=self.config.snapshot_dt / grid.every,
                           device=self.device)

    def is_reference(self, grid: FEGrid) -> bool:
        """True for the data set's own grid and scheme (its frames are that run's)."""
        return grid.factor == 1 and grid.scheme == self.config.scheme

    def rollout(self, grid: FEGrid, steps: int) -> torch.Tensor:
        """Snapshots ``1..steps`` after each window's last input frame on ``grid``,
        sampled at the frame nodes: ``(B, steps, H, W)``."""
        prev, now = self._start[(grid.factor, grid.start_lag)]
        out = self._solvers[(grid.factor, grid.scheme)].snapshots(prev, now, steps, every=grid.every)
        return out[..., :: grid.sample, :: grid.sample]

    def timed_call(self, grid: FEGrid, steps: int, batch: int) -> Callable[[], Any]:
        """A function that runs the first ``batch`` windows ``steps`` intervals on ``grid``
        (what :func:`rollout` does, without the sampling), for timing."""
        prev, now = (t[:batch] for t in self._start[(grid.factor, grid.start_lag)])
        solver = self._solver(grid, self._velocity[:batch])
        return lambda: solver.snapshots(prev, now, steps, every=grid.every)


def _states_at(solver: Any, u0: torch.Tensor, wanted: Sequence[int]) -> dict[int, torch.Tensor]:
    """The solver's states at the (sorted) steps ``wanted``, from ``u0`` at rest."""
    prev = u0.to(device=solver.device, dtype=solver.dtype)
    now = solver.first_step(prev)
    out, done = {}, 1
    for n in wanted:
        if n == 0:
            out[n] = prev.clone()
            continue
        if n > done:
            prev, now = solver.march(prev, now, n - done)
            done = n
        out[n] = now.clone()
    return out


def speed_at_equal_accuracy(fe: Sequence[tuple[str, float, float]], error: float, cost: float) -> dict[str, Any]:
    """How much cheaper than the FE solver at the same accuracy a model is.

    ``fe``: ``(label, error, cost)`` of the FE solver on each grid; ``error``
    and ``cost``: the model's.  The FE cost at the model's error is the cost of
    the cheapest grid at least as accurate, interpolated (``log cost`` linear
    in ``log error``) towards the next cheaper grid when that one is less
    accurate than the model.  Returns ``ratio`` (FE cost / model cost; above 1:
    the model is faster at equal accuracy), ``fe_cost``, ``grids`` (the one or
    two grids used) and ``bound``: ``'upper'`` when even the cheapest grid is
    more accurate than the model (FE at the model's error would be cheaper
    still, so the ratio is an upper bound), else ``None``.
    """
    if not (cost > 0 and math.isfinite(cost)):
        raise ValueError(f"cost must be a positive number, got {cost!r}")
    rows = sorted(fe, key=lambda r: r[2])
    good = [r for r in rows if r[1] <= error]
    if not good:
        return {"ratio": None, "fe_cost": None, "grids": [], "bound": None}
    a = good[0]
    cheaper = [r for r in rows if r[2] < a[2] and r[1] > error]
    if not cheaper:
        return {"ratio": a[2] / cost, "fe_cost": a[2], "grids": [a[0]],
                "bound": "upper" if a[1] < error and a is rows[0] else None}
    b = cheaper[-1]
    if a[1] <= 0 or error <= 0:
        return {"ratio": a[2] / cost, "fe_cost": a[2], "grids": [b[0], a[0]], "bound": "upper"}
    t = (math.log(error) - math.log(a[1])) / (math.log(b[1]) - math.log(a[1]))
    fe_cost = math.exp(math.log(a[2]) + t * (math.log(b[2]) - math.log(a[2])))
    return {"ratio": fe_cost / cost, "fe_cost": fe_cost, "grids": [b[0], a[0]], "bound": None}
