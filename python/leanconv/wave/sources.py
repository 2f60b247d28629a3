"""Sources and initial conditions: Ricker wavelets at points, Gaussian pulses."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["ricker", "PointSources", "gaussian_pulses"]


def ricker(t: Any, f0: Any, t0: Any = None, amplitude: Any = 1.0) -> Any:
    """Ricker wavelet ``a (1 - 2 tau^2) exp(-tau^2)``, ``tau = pi f0 (t - t0)``.

    ``f0`` is the peak frequency; ``t0`` the delay (default ``1.5 / f0``,
    where the wavelet is below ``1e-8`` of its peak at ``t = 0``).  Works
    elementwise on floats, numpy arrays and tensors (broadcasting).
    """
    if t0 is None:
        t0 = 1.5 / f0
    tau2 = (math.pi * f0 * (t - t0)) ** 2
    exp = torch.exp if isinstance(tau2, torch.Tensor) else np.exp
    return amplitude * (1 - 2 * tau2) * exp(-tau2)


class PointSources:
    """Ricker point sources ``f = sum_s a_s r_s(t) delta(x - x_s)``, per batch item.

    Args:
        points: ``(S, 2)`` or ``(B, S, 2)`` physical coordinates ``(x, y)``.
        f0: peak frequency, a scalar or ``(B, S)`` / ``(S,)``.
        t0: delay (default ``1.5 / f0``), same shapes.
        amplitude: scale, same shapes.

    ``bind(solver)`` returns the load function ``t -> F(t)`` (``(B, H, W)``)
    that :meth:`WaveSolver.run` takes as ``source``.
    """

    def __init__(self, points: Any, f0: Any, t0: Any = None, amplitude: Any = 1.0) -> None:
        pts = torch.as_tensor(points, dtype=torch.float64)
        if pts.dim() == 2:
            pts = pts.unsqueeze(0)
        if pts.dim() != 3 or pts.shape[-1] != 2:
            raise ValueError(f"points must have shape (S, 2) or (B, S, 2), got {tuple(pts.shape)}")
        self.points = pts
        shape = pts.shape[:2]
        self.f0 = torch.as_tensor(f0, dtype=torch.float64).expand(shape)
        if not bool((self.f0 > 0).all()):
            raise ValueError("f0 must be > 0 (peak frequency)")
        self.t0 = 1.5 / self.f0 if t0 is None else torch.as_tensor(t0, dtype=torch.float64).expand(shape)
        self.amplitude = torch.as_tensor(amplitude, dtype=torch.float64).expand(shape)

    def bind(self, solver: Any):
        """The load function of these sources on ``solver``'s grid and velocity models."""
        g = solver.point_load(self.points)  # (B, S, H, W)
        dev, dt = solver.device, solver.dtype
        f0, t0, amp = (x.to(dev) for x in (self.f0, self.t0, self.amplitude))

        def load(t: float) -> torch.Tensor:
            a = ricker(torch.as_tensor(t, dtype=torch.float64, device=dev), f0, t0, amp)  # (B, S)
            return torch.einsum("bs,bshw->bhw", a.to(dt), g)

        return load


def gaussian_pulses(grid: Any, centers: Any, widths: Any, amplitudes: Any = 1.0) -> np.ndarray:
    """Sum of Gaussians ``a exp(-|x - x_p|^2 / (2 w^2))`` at the nodes of ``grid``.

    ``centers``: ``(P, 2)`` or ``(B, P, 2)``; ``widths`` (standard deviations)
    and ``amplitudes``: scalars, ``(P,)`` or ``(B, P)``.  Returns a float64
    array ``(B, H, W)``.
    """
    ctr = np.asarray(centers, dtype=np.float64)
    if ctr.ndim == 2:
        ctr = ctr[None]
    if ctr.ndim != 3 or ctr.shape[-1] != 2:
        raise ValueError(f"centers must have shape (P, 2) or (B, P, 2), got {ctr.shape}")
    w = np.broadcast_to(np.asarray(widths, dtype=np.float64), ctr.shape[:2])
    if not (w > 0).all():
        raise ValueError("widths must be > 0")
    a = np.broadcast_to(np.asarray(amplitudes, dtype=np.float64), ctr.shape[:2])
    X, Y = grid.coordinates()
    d2 = (X[None, None] - ctr[..., 0, None, None]) ** 2 + (Y[None, None] - ctr[..., 1, None, None]) ** 2
    return (a[..., None, None] * np.exp(-d2 / (2 * w[..., None, None] ** 2))).sum(axis=1)
