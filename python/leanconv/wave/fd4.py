"""The fourth-order scheme ``fd4``: fourth-order finite differences in space and in time.

The same equation ``u_tt = c(x)^2 Lap(u) + f`` on the same nodes as the Q1
scheme, discretised as::

    L u = c^2 (D_xx + D_yy) u,  D_xx u_i = (-u_{i-2} + 16 u_{i-1} - 30 u_i + 16 u_{i+1} - u_{i+2}) / (12 h_x^2)
    u^{n+1} = 2 u^n - u^{n-1} + dt^2 L u^n + dt^4 / 12 L(L u^n) + dt^2 c^2 f^n

(the modified-equation, or Lax-Wendroff, fourth-order step: the dt^4 term
cancels the leading time error of central differences).  Sides are handled by
mirrored ghost nodes, two per side: even images ``u_{-k} = u_k`` on a
reflecting side (zero normal derivative; the mirrored stencil stays fourth
order for data compatible with it) and odd images ``u_{-k} = -u_k`` on a
Dirichlet side (the boundary node held at zero).  ``L u`` has the same
symmetry, so it is mirrored the same way before the second application.

Stability: ``dt^2 * max eigenvalue of -L <= 12``, i.e. on square cells
``dt <= sqrt(9/8) h / c_max`` (about 1.06 h / c_max, against h / c_max for Q1).

Starting from ``(u0, v0)``: ``u^1 = u0 + dt v0 + dt^2/2 L u0 + dt^3/6 L v0 +
dt^4/24 L^2 u0`` (the Taylor series to fourth order).  With ``v0 = 0`` this is
``A u0`` where ``u^{n+1} + u^{n-1} = 2 A u^n``, so the solver's ``advance``
(continuation from two snapshots) works for this scheme as for Q1.
Absorbing sides and sponges are not available for this scheme (ValueError).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .grid import Boundary, Grid
from .threads import ThreadPolicy

__all__ = ["FD4Coefficients", "assemble_fd4", "stable_dt_fd4", "FD4TorchStepper", "laplacian4", "fill_ghosts2"]

# the largest eigenvalue of -D_xx (times h^2): the symbol (30 - 32 cos t + 2 cos 2t) / 12 at t = pi
_EIG_1D = 16.0 / 3.0


def stable_dt_fd4(hx: float, hy: float, c_max: float) -> float:
    """The largest stable time step of the fd4 scheme: ``dt^2 c_max^2 lambda_max(-Lap_h) <= 12``."""
    return math.sqrt(12.0 / (_EIG_1D * (1.0 / hx**2 + 1.0 / hy**2))) / c_max


@dataclass(frozen=True)
class FD4Coefficients:
    """What an fd4 stepper reads: ``cc = c^2`` at the nodes ``(Bc, H, W)`` (solver dtype),
    the step constants, the sides' mirror signs and the Dirichlet mask."""

    cc: torch.Tensor
    hx: float
    hy: float
    dt: float
    signs: tuple[float, float, float, float]  # left, right, bottom, top: +1 even (reflecting), -1 odd (Dirichlet)
    dirichlet: torch.Tensor
    free: torch.Tensor
    a_f: torch.Tensor  # dt^2 c^2 / (hx hy): multiplies a Q1-style load vector (phi_i / c_s^2)

    @property
    def damped(self) -> bool:
        return False

    def kernel_constants(self) -> tuple[float, float, float, float]:
        """``(wx, wy, s2, s4)``: ``D_xx`` weight ``1 / (12 hx^2)``, ``D_yy`` weight, ``dt^2``, ``dt^4 / 12``."""
        return (1.0 / (12.0 * self.hx**2), 1.0 / (12.0 * self.hy**2), self.dt**2, self.dt**4 / 12.0)


def assemble_fd4(c: torch.Tensor, grid: Grid, boundary: Boundary, dt: float, dtype: torch.dtype) -> FD4Coefficients:
    """The fd4 coefficients for velocities ``c`` (float64 ``(Bc, H, W)``) on ``grid``."""
    kinds = tuple(boundary)
    if any(k not in ("neumann", "dirichlet") for k in kinds):
        raise ValueError(f"scheme='fd4' supports reflecting ('neumann') and 'dirichlet' sides, got boundary "
                         f"{boundary.spec()!r}; use scheme='q1' for absorbing sides")
    if min(grid.shape) < 3:
        raise ValueError(f"scheme='fd4' needs at least 3 nodes per side, got {grid.shape}")
    dirichlet = torch.from_numpy(boundary.dirichlet_mask(grid.shape)).to(c.device)
    free = (~dirichlet).to(torch.float64)
    cc = c * c
    return FD4Coefficients(
        cc=cc.to(dtype).contiguous(), hx=grid.hx, hy=grid.hy, dt=dt,
        signs=tuple(1.0 if k == "neumann" else -1.0 for k in kinds), dirichlet=dirichlet,
        free=free.to(dtype), a_f=(dt * dt * cc / (grid.hx * grid.hy) * free).to(dtype).contiguous(),
    )


def fill_ghosts2(p: torch.Tensor, signs: tuple[float, float, float, float]) -> None:
    """Refresh the two mirrored ghost layers of a buffer ``(B, H+4, W+4)`` in place
    (rows first, then whole columns, so the corners are images of images)."""
    left, right, bottom, top = signs
    for ghost, image, sign in ((1, 3, bottom), (0, 4, bottom), (-2, -4, top), (-1, -5, top)):
        torch.mul(p[:, image, 2:-2], sign, out=p[:, ghost, 2:-2])
    for ghost, image, sign in ((1, 3, left), (0, 4, left), (-2, -4, right), (-1, -5, right)):
        torch.mul(p[:, :, image], sign, out=p[:, :, ghost])


def laplacian4(p: torch.Tensor, wx: float, wy: float) -> torch.Tensor:
    """``(D_xx + D_yy) u`` at the nodes of a ghost-filled buffer ``(B, H+4, W+4)``: ``(B, H, W)``
    (``wx = 1 / (12 hx^2)``, ``wy = 1 / (12 hy^2)``)."""
    u = p[:, 2:-2, 2:-2]
    dx = 16.0 * (p[:, 2:-2, 1:-3] + p[:, 2:-2, 3:-1]) - (p[:, 2:-2, :-4] + p[:, 2:-2, 4:]) - 30.0 * u
    dy = 16.0 * (p[:, 1:-3, 2:-2] + p[:, 3:-1, 2:-2]) - (p[:, :-4, 2:-2] + p[:, 4:, 2:-2]) - 30.0 * u
    return wx * dx + wy * dy


def apply_l(u: torch.Tensor, coef: FD4Coefficients) -> torch.Tensor:
    """``L u = c^2 Lap_h u`` of states ``(B, H, W)`` (the solver's first step uses it)."""
    p = torch.nn.functional.pad(u, (2, 2, 2, 2))
    p[:, 2:-2, 2:-2] = u
    fill_ghosts2(p, coef.signs)
    wx, wy, _, _ = coef.kernel_constants()
    return coef.cc * laplacian4(p, wx, wy)


class FD4TorchStepper:
    """Buffers padded by two ghost layers and the fd4 update in torch ops (any device)."""

    def __init__(self, coef: FD4Coefficients, threads: ThreadPolicy, shape: tuple[int, int], dtype: torch.dtype,
                 device: torch.device, sl: slice, B: int) -> None:
        H, W = shape
        kw = dict(dtype=dtype, device=device)
        self.prev = torch.zeros(B, H + 4, W + 4, **kw)
        self.cur = torch.zeros(B, H + 4, W + 4, **kw)
        self.v = torch.zeros(B, H + 4, W + 4, **kw)
        self.cc = coef.cc if coef.cc.shape[0] == 1 else coef.cc[sl]
        self.a_f = coef.a_f if coef.a_f.shape[0] == 1 else coef.a_f[sl]
        self.free = coef.free
        self.signs = coef.signs
        self.wx, self.wy, self.s2, self.s4 = coef.kernel_constants()

    def load(self, u_prev: torch.Tensor, u_now: torch.Tensor) -> None:
        self.prev[:, 2:-2, 2:-2] = u_prev * self.free
        self.cur[:, 2:-2, 2:-2] = u_now * self.free

    def now(self) -> torch.Tensor:
        return self.cur[:, 2:-2, 2:-2]

    def before(self) -> torch.Tensor:
        return self.prev[:, 2:-2, 2:-2]

    def advance(self, steps: int) -> None:
        for _ in range(steps):
            self.step(None)

    def step(self, force: torch.Tensor | None) -> None:
        fill_ghosts2(self.cur, self.signs)
        v = self.v[:, 2:-2, 2:-2]
        torch.mul(self.cc, laplacian4(self.cur, self.wx, self.wy), out=v)
        fill_ghosts2(self.v, self.signs)
        w = self.cc * laplacian4(self.v, self.wx, self.wy)
        u, nxt = self.cur[:, 2:-2, 2:-2], self.prev[:, 2:-2, 2:-2]
        # u^{n+1} = 2 u - u^{n-1} + dt^2 v + dt^4/12 w (+ dt^2 c^2 f), into the old buffer
        nxt.neg_().add_(u, alpha=2.0).add_(v, alpha=self.s2).add_(w, alpha=self.s4)
        if force is not None:
            nxt.addcmul_(self.a_f, force)
        nxt.mul_(self.free)
        self.prev, self.cur = self.cur, self.prev
