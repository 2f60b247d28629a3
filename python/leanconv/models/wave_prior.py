"""A differentiable coarse wave step: the physics prior of the "solver in the loop" surrogates.

:class:`CoarseWaveStep` advances frames of the 2-D wave equation by whole
snapshot intervals with the same scheme as :class:`leanconv.wave.WaveSolver`
(bilinear elements, row-sum lumped mass ``1/c^2``, central differences,
mirrored (reflecting) or Dirichlet sides), on the grid of the frames
themselves.  From two snapshots ``m`` solver steps apart it continues with
``u^{n+m} = 2 T_m(A) u^n - u^{n-m}`` (``T_m(A) u^n``: ``m`` steps from
``u^n`` at rest), which reproduces the solver's own snapshots exactly (see
``WaveSolver.advance``).  Written in plain torch ops so gradients flow
through it; the tests check it against the solver.

A surrogate built on it (``WaveUNet2d(base="fe")``) predicts a correction of
this coarse step instead of the change from the last frame, the learned
correction of a coarse solver (Um et al. 2020, "Solver-in-the-loop";
Kochkov et al. 2021).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CoarseWaveStep"]

_BOUNDARIES = ("neumann", "dirichlet")


class CoarseWaveStep(nn.Module):
    """Snapshots of the lumped Q1 wave solver on the frames' own grid.

    Args:
        spacing: node spacing ``h`` of the frames (square cells).
        snapshot_dt: time between two frames.
        substeps: solver steps per snapshot interval (``dt = snapshot_dt / substeps``).
        boundary: ``'neumann'`` (reflecting) or ``'dirichlet'`` on every side.

    ``forward(prev, now, velocity, intervals)``: frames ``(B, H, W)`` one
    interval apart and the velocity ``(B, 1, H, W)`` (or ``(B, H, W)``) at the
    same nodes; returns the next ``intervals`` frames ``(B, intervals, H, W)``.
    The step must be stable: ``dt <= h / max(c)`` (``ValueError`` otherwise).
    """

    def __init__(self, spacing: float, snapshot_dt: float, substeps: int, boundary: str = "neumann") -> None:
        super().__init__()
        if not (isinstance(spacing, (int, float)) and spacing > 0 and math.isfinite(spacing)):
            raise ValueError(f"spacing must be a positive number, got {spacing!r}")
        if not (isinstance(snapshot_dt, (int, float)) and snapshot_dt > 0 and math.isfinite(snapshot_dt)):
            raise ValueError(f"snapshot_dt must be a positive number, got {snapshot_dt!r}")
        if not isinstance(substeps, int) or isinstance(substeps, bool) or substeps < 1:
            raise ValueError(f"substeps must be a positive int, got {substeps!r}")
        if boundary not in _BOUNDARIES:
            raise ValueError(f"boundary must be one of {_BOUNDARIES} on every side, got {boundary!r}")
        self.spacing, self.snapshot_dt, self.substeps, self.boundary = float(spacing), float(snapshot_dt), substeps, boundary

    def extra_repr(self) -> str:
        return f"spacing={self.spacing:.4g}, snapshot_dt={self.snapshot_dt:.4g}, substeps={self.substeps}, " \
               f"boundary={self.boundary!r}"

    def coefficients(self, velocity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(p, q)`` with one step ``u^{k+1} = p u^k + q box(u^k) - u^{k-1}`` (``box``: the 3x3
        sum of the mirrored field), computed in float64 and returned in ``velocity``'s dtype."""
        c = velocity if velocity.dim() == 4 else velocity.unsqueeze(1)
        dt, h = self.snapshot_dt / self.substeps, self.spacing
        c64 = c.double()
        if bool((c64 <= 0).any()) or not bool(torch.isfinite(c64).all()):
            raise ValueError("velocity must be finite and > 0 everywhere")
        if dt > h / float(c64.max()) * (1 + 1e-12):
            raise ValueError(f"CoarseWaveStep: dt = {dt:.4g} is above the stability limit h / c_max = "
                             f"{h / float(c64.max()):.4g}; use more substeps")
        m = F.pad(c64.pow(-2), (1, 1, 1, 1), mode="reflect")
        k = torch.tensor([1.0, 4.0, 1.0], dtype=torch.float64, device=c.device)
        mass = F.conv2d(m, (k[:, None] * k[None, :]).view(1, 1, 3, 3)) * (h * h / 36.0)
        a = dt * dt / mass
        p, q = 2.0 - 3.0 * a, a / 3.0  # square cells: K = 3 - box / 3 on the mirrored field
        if self.boundary == "dirichlet":
            free = torch.zeros_like(p)
            free[..., 1:-1, 1:-1] = 1.0
            p, q = p * free, q * free
        return p.to(velocity.dtype)[:, 0], q.to(velocity.dtype)[:, 0]

    @staticmethod
    def _step(u: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``p u + q box(u)`` with mirrored sides."""
        m = F.pad(u.unsqueeze(1), (1, 1, 1, 1), mode="reflect").squeeze(1)
        rows = m[..., :-2] + m[..., 1:-1] + m[..., 2:]
        return p * u + q * (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :])

    def forward(self, prev: torch.Tensor, now: torch.Tensor, velocity: torch.Tensor, intervals: int) -> torch.Tensor:
        if prev.dim() != 3 or prev.shape != now.shape:
            raise ValueError(f"prev and now must be (B, H, W) frames of one shape, got {tuple(prev.shape)} "
                             f"and {tuple(now.shape)}")
        if not isinstance(intervals, int) or intervals < 1:
            raise ValueError(f"intervals must be a positive int, got {intervals!r}")
        p, q = self.coefficients(velocity)
        outs = []
        for _ in range(intervals):
            w_prev, w = now, 0.5 * self._step(now, p, q)  # the first step from rest
            for _ in range(self.substeps - 1):
                w_prev, w = w, self._step(w, p, q) - w_prev
            prev, now = now, 2.0 * w - prev
            outs.append(now)
        return torch.stack(outs, dim=1)
