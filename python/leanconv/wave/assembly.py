"""Assembly of the lumped Q1 operators and the per-node update coefficients (immutable).

Equation ``u_tt = c(x)^2 Lap(u) + f``, weak form divided by ``c^2``::

    M u'' + C u' + K u = F,
    M_ii = int phi_i / c^2          (row-sum lumped mass; 1/c^2 is a Q1 field)
    K_ij = int grad phi_i . grad phi_j
    C_ii = int_{absorbing sides} phi_i / c   (lumped Engquist-Majda damping)
           + sigma_i M_ii                     (optional sponge layer)
    F_i  = int f phi_i / c^2

with bilinear (Q1) elements on a uniform grid and central differences::

    (M/dt^2 + C/(2dt)) u^{n+1} = M (2u^n - u^{n-1}) / dt^2 + C u^{n-1} / (2dt) - K u^n + F^n.

On a uniform grid ``K`` is a fixed 9-point stencil.  Mirroring the field
across every side (``u_{-1} = u_1``) turns the boundary rows into the
interior stencil applied to the mirrored field, times 1/2 on an edge and 1/4
at a corner; the lumped mass carries the same factor, so ``M^{-1} K u`` is
the plain stencil of the mirrored field divided by the "full-support" mass.
The stencil is evaluated through 3-point box sums: ``S u = k0 u + k1 (Cy u -
R u) - k2 box u`` with ``box = Cy R`` (``K = 3 - box/3`` on square cells).
``leanconv.wave.reference`` assembles the same matrices with scikit-fem; the
tests check both agree to round-off.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .grid import Boundary, Grid, Sponge

__all__ = ["Coefficients", "assemble", "mirror_pad", "apply_stencil", "point_load", "boundary_damping", "node_weight"]


@dataclass(frozen=True)
class Coefficients:
    """Everything a stepper reads, computed once per solver (float64, then rounded).

    Operators (float64): ``mass`` (lumped M with the boundary weight), ``mass_full``
    (without it), ``damping`` (C without the sponge), ``sigma`` (the sponge's
    damping rate), ``dirichlet`` (bool mask); ``free`` is 0 on Dirichlet nodes.
    Update (solver dtype): ``u^{n+1} = p u^n + q box(u^n) [+ s (Cy - R) u^n]
    + negd u^{n-1} + a_f F^n`` on the mirrored field, with ``negd = -1`` when
    nothing is damped; the kernel reads ``a_k`` (dt^2 / (M_full (1 + gamma))),
    ``b`` (2 / (1 + gamma)) and ``stencil`` (k0, k1, k2) instead of p, q, s.
    """

    mass: torch.Tensor
    mass_full: torch.Tensor
    damping: torch.Tensor
    sigma: torch.Tensor
    dirichlet: torch.Tensor
    free: torch.Tensor
    stencil: tuple[float, float, float]
    rect: bool
    damped: bool
    p: torch.Tensor
    q: torch.Tensor
    s: torch.Tensor | None
    negd: torch.Tensor
    a_f: torch.Tensor
    a_k: torch.Tensor
    b: torch.Tensor

    @property
    def kernel_stencil(self) -> tuple[float, float, float]:
        """``(k0, k1, k2)`` for the compiled op (``k1 = 0`` on square cells)."""
        k0, k1, k2 = self.stencil
        return (k0, k1 if self.rect else 0.0, k2)


def mirror_pad(x: torch.Tensor) -> torch.Tensor:
    """Pad the last two dims by one node, mirrored about the boundary node (u_{-1} = u_1)."""
    top = x[..., 1:2, :]
    bottom = x[..., -2:-1, :]
    x = torch.cat([top, x, bottom], dim=-2)
    return torch.cat([x[..., :, 1:2], x, x[..., :, -2:-1]], dim=-1)


def apply_stencil(u: torch.Tensor, stencil: tuple[float, float, float], rect: bool) -> torch.Tensor:
    """S u: the interior 9-point stiffness stencil of the mirrored field (no boundary weight)."""
    k0, k1, k2 = stencil
    p = mirror_pad(u)
    rx = p[..., :, :-2] + p[..., :, 1:-1] + p[..., :, 2:]
    box = rx[..., :-2, :] + rx[..., 1:-1, :] + rx[..., 2:, :]
    out = k0 * u - k2 * box
    if rect:
        cy = p[..., :-2, 1:-1] + p[..., 1:-1, 1:-1] + p[..., 2:, 1:-1]
        out = out + k1 * (cy - rx[..., 1:-1, :])
    return out


def assemble(c: torch.Tensor, grid: Grid, boundary: Boundary, sponge: Sponge | None, c_max: float, dt: float,
             dtype: torch.dtype) -> Coefficients:
    """The coefficients for velocities ``c`` (float64, ``(Bc, H, W)``) on ``grid``."""
    hx, hy = grid.hx, grid.hy
    H, W = grid.shape
    f64 = dict(device=c.device, dtype=torch.float64)
    weight = node_weight(grid, c)
    # lumped mass: the consistent Q1 mass stencil applied to m = 1/c^2 (exact
    # for m in Q1), on the mirrored field, times the boundary weight
    m = mirror_pad(c.pow(-2))
    rows = m[..., :, :-2] + 4 * m[..., :, 1:-1] + m[..., :, 2:]
    mass_full = (rows[..., :-2, :] + 4 * rows[..., 1:-1, :] + rows[..., 2:, :]) * (hx * hy / 36.0)
    mass = mass_full * weight  # (Bc, H, W)
    damping = boundary_damping(c, grid, boundary)
    sigma = torch.zeros(H, W, **f64)
    if sponge is not None:
        sigma = torch.from_numpy(sponge.profile((H, W), boundary, c_max, min(hx, hy))).to(**f64)
    dirichlet = torch.from_numpy(boundary.dirichlet_mask((H, W))).to(c.device)
    free = (~dirichlet).to(torch.float64)
    gamma = 0.5 * dt * (damping / mass + sigma)
    denom = 1.0 + gamma
    a_k = dt * dt / (mass_full * denom) * free  # multiplies the stencil of the mirrored field
    a_f = dt * dt / (mass * denom) * free  # multiplies the load vector F
    r = hy / hx
    k0, k1, k2 = 1.5 * (r + 1 / r), 0.5 * (r - 1 / r), (r + 1 / r) / 6.0
    rect = abs(k1) > 1e-14 * k0
    b = 2.0 / denom * free

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype=dtype).contiguous()

    return Coefficients(
        mass=mass, mass_full=mass_full, damping=damping, sigma=sigma, dirichlet=dirichlet,
        free=free.to(dtype=dtype), stencil=(k0, k1, k2), rect=rect, damped=bool((gamma != 0).any()),
        p=cast(b - k0 * a_k), q=cast(k2 * a_k), s=cast(-k1 * a_k) if rect else None,
        negd=cast(-(1.0 - gamma) / denom * free), a_f=cast(a_f), a_k=cast(a_k), b=cast(b),
    )


def node_weight(grid: Grid, c: torch.Tensor) -> torch.Tensor:
    """The boundary weight of each node, ``(H, W)`` float64 on ``c``'s device: 1 inside,
    1/2 on an edge, 1/4 at a corner (the share of the node's cell inside the domain)."""
    H, W = grid.shape
    f64 = dict(device=c.device, dtype=torch.float64)
    wy = torch.ones(H, **f64)
    wy[0] = wy[-1] = 0.5
    wx = torch.ones(W, **f64)
    wx[0] = wx[-1] = 0.5
    return wy[:, None] * wx[None, :]


def boundary_damping(c: torch.Tensor, grid: Grid, boundary: Boundary) -> torch.Tensor:
    """Lumped Engquist-Majda damping ``C_ii = int_{absorbing sides} phi_i / c`` of velocities
    ``c`` (float64 ``(Bc, H, W)``): the 1-D lumped mass of ``1/c`` along each absorbing side
    (zero elsewhere), ``(Bc, H, W)``.  Both schemes use it."""
    H, W = grid.shape
    hx, hy = grid.hx, grid.hy
    damping = torch.zeros_like(c)
    s = c.reciprocal()
    for side, kind in zip(("left", "right", "bottom", "top"), boundary):
        if kind != "absorbing":
            continue
        if side in ("left", "right"):
            col = 0 if side == "left" else W - 1
            line, h = s[:, :, col], hy
        else:
            row = 0 if side == "bottom" else H - 1
            line, h = s[:, row, :], hx
        ext = torch.cat([line[:, 1:2], line, line[:, -2:-1]], dim=1)
        lumped = (ext[:, :-2] + 4 * ext[:, 1:-1] + ext[:, 2:]) * (h / 6.0)
        lumped[:, 0] *= 0.5
        lumped[:, -1] *= 0.5
        if side in ("left", "right"):
            damping[:, :, col] += lumped
        else:
            damping[:, row, :] += lumped
    return damping


def point_load(c: torch.Tensor, grid: Grid, dirichlet: torch.Tensor, points) -> torch.Tensor:
    """Load vectors of unit point sources at ``points`` (``(S, 2)`` or ``(B, S, 2)``), float64
    ``(B, S, H, W)``: ``g_i = phi_i(x_s) / c(x_s)^2`` with ``1/c^2`` Q1-interpolated (see
    :meth:`leanconv.wave.WaveSolver.point_load`); zero on Dirichlet nodes."""
    pts = torch.as_tensor(points, dtype=torch.float64, device=c.device)
    if pts.dim() == 2:
        pts = pts.unsqueeze(0)
    if pts.dim() != 3 or pts.shape[-1] != 2:
        raise ValueError(f"points must have shape (S, 2) or (B, S, 2), got {tuple(pts.shape)}")
    g = grid
    H, W = g.shape
    B, S = pts.shape[:2]
    Bc = c.shape[0]
    if Bc != 1 and B not in (1, Bc):
        raise ValueError(f"points has batch {B}, the solver holds {Bc} velocity models")
    Bo = max(B, Bc)
    pts = pts.expand(Bo, S, 2)
    fx = (pts[..., 0] - g.x0) / g.hx
    fy = (pts[..., 1] - g.y0) / g.hy
    eps = 1e-9
    if bool((fx < -eps).any() | (fx > g.nx + eps).any() | (fy < -eps).any() | (fy > g.ny + eps).any()):
        raise ValueError("points: every source must lie inside the domain")
    ix = fx.floor().clamp(0, g.nx - 1)
    iy = fy.floor().clamp(0, g.ny - 1)
    tx, ty = fx - ix, fy - iy
    ix, iy = ix.long(), iy.long()
    corners = [
        ((iy * W + ix), (1 - tx) * (1 - ty)),
        ((iy * W + ix + 1), tx * (1 - ty)),
        (((iy + 1) * W + ix), (1 - tx) * ty),
        (((iy + 1) * W + ix + 1), tx * ty),
    ]
    m = c.pow(-2).reshape(Bc, H * W).expand(Bo, H * W)
    m_at = sum(wgt * m.gather(1, idx) for idx, wgt in corners)  # (Bo, S)
    load = torch.zeros(Bo, S, H * W, dtype=torch.float64, device=c.device)
    for idx, wgt in corners:
        load.scatter_add_(2, idx.unsqueeze(-1), (wgt * m_at).unsqueeze(-1))
    return load.reshape(Bo, S, H, W) * (~dirichlet)
