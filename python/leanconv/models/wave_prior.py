"""A differentiable coarse wave step: the physics prior of the "solver in the loop" surrogates.

:class:`CoarseWaveStep` advances frames of the 2-D wave equation by whole
snapshot intervals with one of the schemes of :class:`leanconv.wave.WaveSolver`
(``q1``: bilinear elements, row-sum lumped mass ``1/c^2``, central differences;
``fd4``: fourth-order differences in space and time), mirrored (reflecting) or
Dirichlet sides, on the grid of the frames themselves.  From two snapshots ``m`` solver steps apart it continues with
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
    """Snapshots of the wave solver on the frames' own grid (scheme ``'q1'`` or ``'fd4'``).

    Args:
        spacing: node spacing ``h`` of the frames (square cells).
        snapshot_dt: time between two frames.
        substeps: solver steps per snapshot interval (``dt = snapshot_dt / substeps``).
        boundary: ``'neumann'`` (reflecting) or ``'dirichlet'`` on every side.
        scheme: ``'q1'`` (lumped bilinear elements) or ``'fd4'`` (the fourth-order
            scheme of :mod:`leanconv.wave.fd4`), as the data set's solver.

    ``forward(prev, now, velocity, intervals)``: frames ``(B, H, W)`` one
    interval apart and the velocity ``(B, 1, H, W)`` (or ``(B, H, W)``) at the
    same nodes; returns the next ``intervals`` frames ``(B, intervals, H, W)``.
    The step must be stable: ``dt <= h / max(c)`` for q1, ``sqrt(9/8) h / max(c)``
    for fd4 (``ValueError`` otherwise).
    """

    def __init__(self, spacing: float, snapshot_dt: float, substeps: int, boundary: str = "neumann",
                 scheme: str = "q1") -> None:
        super().__init__()
        if not (isinstance(spacing, (int, float)) and spacing > 0 and math.isfinite(spacing)):
            raise ValueError(f"spacing must be a positive number, got {spacing!r}")
        if not (isinstance(snapshot_dt, (int, float)) and snapshot_dt > 0 and math.isfinite(snapshot_dt)):
            raise ValueError(f"snapshot_dt must be a positive number, got {snapshot_dt!r}")
        if not isinstance(substeps, int) or isinstance(substeps, bool) or substeps < 1:
            raise ValueError(f"substeps must be a positive int, got {substeps!r}")
        if boundary not in _BOUNDARIES:
            raise ValueError(f"boundary must be one of {_BOUNDARIES} on every side, got {boundary!r}")
        if scheme not in ("q1", "fd4"):
            raise ValueError(f"scheme must be 'q1' or 'fd4', got {scheme!r}")
        self.spacing, self.snapshot_dt, self.substeps, self.boundary = float(spacing), float(snapshot_dt), substeps, boundary
        self.scheme = scheme

    def extra_repr(self) -> str:
        return f"spacing={self.spacing:.4g}, snapshot_dt={self.snapshot_dt:.4g}, substeps={self.substeps}, " \
               f"boundary={self.boundary!r}, scheme={self.scheme!r}"

    def coefficients(self, velocity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-node coefficients of one step, computed in float64, returned in ``velocity``'s dtype:
        q1: ``(p, q)`` of ``u^{k+1} = p u^k + q box(u^k) - u^{k-1}`` (``box``: the 3x3 sum of the
        mirrored field); fd4: ``(dt^2 c^2, 1 / (12 h^2))`` (see :meth:`_apply_a`)."""
        c = velocity if velocity.dim() == 4 else velocity.unsqueeze(1)
        dt, h = self.snapshot_dt / self.substeps, self.spacing
        c64 = c.double()
        if bool((c64 <= 0).any()) or not bool(torch.isfinite(c64).all()):
            raise ValueError("velocity must be finite and > 0 everywhere")
        limit = h / float(c64.max()) * (1.0 if self.scheme == "q1" else math.sqrt(9.0 / 8.0))
        if dt > limit * (1 + 1e-12):
            raise ValueError(f"CoarseWaveStep: dt = {dt:.4g} is above the stability limit {limit:.4g} of scheme "
                             f"{self.scheme!r}; use more substeps")
        if self.scheme == "fd4":
            return (c64 * c64 * dt * dt).to(velocity.dtype)[:, 0], torch.full_like(c64[:, 0], 1.0 / (12 * h * h)).to(
                velocity.dtype)
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

    def _pad2(self, u: torch.Tensor) -> torch.Tensor:
        """Two mirrored ghost nodes per side: even images (reflecting) or odd ones (Dirichlet)."""
        m = F.pad(u.unsqueeze(1), (2, 2, 2, 2), mode="reflect").squeeze(1)
        if self.boundary == "dirichlet":
            sign = torch.ones_like(m)
            sign[..., :2, :] = -1
            sign[..., -2:, :] = -1
            sign[..., :, :2] *= -1
            sign[..., :, -2:] *= -1
            m = m * sign
        return m

    def _lap4(self, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The fourth-order Laplacian ``w (Dxx + Dyy) u`` of :mod:`leanconv.wave.fd4` (``w = 1 / (12 h^2)``)."""
        m = self._pad2(u)
        c = m[..., 2:-2, 2:-2]
        dx = 16 * (m[..., 2:-2, 1:-3] + m[..., 2:-2, 3:-1]) - (m[..., 2:-2, :-4] + m[..., 2:-2, 4:]) - 30 * c
        dy = 16 * (m[..., 1:-3, 2:-2] + m[..., 3:-1, 2:-2]) - (m[..., :-4, 2:-2] + m[..., 4:, 2:-2]) - 30 * c
        return w * (dx + dy)

    def _apply_a(self, u: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``A u``: one step from rest (``u^{n+1} + u^{n-1} = 2 A u^n``)."""
        if self.scheme == "fd4":  # A = I + dt^2/2 L + dt^4/24 L^2, with p = dt^2 c^2, q = 1/(12 h^2)
            lu = p * self._lap4(u, q)
            return u + 0.5 * lu + p * self._lap4(lu, q) / 24.0
        return 0.5 * self._step(u, p, q)

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
            w_prev, w = now, self._apply_a(now, p, q)  # the first step from rest
            for _ in range(self.substeps - 1):
                w_prev, w = w, 2.0 * self._apply_a(w, p, q) - w_prev
            prev, now = now, 2.0 * w - prev
            outs.append(now)
        return torch.stack(outs, dim=1)
