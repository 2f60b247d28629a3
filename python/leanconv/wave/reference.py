"""Reference operators assembled with scikit-fem, and a plain sparse time-stepping loop.

This is the textbook implementation the fast path (:class:`~leanconv.wave.WaveSolver`)
is checked against: ``MeshQuad.init_tensor`` + ``ElementQuad1`` + ``BilinearForm``
for the stiffness and the (row-sum lumped) mass, ``FacetBasis`` on the absorbing
sides for the Engquist-Majda damping, then scipy sparse mat-vecs per step.
Vectors use the fast path's node order (row-major over ``(H, W)``, row = y).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .grid import Boundary, Grid, Sponge, stable_dt

__all__ = ["Assembled", "assemble", "ReferenceSolver"]


@dataclass
class Assembled:
    """Operators of one velocity model in grid order (``N = H * W`` nodes)."""

    grid: Grid
    stiffness: sp.csr_matrix  # K (N, N)
    mass: np.ndarray  # lumped M diagonal (N,)
    damping: np.ndarray  # C diagonal (N,): boundary part plus sponge sigma * M
    dirichlet: np.ndarray  # bool (N,)


def assemble(
    velocity: np.ndarray,
    grid: Grid | None = None,
    boundary: Any = "neumann",
    sponge: Sponge | None = None,
    c_max: float | None = None,
) -> Assembled:
    """Assemble K, lumped M and lumped C for ``velocity`` of shape ``(H, W)`` with scikit-fem.

    ``1/c^2`` (mass) and ``1/c`` (boundary damping) are Q1 fields interpolated
    from the nodal velocity.  ``c_max`` sets the default sponge strength
    (default: the largest velocity).
    """
    from skfem import Basis, BilinearForm, ElementQuad1, FacetBasis, MeshQuad
    from skfem.helpers import dot, grad

    c = np.asarray(velocity, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"velocity must have shape (H, W), got {c.shape}")
    grid = grid or Grid.for_shape(c.shape)
    if tuple(c.shape) != grid.shape:
        raise ValueError(f"velocity shape {c.shape} does not match the grid's nodal shape {grid.shape}")
    bnd = Boundary.parse(boundary)
    H, W = grid.shape
    x = grid.x0 + grid.hx * np.arange(W)
    y = grid.y0 + grid.hy * np.arange(H)
    mesh = MeshQuad.init_tensor(x, y)
    elem = ElementQuad1()
    basis = Basis(mesh, elem)
    # grid index of every mesh node, then the dof of every grid node
    ix = np.rint((mesh.p[0] - grid.x0) / grid.hx).astype(np.int64)
    iy = np.rint((mesh.p[1] - grid.y0) / grid.hy).astype(np.int64)
    order = np.empty(H * W, dtype=np.int64)
    order[iy * W + ix] = basis.nodal_dofs[0]
    dof_values = np.empty(basis.N)

    def to_dofs(field: np.ndarray) -> np.ndarray:
        dof_values[order] = field.reshape(-1)
        return dof_values.copy()

    stiffness = BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(basis)
    mass_form = BilinearForm(lambda u, v, w: u * v * w["coef"])
    consistent = mass_form.assemble(basis, coef=basis.interpolate(to_dofs(c**-2)))
    mass = np.asarray(consistent.sum(axis=1)).ravel()
    damping = np.zeros(basis.N)
    tol = 1e-9 * min(grid.hx, grid.hy)
    side_test = {
        "left": lambda p: np.abs(p[0] - grid.x0) < tol,
        "right": lambda p: np.abs(p[0] - (grid.x0 + grid.lx)) < tol,
        "bottom": lambda p: np.abs(p[1] - grid.y0) < tol,
        "top": lambda p: np.abs(p[1] - (grid.y0 + grid.ly)) < tol,
    }
    inv_c = to_dofs(1.0 / c)
    for side, kind in zip(("left", "right", "bottom", "top"), bnd):
        if kind != "absorbing":
            continue
        fbasis = FacetBasis(mesh, elem, facets=mesh.facets_satisfying(side_test[side]))
        boundary_mass = mass_form.assemble(fbasis, coef=fbasis.interpolate(inv_c))
        damping += np.asarray(boundary_mass.sum(axis=1)).ravel()
    K = stiffness.tocsr()[order][:, order].tocsr()
    M, C = mass[order], damping[order]
    if sponge is not None:
        c_top = float(c.max()) if c_max is None else c_max
        C = C + sponge.profile(grid.shape, bnd, c_top, min(grid.hx, grid.hy)).reshape(-1) * M
    return Assembled(grid, K, M, C, bnd.dirichlet_mask(grid.shape).reshape(-1))


class ReferenceSolver:
    """Central differences with assembled sparse operators, for a batch of velocity models.

    ``K`` does not depend on the velocity (the equation is divided by
    ``c^2``), so one sparse matrix serves the batch and a step is one sparse
    times dense ``(N, B)`` product plus diagonal scalings.  Vectors are
    ``(B, H, W)`` numpy arrays.
    """

    def __init__(
        self,
        velocity: np.ndarray,
        *,
        spacing: float | tuple[float, float] | None = None,
        dt: float | None = None,
        courant: float = 0.5,
        boundary: Any = "neumann",
        sponge: Sponge | None = None,
        dtype: Any = np.float64,
    ) -> None:
        c = np.asarray(velocity, dtype=np.float64)
        if c.ndim == 2:
            c = c[None]
        self.grid = Grid.for_shape(c.shape[-2:], spacing)
        c_max = float(c.max())
        self.dt = courant * stable_dt(self.grid.hx, self.grid.hy, c_max) if dt is None else float(dt)
        ops = [assemble(ci, self.grid, boundary, sponge, c_max=c_max) for ci in c]
        self.stiffness = ops[0].stiffness.astype(dtype)
        self.mass = np.stack([o.mass for o in ops], axis=1).astype(dtype)  # (N, B)
        self.damping = np.stack([o.damping for o in ops], axis=1).astype(dtype)
        self.free = (~ops[0].dirichlet).astype(dtype)[:, None]
        dt_ = self.dt
        lhs = self.mass / dt_**2 + self.damping / (2 * dt_)
        self._inv_lhs = (1.0 / lhs) * self.free
        self._m_dt2 = self.mass / dt_**2
        self._c_2dt = self.damping / (2 * dt_)
        self._damped = bool(np.any(self.damping))
        self.dtype = dtype

    def repeat(self, batch: int) -> "ReferenceSolver":
        """A solver for ``batch`` copies of this solver's (single) velocity model, without reassembling.

        The per-model diagonals are tiled to ``(N, batch)`` arrays, so a step
        does the same work as for ``batch`` different models.
        """
        if self.mass.shape[1] != 1:
            raise ValueError("repeat: the solver must hold exactly one velocity model")
        import copy

        other = copy.copy(self)
        for name in ("mass", "damping", "_inv_lhs", "_m_dt2", "_c_2dt"):
            setattr(other, name, np.ascontiguousarray(np.repeat(getattr(self, name), batch, axis=1)))
        return other

    def _cols(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=self.dtype)
        if u.ndim == 2:
            u = u[None]
        return u.reshape(u.shape[0], -1).T  # (N, B)

    def _fields(self, cols: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(cols.T).reshape(-1, *self.grid.shape)

    def first_step(self, u0: np.ndarray, v0: np.ndarray | None = None, f0: np.ndarray | None = None) -> np.ndarray:
        u = self._cols(u0)
        v = np.zeros_like(u) if v0 is None else self._cols(v0)
        rhs = -(self.stiffness @ u) - self.damping * v
        if f0 is not None:
            rhs = rhs + self._cols(f0)
        return self._fields((u + self.dt * v + 0.5 * self.dt**2 * rhs / self.mass) * self.free)

    def step_cols(self, u_prev: np.ndarray, u_now: np.ndarray, force: np.ndarray | None = None) -> np.ndarray:
        """One step on column-stacked states ``(N, B)`` (the benchmark's inner loop)."""
        rhs = self._m_dt2 * (2 * u_now - u_prev) - self.stiffness @ u_now
        if self._damped:
            rhs += self._c_2dt * u_prev
        if force is not None:
            rhs += force
        return rhs * self._inv_lhs

    def run(self, u0: np.ndarray, v0: np.ndarray | None = None, *, steps: int, every: int = 1, source=None) -> np.ndarray:
        """Snapshots ``(B, T, H, W)`` at steps ``0, every, ...``, like :meth:`WaveSolver.run`.

        ``source(t)`` returns a load ``(B, H, W)`` (or ``(1, H, W)``) array or None.
        """
        load = (lambda t: None) if source is None else (lambda t: None if source(t) is None else self._cols(np.broadcast_to(source(t), (self.mass.shape[1], *self.grid.shape))))
        u0 = np.broadcast_to(np.asarray(u0, dtype=self.dtype), (self.mass.shape[1], *self.grid.shape))
        u0 = u0 * self.free[:, 0].reshape(self.grid.shape)  # Dirichlet nodes hold zero
        f0 = None if source is None else source(0.0)
        f0 = None if f0 is None else np.broadcast_to(f0, u0.shape)
        frames = [self._cols(u0)]
        prev, now = self._cols(u0), self._cols(self.first_step(u0, v0, f0))
        if every == 1:
            frames.append(now)
        for n in range(1, steps):
            prev, now = now, self.step_cols(prev, now, load(n * self.dt))
            if (n + 1) % every == 0:
                frames.append(now)
        return np.stack([self._fields(f) for f in frames], axis=1)

    def energy(self, u_prev: np.ndarray, u_now: np.ndarray) -> np.ndarray:
        """``1/2 v^T M v + 1/2 u_now^T K u_prev`` per batch item (consecutive steps)."""
        a, b = self._cols(u_prev) * self.free, self._cols(u_now) * self.free
        v = (b - a) / self.dt
        return 0.5 * (self.mass * v * v).sum(0) + 0.5 * (b * (self.stiffness @ a)).sum(0)
