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
Absorbing sides and sponges: the same lumped damping as the Q1 scheme, ``C_ii =
int_{absorbing sides} phi_i / c + sigma_i M_ii`` with the nodal mass ``M_ii = w_i hx hy
/ c_i^2`` (``w``: 1 inside, 1/2 on an edge, 1/4 at a corner), an absorbing side
mirrored like a reflecting one (first-order Engquist-Majda).  The damped step
treats ``C u_t`` by central differences, ``gamma = dt C_ii / (2 M_ii)``::

    u^{n+1} = [2 u^n - (1 - gamma) u^{n-1} + dt^2 v + dt^4/12 L v + dt^2 c^2 f^n] / (1 + gamma)

(``v = L u^n``): exactly the fd4 step where nothing is damped, and it never
adds energy (:func:`energy_fd4` is conserved by the undamped step).  The step
is second order where ``gamma != 0`` - the absorbing condition itself is
first order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .assembly import boundary_damping, node_weight
from .grid import Boundary, Grid, Sponge
from .steppers import PaddedStepper, _pick
from .threads import ThreadPolicy

__all__ = ["FD4Coefficients", "assemble_fd4", "stable_dt_fd4", "FD4TorchStepper", "laplacian4", "fill_ghosts2",
           "energy_fd4"]

# the largest eigenvalue of -D_xx (times h^2): the symbol (30 - 32 cos t + 2 cos 2t) / 12 at t = pi
_EIG_1D = 16.0 / 3.0


def stable_dt_fd4(hx: float, hy: float, c_max: float) -> float:
    """The largest stable time step of the fd4 scheme: ``dt^2 c_max^2 lambda_max(-Lap_h) <= 12``."""
    return math.sqrt(12.0 / (_EIG_1D * (1.0 / hx**2 + 1.0 / hy**2))) / c_max


@dataclass(frozen=True)
class FD4Coefficients:
    """What an fd4 stepper reads: ``cc = c^2`` at the nodes ``(Bc, H, W)`` (solver dtype),
    the step constants, the sides' mirror signs, the Dirichlet mask and, on a damped
    solver, ``b = 2 / (1 + gamma)`` and ``negd = -(1 - gamma) / (1 + gamma)`` (solver
    dtype, zero on Dirichlet nodes; ``None`` when nothing is damped)."""

    cc: torch.Tensor
    hx: float
    hy: float
    dt: float
    signs: tuple[float, float, float, float]  # left, right, bottom, top: +1 even (reflecting), -1 odd (Dirichlet)
    dirichlet: torch.Tensor
    free: torch.Tensor
    a_f: torch.Tensor  # dt^2 c^2 / (hx hy (1 + gamma)): multiplies a Q1-style load vector (phi_i / c_s^2)
    mass: torch.Tensor | None = None  # float64 nodal mass w hx hy / c^2 (energy)
    rate: torch.Tensor | None = None  # float64 damping rate C_ii / M_ii (None: undamped)
    b: torch.Tensor | None = None
    negd: torch.Tensor | None = None

    @property
    def damped(self) -> bool:
        return self.b is not None

    def kernel_constants(self) -> tuple[float, float, float, float]:
        """``(wx, wy, s2, s4)``: ``D_xx`` weight ``1 / (12 hx^2)``, ``D_yy`` weight, ``dt^2``, ``dt^4 / 12``."""
        return (1.0 / (12.0 * self.hx**2), 1.0 / (12.0 * self.hy**2), self.dt**2, self.dt**4 / 12.0)

    def in_float64(self) -> "FD4Coefficients":
        """The same coefficients with every solver-dtype tensor in float64."""
        def up(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.double()

        return FD4Coefficients(up(self.cc), self.hx, self.hy, self.dt, self.signs, self.dirichlet, up(self.free),
                               up(self.a_f), self.mass, self.rate, up(self.b), up(self.negd))


def assemble_fd4(c: torch.Tensor, grid: Grid, boundary: Boundary, dt: float, dtype: torch.dtype,
                 sponge: Sponge | None = None, c_max: float | None = None) -> FD4Coefficients:
    """The fd4 coefficients for velocities ``c`` (float64 ``(Bc, H, W)``) on ``grid``
    (``c_max`` sizes the sponge's damping; the largest of ``c`` when not given)."""
    if min(grid.shape) < 3:
        raise ValueError(f"scheme='fd4' needs at least 3 nodes per side, got {grid.shape}")
    H, W = grid.shape
    dirichlet = torch.from_numpy(boundary.dirichlet_mask(grid.shape)).to(c.device)
    free = (~dirichlet).to(torch.float64)
    cc = c * c
    mass = node_weight(grid, c) * (grid.hx * grid.hy) / cc
    rate = boundary_damping(c, grid, boundary) / mass
    if sponge is not None:
        c_max = float(c.max()) if c_max is None else c_max
        sigma = sponge.profile((H, W), boundary, c_max, min(grid.hx, grid.hy))
        rate = rate + torch.from_numpy(sigma).to(rate)
    damped = bool((rate != 0).any())
    gamma = 0.5 * dt * rate
    denom = 1.0 + gamma

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype).contiguous()

    return FD4Coefficients(
        cc=cast(cc), hx=grid.hx, hy=grid.hy, dt=dt,
        signs=tuple(-1.0 if k == "dirichlet" else 1.0 for k in boundary), dirichlet=dirichlet,
        free=free.to(dtype), a_f=cast(dt * dt * cc / (grid.hx * grid.hy) * free / denom),
        mass=mass, rate=rate if damped else None,
        b=cast(2.0 / denom * free) if damped else None,
        negd=cast(-(1.0 - gamma) / denom * free) if damped else None,
    )


def energy_fd4(coef: FD4Coefficients, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The energy the undamped fd4 step conserves exactly, for consecutive states ``a = u^n``,
    ``b = u^{n+1}`` (float64 ``(B, H, W)``): ``1/2 |(b - a)/dt|_M^2 + 1/2 <b, K a>`` with
    ``K = -M (L + dt^2/12 L^2)``, symmetric and positive for a stable dt (the mirrored
    fourth-order stencil is symmetric in the ``M``-weighted product).  Returns ``(B,)``."""
    c64 = coef.in_float64()
    v = (b - a) / coef.dt
    la = apply_l(a, c64)
    ka = -(la + coef.dt**2 / 12.0 * apply_l(la, c64)) * coef.mass
    kinetic = 0.5 * (coef.mass * v * v * c64.free).sum(dim=(-2, -1))
    return kinetic + 0.5 * (b * ka * c64.free).sum(dim=(-2, -1))


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


class FD4TorchStepper(PaddedStepper):
    """Buffers padded by two ghost layers and the fd4 update in torch ops (any device)."""

    halo = 2

    def __init__(self, coef: FD4Coefficients, threads: ThreadPolicy, shape: tuple[int, int], dtype: torch.dtype,
                 device: torch.device, sl: slice, B: int) -> None:
        super().__init__(coef, shape, dtype, device, B)
        self.v = torch.zeros_like(self.prev)
        self.cc, self.a_f = _pick(coef.cc, sl), _pick(coef.a_f, sl)
        self.b, self.negd = _pick(coef.b, sl), _pick(coef.negd, sl)
        self.signs = coef.signs
        self.wx, self.wy, self.s2, self.s4 = coef.kernel_constants()

    def step(self, force: torch.Tensor | None) -> None:
        fill_ghosts2(self.cur, self.signs)
        v = self.v[:, 2:-2, 2:-2]
        torch.mul(self.cc, laplacian4(self.cur, self.wx, self.wy), out=v)
        fill_ghosts2(self.v, self.signs)
        w = self.cc * laplacian4(self.v, self.wx, self.wy)
        u, nxt = self.cur[:, 2:-2, 2:-2], self.prev[:, 2:-2, 2:-2]
        if self.b is None:
            # u^{n+1} = 2 u - u^{n-1} + dt^2 v + dt^4/12 w (+ dt^2 c^2 f), into the old buffer
            nxt.neg_().add_(u, alpha=2.0).add_(v, alpha=self.s2).add_(w, alpha=self.s4)
        else:  # b (u + (dt^2 v + dt^4/12 w) / 2) + negd u^{n-1}
            w.mul_(0.5 * self.s4).add_(v, alpha=0.5 * self.s2).add_(u)
            nxt.mul_(self.negd).addcmul_(self.b, w)
        if force is not None:
            nxt.addcmul_(self.a_f, force)
        nxt.mul_(self.free)
        self.prev, self.cur = self.cur, self.prev
