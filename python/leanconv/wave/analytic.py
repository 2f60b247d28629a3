"""Closed-form solutions of the 2-D wave equation, for verification.

They do not use the solver: :func:`standing_mode` is a separable eigenmode,
:func:`ricker_point_source_2d` the free-space Green's function convolved with
a Ricker wavelet.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .sources import ricker

__all__ = ["standing_mode", "ricker_point_source_2d"]


def standing_mode(X: np.ndarray, Y: np.ndarray, t: float, lx: float = 1.0, ly: float = 1.0,
                  kx: int = 1, ky: int = 1, c: float = 1.0) -> np.ndarray:
    """``sin(kx pi x / lx) sin(ky pi y / ly) cos(omega t)``, ``omega = c pi sqrt((kx/lx)^2 + (ky/ly)^2)``.

    Solves ``u_tt = c^2 Lap u`` with ``u = 0`` on the boundary of ``[0, lx] x [0, ly]``
    and ``u_t(0) = 0``.
    """
    omega = c * math.pi * math.hypot(kx / lx, ky / ly)
    return np.sin(kx * math.pi * X / lx) * np.sin(ky * math.pi * Y / ly) * math.cos(omega * t)


def ricker_point_source_2d(r: float, t: np.ndarray, f0: float, t0: float | None = None,
                           c: float = 1.0, amplitude: float = 1.0, nodes: int = 400) -> np.ndarray:
    """Field at distance ``r > 0`` of a point source in the infinite plane.

    Solves ``u_tt = c^2 Lap u + s(t) delta(x)`` with ``s = ricker(t, f0, t0) H(t)``
    and zero initial data::

        u(r, t) = 1 / (2 pi c) int_{r/c}^{t} s(t - tau) / sqrt(c^2 tau^2 - r^2) dtau
                = 1 / (2 pi c^2) int_0^{acosh(c t / r)} s(t - (r/c) cosh(eta)) d eta

    The second form (``tau = (r/c) cosh eta``) has a smooth integrand, evaluated
    with Gauss-Legendre quadrature on ``nodes`` points per unit of ``eta``
    interval (exact to ~1e-10 for well-resolved wavelets).
    """
    if r <= 0:
        raise ValueError(f"r must be > 0 (the field is singular at the source), got {r}")
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    x, w = _gauss_legendre(nodes)
    live = c * t > r
    top = np.arccosh(np.where(live, c * t / r, 1.0))  # (T,)
    eta = 0.5 * top[:, None] * (x[None, :] + 1.0)  # (T, nodes)
    lag = t[:, None] - (r / c) * np.cosh(eta)  # in [0, t]
    out = 0.5 * top * (ricker(lag, f0, t0, amplitude) @ w)
    return np.where(live, out, 0.0) / (2.0 * math.pi * c * c)


@functools.lru_cache(maxsize=8)
def _gauss_legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(nodes)
