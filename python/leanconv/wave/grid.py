"""The mesh, the boundary conditions and the time-step limit of the wave solver.

The domain is the rectangle ``[x0, x0 + lx] x [y0, y0 + ly]`` cut into
``nx x ny`` equal cells; the unknowns are the ``(ny + 1) x (nx + 1)`` nodal
values of a bilinear (Q1) finite-element function.  Arrays are indexed
``[..., iy, ix]`` (row = y, column = x), so a field has shape ``(H, W) =
(ny + 1, nx + 1)``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Grid", "Boundary", "Sponge", "stable_dt", "BOUNDARY_KINDS"]

#: Boundary kinds and their accepted spellings.
BOUNDARY_KINDS = {
    "dirichlet": "dirichlet",
    "fixed": "dirichlet",
    "neumann": "neumann",
    "reflecting": "neumann",
    "free": "neumann",
    "absorbing": "absorbing",
}
SIDES = ("left", "right", "bottom", "top")


@dataclass(frozen=True)
class Grid:
    """A uniform mesh of ``nx x ny`` rectangular cells on ``[x0, x0+lx] x [y0, y0+ly]``."""

    nx: int
    ny: int
    lx: float = 1.0
    ly: float = 1.0
    x0: float = 0.0
    y0: float = 0.0

    def __post_init__(self) -> None:
        for name in ("nx", "ny"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 2:
                raise ValueError(f"Grid: {name} must be an integer number of cells >= 2, got {v!r}")
        for name in ("lx", "ly"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"Grid: {name} must be a positive length, got {v!r}")

    @classmethod
    def square(cls, n: int, length: float = 1.0) -> "Grid":
        """``n x n`` square cells on ``[0, length]^2``."""
        return cls(n, n, float(length), float(length))

    @classmethod
    def for_shape(cls, shape: Sequence[int], spacing: float | Sequence[float] | None = None) -> "Grid":
        """The grid whose nodal fields have ``shape = (H, W)``.

        ``spacing`` is the cell size ``h`` (or ``(hx, hy)``); by default the
        domain is ``W - 1`` cells across the unit length, ``h = 1 / (W - 1)``.
        """
        if len(shape) != 2 or min(shape) < 3:
            raise ValueError(f"a nodal field must have shape (H, W) with H, W >= 3, got {tuple(shape)}")
        h_, w_ = int(shape[0]), int(shape[1])
        if spacing is None:
            hx = hy = 1.0 / (w_ - 1)
        elif isinstance(spacing, (int, float)):
            hx = hy = float(spacing)
        else:
            hx, hy = (float(s) for s in spacing)
        if not (hx > 0 and hy > 0 and math.isfinite(hx) and math.isfinite(hy)):
            raise ValueError(f"spacing must be positive, got {spacing!r}")
        return cls(w_ - 1, h_ - 1, hx * (w_ - 1), hy * (h_ - 1))

    @property
    def hx(self) -> float:
        return self.lx / self.nx

    @property
    def hy(self) -> float:
        return self.ly / self.ny

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W) = (ny + 1, nx + 1)``: the shape of a nodal field."""
        return (self.ny + 1, self.nx + 1)

    def coordinates(self):
        """Node coordinates ``(X, Y)`` as float64 numpy arrays of shape ``(H, W)``."""
        import numpy as np

        x = self.x0 + self.hx * np.arange(self.nx + 1)
        y = self.y0 + self.hy * np.arange(self.ny + 1)
        return np.meshgrid(x, y, indexing="xy")


class Boundary(NamedTuple):
    """Boundary condition per side: each ``'dirichlet'``, ``'neumann'`` or ``'absorbing'``.

    ``left``/``right`` are ``x = x0`` and ``x = x0 + lx`` (columns 0 and W-1),
    ``bottom``/``top`` are ``y = y0`` and ``y = y0 + ly`` (rows 0 and H-1).
    ``'neumann'`` (alias ``'reflecting'``) is the natural condition du/dn = 0;
    ``'absorbing'`` is first-order Engquist-Majda, u_t + c du/dn = 0;
    ``'dirichlet'`` holds u = 0.
    """

    left: str
    right: str
    bottom: str
    top: str

    @classmethod
    def parse(cls, spec: "str | Sequence[str] | Mapping[str, str] | Boundary") -> "Boundary":
        """Accept one kind for all sides, ``"a,b,c,d"`` / a 4-sequence (left, right, bottom, top), or a mapping."""
        if isinstance(spec, Boundary):
            return spec
        if isinstance(spec, str):
            parts = [p.strip() for p in spec.split(",")]
            if len(parts) == 1:
                parts = parts * 4
        elif isinstance(spec, Mapping):
            unknown = set(spec) - set(SIDES)
            if unknown:
                raise ValueError(f"boundary: unknown side(s) {sorted(unknown)}; sides are {SIDES}")
            missing = set(SIDES) - set(spec)
            if missing:
                raise ValueError(f"boundary: missing side(s) {sorted(missing)}; give all of {SIDES}")
            parts = [spec[s] for s in SIDES]
        else:
            parts = list(spec)
        if len(parts) != 4:
            raise ValueError(
                f"boundary must be one kind or four (left, right, bottom, top), got {spec!r}"
            )
        kinds = []
        for side, p in zip(SIDES, parts):
            kind = BOUNDARY_KINDS.get(str(p).lower())
            if kind is None:
                raise ValueError(
                    f"boundary: {side} side kind {p!r} is not one of {sorted(set(BOUNDARY_KINDS))}"
                )
            kinds.append(kind)
        return cls(*kinds)

    def spec(self) -> str:
        """Compact text form, accepted by :meth:`parse`."""
        return self.left if len(set(self)) == 1 else ",".join(self)

    @property
    def damped(self) -> bool:
        return "absorbing" in self

    def dirichlet_mask(self, shape: Sequence[int]):
        """Boolean numpy array ``(H, W)``: True on the nodes of the Dirichlet sides."""
        import numpy as np

        mask = np.zeros(tuple(shape), dtype=bool)
        if self.left == "dirichlet":
            mask[:, 0] = True
        if self.right == "dirichlet":
            mask[:, -1] = True
        if self.bottom == "dirichlet":
            mask[0, :] = True
        if self.top == "dirichlet":
            mask[-1, :] = True
        return mask


@dataclass(frozen=True)
class Sponge:
    """A damping layer ``sigma(d) = strength * (1 - d / width)^2`` next to the absorbing sides.

    ``width`` is in cells; ``strength`` (1/time) defaults to ``2 c_max / L``
    with ``L = width * h`` the layer's thickness.  A plain damping layer (not
    a PML) reflects from its own gradient when it is too strong: for a
    Gaussian pulse in the unit square (n = 64, t = 2) a 16-cell layer with
    this default leaves 5.9e-5 of the energy against 1.5e-4 for the absorbing
    sides alone, while strengths of 20-40 leave more than no layer.  Layers
    thinner than about a wavelength do not help.  The layer adds the
    mass-proportional damping ``sigma M u'`` to the equation.
    """

    width: int
    strength: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or self.width < 1:
            raise ValueError(f"Sponge: width must be a positive number of cells, got {self.width!r}")
        if self.strength is not None and not (math.isfinite(self.strength) and self.strength > 0):
            raise ValueError(f"Sponge: strength must be positive, got {self.strength!r}")

    def sigma_max(self, c_max: float, h: float) -> float:
        if self.strength is not None:
            return float(self.strength)
        return 2.0 * c_max / (self.width * h)

    def profile(self, shape: Sequence[int], boundary: "Boundary", c_max: float, h: float):
        """Damping ``sigma`` at the nodes, float64 numpy ``(H, W)``: the largest over the absorbing sides."""
        import numpy as np

        H, W = shape
        iy, ix = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")
        dist = {"left": ix, "right": W - 1 - ix, "bottom": iy, "top": H - 1 - iy}
        smax = self.sigma_max(c_max, h)
        sigma = np.zeros((H, W))
        for side, kind in zip(SIDES, boundary):
            if kind == "absorbing":
                sigma = np.maximum(sigma, smax * np.clip(1.0 - dist[side] / self.width, 0.0, None) ** 2)
        return sigma


def stable_dt(hx: float, hy: float, c_max: float) -> float:
    """Largest stable time step of explicit central differences with lumped Q1 elements.

    On square cells this is ``h / c_max``.  In general it is ``2 / omega_max``
    with ``omega_max^2 = c_max^2 k_max / (hx hy)``, where ``k_max = max(4r,
    4/r, 4(r + 1/r)/3)``, ``r = hy / hx``, is the largest eigenvalue of the
    stiffness stencil relative to the lumped mass (Fourier analysis of the
    tensor-product stencil; Neumann and Dirichlet spectra lie below it).
    """
    if not (c_max > 0 and math.isfinite(c_max)):
        raise ValueError(f"c_max must be a positive finite velocity, got {c_max!r}")
    r = hy / hx
    k_max = max(4.0 * r, 4.0 / r, 4.0 * (r + 1.0 / r) / 3.0)
    return 2.0 * math.sqrt(hx * hy) / (c_max * math.sqrt(k_max))
