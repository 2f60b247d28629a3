"""Devito on the work-precision problem (an optional benchmark extra: ``pip install devito``).

Devito generates and compiles C (OpenMP) for a finite-difference stencil; it
is what seismic users would pick for this equation.  The runs here solve the
same problem as the project's schemes in :mod:`leanconv.bench.wave_accuracy`:

- ``u_tt = c^2 Lap(u)``, time order 2 (leapfrog), space order ``so`` (Devito's
  own central weights), on the same nodes (the velocity sampled there);
- reflecting sides as mirrored ghost nodes: the grid is padded by ``so / 2``
  nodes per side, refreshed after every step by equations ``u[g - k] = u[g +
  k]`` (the stencil is a cross, so corner ghosts are never read);
- pulses at rest: the state one step before t = 0 is the Taylor series of the
  even solution on Devito's own stencil, ``u^{-1} = u0 + dt^2/2 L u0 + dt^4/24
  L^2 u0`` (better than the usual ``u^{-1} = u0``, which makes the first
  step first-order accurate);
- snapshots every ``m`` steps through a ``ConditionalDimension`` into a saved
  buffer, one operator per configuration (compiled once, not timed), one
  trajectory per call (Devito has no batch dimension); the operator runs one
  step past the last snapshot (its loop saves ``u[t]`` before stepping), a
  1 / (40 m) extra cost counted against Devito.

Threads: ``OMP_NUM_THREADS`` is set to torch's thread count before Devito is
imported (``DEVITO_LANGUAGE=openmp`` unless set).
"""
from __future__ import annotations

import importlib.util
import math
import os
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["available", "central_weights", "stable_dt", "DevitoRun"]


def available() -> bool:
    """True when Devito can be imported (the optional benchmark extra)."""
    return importlib.util.find_spec("devito") is not None


def _devito():
    os.environ.setdefault("DEVITO_LANGUAGE", "openmp")
    os.environ.setdefault("DEVITO_LOGGING", "ERROR")
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    import devito

    return devito


@lru_cache(maxsize=None)
def central_weights(so: int) -> tuple[float, ...]:
    """The central weights of the second derivative of order ``so`` on offsets ``-so/2 .. so/2`` (h = 1)."""
    if so < 2 or so % 2:
        raise ValueError(f"space order must be an even integer >= 2, got {so!r}")
    from sympy import finite_diff_weights

    k = so // 2
    return tuple(float(w) for w in finite_diff_weights(2, list(range(-k, k + 1)), 0)[2][-1])


def stable_dt(so: int, h: float, c_max: float) -> float:
    """The leapfrog limit ``dt^2 c_max^2 lambda_max(-Lap_h) <= 4`` for Devito's order-``so`` stencil
    (``lambda_max`` = twice the 1-D symbol at the Nyquist frequency)."""
    w = central_weights(so)
    k = len(w) // 2
    nyquist = abs(sum(wj * (-1) ** (j - k) for j, wj in enumerate(w)))
    return 2.0 / (c_max * math.sqrt(2.0 * nyquist / h**2))


def _laplacian(u: np.ndarray, so: int, h: float) -> np.ndarray:
    """Devito's order-``so`` Laplacian of fields ``(..., n, n)`` with mirrored sides (float64)."""
    w = central_weights(so)
    k = len(w) // 2
    pad = [(0, 0)] * (u.ndim - 2) + [(k, k), (k, k)]
    p = np.pad(u, pad, mode="reflect")
    n0, n1 = u.shape[-2:]
    out = np.zeros_like(u)
    for j, wj in enumerate(w):
        out += wj * (p[..., j:j + n0, k:k + n1] + p[..., k:k + n0, j:j + n1])
    return out / h**2


class DevitoRun:
    """One compiled Devito operator: a grid of ``n`` nodes per side (spacing ``1 / (n - 1)``), space
    order ``so``, ``m`` steps per snapshot interval of ``snapshot_dt``, ``frames`` snapshots, ``dtype``.
    Call with velocities ``(B, n, n)`` and pulses ``(B, n, n)`` (at rest); returns the snapshots on
    every ``stride``-th node, ``(B, frames, f, f)`` float64."""

    def __init__(self, n: int, so: int, m: int, snapshot_dt: float, frames: int, dtype: str, stride: int) -> None:
        dv = _devito()
        self.n, self.so, self.m, self.frames, self.stride = n, so, m, frames, stride
        self.g = g = so // 2
        self.h = h = 1.0 / (n - 1)
        self.dt = snapshot_dt / m
        N = n + 2 * g
        self.np_dtype = np.dtype(dtype).type
        grid = dv.Grid(shape=(N, N), extent=((N - 1) * h, (N - 1) * h), dtype=self.np_dtype)
        x, y = grid.dimensions
        t = grid.stepping_dim
        self.c = dv.Function(name="c", grid=grid, space_order=so)
        self.u = dv.TimeFunction(name="u", grid=grid, time_order=2, space_order=so)
        sub = dv.ConditionalDimension("tsub", parent=grid.time_dim, factor=m)
        self.save = dv.TimeFunction(name="usave", grid=grid, time_order=0, save=frames, time_dim=sub)
        u = self.u
        eqs = [dv.Eq(u.forward, 2 * u - u.backward + t.spacing**2 * self.c**2 * u.laplace)]
        for k in range(1, g + 1):  # mirrored ghosts of the new field
            eqs += [dv.Eq(u[t + 1, g - k, y], u[t + 1, g + k, y]), dv.Eq(u[t + 1, N - 1 - g + k, y], u[t + 1, N - 1 - g - k, y]),
                    dv.Eq(u[t + 1, x, g - k], u[t + 1, x, g + k]), dv.Eq(u[t + 1, x, N - 1 - g + k], u[t + 1, x, N - 1 - g - k])]
        eqs.append(dv.Eq(self.save, u))
        self.op = dv.Operator(eqs)
        self.op.cfunction  # compile now (not part of any timing)

    def _pad(self, a: np.ndarray) -> np.ndarray:
        return np.pad(a, self.g, mode="reflect").astype(self.np_dtype)

    def __call__(self, c: torch.Tensor, u0: torch.Tensor) -> torch.Tensor:
        cs, us = c.double().numpy(), u0.double().numpy()
        s, g = self.stride, self.g
        out = np.empty((us.shape[0], self.frames, (self.n - 1) // s + 1, (self.n - 1) // s + 1))
        cc = cs * cs
        lu = cc * _laplacian(us, self.so, self.h)
        before = us + self.dt**2 / 2 * lu + self.dt**4 / 24 * cc * _laplacian(lu, self.so, self.h)
        for i in range(us.shape[0]):
            self.c.data[:] = self._pad(cs[i])
            self.u.data[:] = 0
            self.u.data[0] = self._pad(us[i])  # t = 0 (buffer 0 of 3), t = -1 (buffer 2)
            self.u.data[2] = self._pad(before[i])
            self.op.apply(time_m=0, time_M=self.m * (self.frames - 1), dt=self.dt)
            out[i] = self.save.data[:, g:g + self.n:s, g:g + self.n:s]
        return torch.from_numpy(out)


def frames_call(n: int, so: int, courant: float, dtype: str, c: torch.Tensor, u0: torch.Tensor, snapshot_dt: float,
                frames: int, stride: int, c_max: float) -> tuple[Callable[[], torch.Tensor], int]:
    """A function running Devito on the batch (``c``, ``u0`` on its ``n``-node grid) and its steps per
    interval (the largest dt at ``courant`` times the order's limit)."""
    m = max(1, math.ceil(snapshot_dt / (courant * stable_dt(so, 1.0 / (n - 1), c_max)) - 1e-9))
    run = DevitoRun(n, so, m, snapshot_dt, frames, dtype, stride)
    return (lambda: run(c, u0)), m


def describe() -> dict[str, Any]:
    """Devito's version and settings for the report header."""
    dv = _devito()
    return {"devito": dv.__version__, "devito_language": os.environ.get("DEVITO_LANGUAGE"),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
