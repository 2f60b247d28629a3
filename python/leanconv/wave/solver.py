"""Batched explicit finite-element solver of the 2-D scalar wave equation (the fast path).

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
The stencil itself is evaluated through 3-point box sums (``K = 3 - box/3``
on square cells), and each step is a handful of fused elementwise torch ops
over the whole batch, on CPU or GPU.  ``leanconv.wave.reference`` assembles
the same matrices with scikit-fem; the tests check both agree to round-off.
"""
from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .grid import Boundary, Grid, Sponge, stable_dt

__all__ = ["WaveSolver"]

Source = Callable[[float], "torch.Tensor | None"]


def _mirror_pad(x: torch.Tensor) -> torch.Tensor:
    """Pad the last two dims by one node, mirrored about the boundary node (u_{-1} = u_1)."""
    top = x[..., 1:2, :]
    bottom = x[..., -2:-1, :]
    x = torch.cat([top, x, bottom], dim=-2)
    return torch.cat([x[..., :, 1:2], x, x[..., :, -2:-1]], dim=-1)


def _fill_ghosts(p: torch.Tensor) -> None:
    """Refresh the mirrored ghost layer of a padded buffer ``(B, H+2, W+2)`` in place."""
    p[:, 0, 1:-1].copy_(p[:, 2, 1:-1])
    p[:, -1, 1:-1].copy_(p[:, -3, 1:-1])
    p[:, :, 0].copy_(p[:, :, 2])
    p[:, :, -1].copy_(p[:, :, -3])


def _one_thread(method: Callable) -> Callable:
    """Run a CPU solver method's bookkeeping torch ops on one thread (see ``WaveSolver._threads_for_bookkeeping``)."""

    @functools.wraps(method)
    def wrapper(self: "WaveSolver", *args: Any, **kwargs: Any) -> Any:
        with self._threads_for_bookkeeping():
            return method(self, *args, **kwargs)

    return wrapper


class WaveSolver:
    """Explicit Q1 finite-element solver for a batch of velocity models on one uniform grid.

    Args:
        velocity: wave speed ``c > 0`` at the nodes, shape ``(H, W)`` or
            ``(B, H, W)`` (tensor or numpy array).  ``1/c^2`` is interpolated
            as a Q1 field for the mass matrix and ``1/c`` along the boundary.
        spacing: cell size ``h`` or ``(hx, hy)``; default ``1 / (W - 1)``
            (the domain is one unit wide).
        dt: time step; default ``courant * stable_dt`` (see ``courant``).
        courant: fraction of the stability limit used when ``dt`` is not
            given; the limit is ``h / c_max`` on square cells.
        boundary: ``'neumann'`` (reflecting, default), ``'dirichlet'``,
            ``'absorbing'``, or one kind per side (see :class:`Boundary`).
        sponge: optional :class:`Sponge` (or its width in cells) damping a
            layer next to the absorbing sides.
        device, dtype: where and in what precision to step (default: the
            device of ``velocity`` and its dtype when float32/float64, else
            float32).
            Coefficients are computed in float64 and then rounded.
        check_stability: refuse a ``dt`` above the stability limit
            (``ValueError``).  Turn off only to watch an unstable run blow up.
        backend: ``'kernel'`` steps with leanconv's compiled op
            ``wave_step_`` (fused, in place, many steps per call),
            ``'torch'`` with plain torch ops, ``'auto'`` (default) with the
            kernel on CPU when the compiled extension is loaded, else torch
            (on CUDA the kernel must be asked for by name for now).

    States are tensors ``(B, H, W)`` (or ``(H, W)`` for B = 1).  A solver
    built for one velocity model (B = 1) steps a batch of states of any size.
    """

    def __init__(
        self,
        velocity: Any,
        *,
        spacing: float | tuple[float, float] | None = None,
        dt: float | None = None,
        courant: float = 0.5,
        boundary: Any = "neumann",
        sponge: Sponge | int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        check_stability: bool = True,
        backend: str = "auto",
    ) -> None:
        c = velocity if isinstance(velocity, torch.Tensor) else torch.as_tensor(velocity)
        if dtype is None:
            dtype = c.dtype if c.is_floating_point() and c.dtype in (torch.float32, torch.float64) else torch.float32
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        device = torch.device(device) if device is not None else c.device
        if c.dim() == 2:
            c = c.unsqueeze(0)
        if c.dim() != 3 or c.shape[-1] < 3 or c.shape[-2] < 3:
            raise ValueError(f"velocity must have shape (H, W) or (B, H, W) with H, W >= 3, got {tuple(c.shape)}")
        c = c.to(device=device, dtype=torch.float64)
        if not bool(torch.isfinite(c).all()) or not bool((c > 0).all()):
            raise ValueError("velocity must be finite and > 0 everywhere")
        self.grid = Grid.for_shape(c.shape[-2:], spacing)
        self.boundary = Boundary.parse(boundary)
        if isinstance(sponge, int) and not isinstance(sponge, bool):
            sponge = Sponge(sponge) if sponge > 0 else None
        if sponge is not None and not isinstance(sponge, Sponge):
            raise ValueError(f"sponge must be a Sponge, a width in cells or None, got {sponge!r}")
        if sponge is not None and not self.boundary.damped:
            raise ValueError("sponge: a sponge layer lines the absorbing sides; boundary has none")
        self.sponge = sponge
        self.device, self.dtype = device, dtype
        self.c_max = float(c.max())
        hx, hy = self.grid.hx, self.grid.hy
        self.dt_max = stable_dt(hx, hy, self.c_max)
        if dt is None:
            if not (isinstance(courant, (int, float)) and 0 < courant):
                raise ValueError(f"courant must be > 0, got {courant!r}")
            dt = courant * self.dt_max
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive time step, got {dt!r}")
        if check_stability and dt > self.dt_max * (1 + 1e-12):
            raise ValueError(
                f"dt={dt:.6g} is above the stability limit {self.dt_max:.6g} "
                f"(Courant number {dt / self.dt_max:.4g} > 1; the limit is h/c_max for c_max={self.c_max:.6g}, "
                f"h=({hx:.6g}, {hy:.6g})); use a smaller dt or courant <= 1"
            )
        self.dt = dt
        self.courant = dt / self.dt_max
        self.backend = _choose_backend(backend, self.device)
        self._threads: int | None = None
        with self._threads_for_bookkeeping():
            self._build(c)

    # ------------------------------------------------------------------ setup
    @contextlib.contextmanager
    def _threads_for_bookkeeping(self) -> Iterator[None]:
        """On CPU, run the many small torch ops around the stepping on one thread.

        Each multi-threaded torch op ends in a thread barrier, and on a busy
        machine (more runnable threads than cores) every barrier can cost a
        scheduler time slice: set-up and snapshot copies then took 10x the
        stepping itself.  The stepping still uses ``torch.get_num_threads()``
        threads (recorded here in ``self._threads``).  Not thread-safe: use a
        solver from one thread at a time.
        """
        if self.device.type != "cpu" or self._threads is not None:
            yield
            return
        n = torch.get_num_threads()
        self._threads = n
        if n > 1:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            self._threads = None
            if n > 1:
                torch.set_num_threads(n)

    def _build(self, c: torch.Tensor) -> None:
        """Diagonals M, C, sigma and the per-node update coefficients (float64, then rounded)."""
        grid, bnd, dt = self.grid, self.boundary, self.dt
        hx, hy = grid.hx, grid.hy
        H, W = grid.shape
        f64 = dict(device=self.device, dtype=torch.float64)
        # boundary weight: 1 inside, 1/2 on an edge, 1/4 at a corner
        wy = torch.ones(H, **f64)
        wy[0] = wy[-1] = 0.5
        wx = torch.ones(W, **f64)
        wx[0] = wx[-1] = 0.5
        weight = wy[:, None] * wx[None, :]
        # lumped mass: the consistent Q1 mass stencil applied to m = 1/c^2 (exact
        # for m in Q1), on the mirrored field, times the boundary weight
        m = _mirror_pad(c.pow(-2))
        rows = m[..., :, :-2] + 4 * m[..., :, 1:-1] + m[..., :, 2:]
        mass_full = (rows[..., :-2, :] + 4 * rows[..., 1:-1, :] + rows[..., 2:, :]) * (hx * hy / 36.0)
        self.mass = mass_full * weight  # (Bc, H, W)
        # Engquist-Majda damping: 1-D lumped mass of s = 1/c along each absorbing side
        damping = torch.zeros_like(self.mass)
        s = c.reciprocal()
        for side, kind in zip(("left", "right", "bottom", "top"), bnd):
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
        self.damping = damping
        sigma = torch.zeros(H, W, **f64)
        if self.sponge is not None:
            sigma = torch.from_numpy(self.sponge.profile((H, W), bnd, self.c_max, min(hx, hy))).to(**f64)
        self.sigma = sigma
        dirichlet = torch.from_numpy(bnd.dirichlet_mask((H, W))).to(self.device)
        self.dirichlet = dirichlet
        free = (~dirichlet).to(torch.float64)
        gamma = 0.5 * dt * (damping / self.mass + self.sigma)
        self._damped = bool((gamma != 0).any())
        denom = 1.0 + gamma
        a_k = dt * dt / (mass_full * denom) * free  # multiplies the stencil of the mirrored field
        a_f = dt * dt / (self.mass * denom) * free  # multiplies the load vector F
        # stencil of K on the mirrored field, through 3-point sums R (along x), Cy (along y):
        #   S u = k0 u + k1 (Cy u - R u) - k2 box u,  box = Cy R
        r = hy / hx
        k0, k1, k2 = 1.5 * (r + 1 / r), 0.5 * (r - 1 / r), (r + 1 / r) / 6.0
        self._rect = abs(k1) > 1e-14 * k0
        b = 2.0 / denom * free
        cast = dict(dtype=self.dtype)
        self._p = (b - k0 * a_k).to(**cast).contiguous()
        self._q = (k2 * a_k).to(**cast).contiguous()
        self._s = (-k1 * a_k).to(**cast).contiguous() if self._rect else None
        self._negd = (-(1.0 - gamma) / denom * free).to(**cast).contiguous()
        self._a_f = a_f.to(**cast).contiguous()
        self._a_k = a_k.to(**cast).contiguous()
        self._b = b.to(**cast).contiguous()
        self._k = (k0, k1 if self._rect else 0.0, k2)
        self._free = free.to(**cast)
        self._stencil = (k0, k1, k2)
        self._mass_full = mass_full
        self._c = c

    # ------------------------------------------------------------------ info
    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of a nodal field."""
        return self.grid.shape

    @property
    def batch(self) -> int:
        """Number of velocity models (1 broadcasts over any state batch)."""
        return self._c.shape[0]

    @property
    def damped(self) -> bool:
        """True when an absorbing side or a sponge removes energy."""
        return self._damped

    def settings(self) -> dict[str, Any]:
        """The solver's settings as plain data (for manifests and reports)."""
        return {
            "shape": list(self.grid.shape),
            "spacing": [self.grid.hx, self.grid.hy],
            "dt": self.dt,
            "courant": self.courant,
            "boundary": self.boundary.spec(),
            "sponge": None if self.sponge is None else {"width": self.sponge.width, "strength": self.sponge.strength},
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    # ------------------------------------------------------------------ operators
    def _state(self, u: Any, name: str) -> torch.Tensor:
        u = u if isinstance(u, torch.Tensor) else torch.as_tensor(u)
        if u.dim() == 2:
            u = u.unsqueeze(0)
        if u.dim() != 3 or tuple(u.shape[-2:]) != self.grid.shape:
            raise ValueError(f"{name} must have shape (B, H, W) or (H, W) with (H, W) = {self.grid.shape}, got {tuple(u.shape)}")
        if self.batch != 1 and u.shape[0] != self.batch:
            raise ValueError(f"{name} has batch {u.shape[0]}, but the solver holds {self.batch} velocity models")
        return u.to(device=self.device, dtype=self.dtype)

    def _apply_stencil(self, u: torch.Tensor) -> torch.Tensor:
        """S u: the interior 9-point stiffness stencil of the mirrored field (no boundary weight)."""
        k0, k1, k2 = self._stencil
        p = _mirror_pad(u)
        rx = p[..., :, :-2] + p[..., :, 1:-1] + p[..., :, 2:]
        box = rx[..., :-2, :] + rx[..., 1:-1, :] + rx[..., 2:, :]
        out = k0 * u - k2 * box
        if self._rect:
            cy = p[..., :-2, 1:-1] + p[..., 1:-1, 1:-1] + p[..., 2:, 1:-1]
            out = out + k1 * (cy - rx[..., 1:-1, :])
        return out

    @_one_thread
    def stiffness(self, u: Any) -> torch.Tensor:
        """``K u`` at every node: the assembled (Neumann) stiffness matrix times ``u``, in float64."""
        return self._stiffness64(self._state(u, "u").to(torch.float64))

    def _stiffness64(self, u: torch.Tensor) -> torch.Tensor:
        s = self._apply_stencil(u)
        s[..., 0, :] *= 0.5
        s[..., -1, :] *= 0.5
        s[..., :, 0] *= 0.5
        s[..., :, -1] *= 0.5
        return s

    @_one_thread
    def energy(self, u_prev: Any, u_now: Any, interval: int = 1) -> torch.Tensor:
        """Discrete energy ``1/2 v^T M v + 1/2 u_now^T K u_prev`` per batch item (float64, shape ``(B,)``).

        ``v = (u_now - u_prev) / (interval * dt)``.  For consecutive solver
        steps (``interval = 1``) this is the quantity central differences
        conserve exactly when nothing is damped and there is no source; for
        snapshots ``interval`` steps apart it approximates the energy to
        ``O((interval dt)^2)``.  Values on Dirichlet nodes are ignored.
        """
        _check_count(interval, "interval", minimum=1)
        free = (~self.dirichlet).to(torch.float64)
        a = self._state(u_prev, "u_prev").to(torch.float64) * free
        b = self._state(u_now, "u_now").to(torch.float64) * free
        v = (b - a) / (interval * self.dt)
        kinetic = 0.5 * (self.mass * v * v).sum(dim=(-2, -1))
        potential = 0.5 * (b * self._stiffness64(a)).sum(dim=(-2, -1))
        return kinetic + potential

    @_one_thread
    def point_load(self, points: Any) -> torch.Tensor:
        """Load vectors of unit point sources: ``g_i = phi_i(x_s) / c(x_s)^2``.

        ``points``: ``(S, 2)`` or ``(B, S, 2)`` physical coordinates ``(x, y)``
        inside the domain.  Returns ``(B, S, H, W)`` in the solver's dtype; the
        source ``f = a(t) delta(x - x_s)`` has load ``F = a(t) g``.
        ``1/c^2`` at the point is its Q1 interpolant, as in the mass matrix.
        """
        pts = torch.as_tensor(points, dtype=torch.float64, device=self.device)
        if pts.dim() == 2:
            pts = pts.unsqueeze(0)
        if pts.dim() != 3 or pts.shape[-1] != 2:
            raise ValueError(f"points must have shape (S, 2) or (B, S, 2), got {tuple(pts.shape)}")
        g = self.grid
        H, W = g.shape
        B, S = pts.shape[:2]
        Bc = self._c.shape[0]
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
        m = self._c.pow(-2).reshape(Bc, H * W).expand(Bo, H * W)
        m_at = sum(wgt * m.gather(1, idx) for idx, wgt in corners)  # (Bo, S)
        load = torch.zeros(Bo, S, H * W, dtype=torch.float64, device=self.device)
        for idx, wgt in corners:
            load.scatter_add_(2, idx.unsqueeze(-1), (wgt * m_at).unsqueeze(-1))
        load = load.reshape(Bo, S, H, W) * (~self.dirichlet)
        return load.to(self.dtype)

    # ------------------------------------------------------------------ stepping
    @_one_thread
    def first_step(self, u0: Any, v0: Any = None, f0: Any = None) -> torch.Tensor:
        """``u^1 = u0 + dt v0 + dt^2/2 M^{-1} (F^0 - K u0 - C v0)`` (second order; equals the
        central-difference step with the ghost value ``u^{-1} = u^1 - 2 dt v0``)."""
        u0 = self._state(u0, "u0")
        v0 = None if v0 is None else self._state(v0, "v0")
        f0 = None if f0 is None else self._state(f0, "f0")
        return self._first(u0, v0, f0, slice(None))

    def _first(self, u0: torch.Tensor, v0: torch.Tensor | None, f0: torch.Tensor | None, sl: slice) -> torch.Tensor:
        def pick(t: torch.Tensor) -> torch.Tensor:
            return t if t.shape[0] == 1 else t[sl]

        mass = pick(self.mass)
        u = u0.to(torch.float64)
        acc = -self._apply_stencil(u) / pick(self._mass_full)
        vel = torch.zeros_like(u) if v0 is None else v0.to(torch.float64)
        if v0 is not None:
            acc = acc - (pick(self.damping) / mass + self.sigma) * vel
        if f0 is not None:
            acc = acc + f0.to(torch.float64) / mass
        u1 = u + self.dt * vel + 0.5 * self.dt * self.dt * acc
        return (u1 * (~self.dirichlet)).to(self.dtype)

    @_one_thread
    def step(self, u_prev: Any, u_now: Any, force: Any = None) -> torch.Tensor:
        """One central-difference step: return ``u^{n+1}`` from ``u^{n-1}, u^n`` (and load ``F^n``)."""
        a = self._state(u_prev, "u_prev")
        b = self._state(u_now, "u_now")
        stepper = self._stepper(slice(None), max(a.shape[0], b.shape[0]))
        stepper.load(a, b)
        stepper.step(None if force is None else self._state(force, "force"))
        return stepper.now().clone()

    @_one_thread
    def march(self, u_prev: Any, u_now: Any, steps: int, *, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance the state ``(u^{n-1}, u^n)`` (consecutive steps) by ``steps`` source-free steps.

        Returns the new pair ``(u^{n+steps-1}, u^{n+steps})`` and stores
        nothing in between: the cheapest way to move far ahead, and what the
        benchmark times.
        """
        _check_count(steps, "steps", minimum=1)
        a, b, B = self._pair(u_prev, u_now)
        if self.backend == "kernel" and (chunk is None or chunk >= B):
            # one chunk: the op steps the stepper's own buffers in place; hand them out
            # instead of copying them (with few steps per call on large batches the copies
            # cost ~20%: 512^2 x 64, 29 steps, in the wave benchmark)
            stepper = self._stepper(slice(0, B), B)
            stepper.load(a, b)
            stepper.advance(steps)
            return stepper.before(), stepper.now()
        out_prev = torch.empty(B, *self.grid.shape, dtype=self.dtype, device=self.device)
        out_now = torch.empty_like(out_prev)

        def march_chunk(sl: slice) -> None:
            stepper = self._stepper(sl, sl.stop - sl.start)
            stepper.load(a[sl], b[sl])
            stepper.advance(steps)
            out_prev[sl] = stepper.before()
            out_now[sl] = stepper.now()

        self._map_chunks(B, chunk, march_chunk)
        return out_prev, out_now

    @_one_thread
    def run(
        self,
        u0: Any,
        v0: Any = None,
        *,
        steps: int,
        every: int = 1,
        source: Source | None = None,
        out_dtype: torch.dtype | None = None,
        out_device: torch.device | str | None = None,
        chunk: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Simulate from ``u(0) = u0``, ``u_t(0) = v0`` for ``steps`` steps.

        Returns the snapshots at steps ``0, every, 2 every, ..., <= steps`` as
        ``(B, T, H, W)`` with ``T = steps // every + 1``.  ``source(t)`` returns
        the load vector ``F`` at time ``t`` (``(B, H, W)``, ``(1, H, W)`` or
        None); see :meth:`point_load`.  The batch is simulated in chunks of
        ``chunk`` models (default: all on GPU, about 4 MB of state per chunk
        on CPU, which keeps a chunk in cache); chunks are independent, so the
        result does not depend on it.  ``progress(n)`` is called with the number
        of trajectories finished after each chunk.
        """
        _check_count(steps, "steps", minimum=1)
        _check_count(every, "every", minimum=1)
        u0 = self._state(u0, "u0")
        B = u0.shape[0] if self.batch == 1 else self.batch
        u0 = u0.expand(B, *self.grid.shape) * self._free
        v0 = None if v0 is None else self._state(v0, "v0").expand(B, *self.grid.shape)
        T = steps // every + 1
        out = torch.empty(B, T, *self.grid.shape, dtype=out_dtype or self.dtype, device=out_device or self.device)
        def simulate(sl: slice) -> None:
            def load_at(t: float) -> torch.Tensor | None:
                if source is None:
                    return None
                f = source(t)
                if f is None:
                    return None
                f = self._state(f, "source(t)")
                return f if f.shape[0] == 1 else f[sl]

            u_first = self._first(u0[sl], None if v0 is None else v0[sl], load_at(0.0), sl)
            stepper = self._stepper(sl, sl.stop - sl.start)
            stepper.load(u0[sl], u_first)
            out[sl, 0] = u0[sl]
            if every == 1:
                out[sl, 1] = u_first
            n = 1  # steps done
            while n < steps:
                if source is None:  # many steps per call, up to the next snapshot
                    k = min(steps, (n // every + 1) * every) - n
                    stepper.advance(k)
                    n += k
                else:
                    stepper.step(load_at(n * self.dt))
                    n += 1
                if n % every == 0:
                    out[sl, n // every] = stepper.now()
            if progress is not None:
                progress(sl.stop - sl.start)

        self._map_chunks(B, chunk, simulate)
        return out

    @_one_thread
    def snapshots(
        self,
        u_prev: Any,
        u_now: Any,
        intervals: int,
        *,
        every: int,
        chunk: int | None = None,
    ) -> torch.Tensor:
        """Continue the state ``(u^{n-1}, u^n)`` (consecutive solver steps) without a source.

        Returns the snapshots at steps ``n + every, ..., n + intervals * every``
        as ``(B, intervals, H, W)``, stepping one set of buffers through all of
        them (damped solvers included: two consecutive states are the whole state).
        """
        _check_count(intervals, "intervals", minimum=1)
        _check_count(every, "every", minimum=1)
        a, b, B = self._pair(u_prev, u_now)
        out = torch.empty(B, intervals, *self.grid.shape, dtype=self.dtype, device=self.device)

        def step_chunk(sl: slice) -> None:
            stepper = self._stepper(sl, sl.stop - sl.start)
            stepper.load(a[sl], b[sl])
            for j in range(intervals):
                stepper.advance(every)
                out[sl, j] = stepper.now()

        self._map_chunks(B, chunk, step_chunk)
        return out

    def _pair(self, u_prev: Any, u_now: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Two checked states expanded to the solver's batch, and that batch."""
        a = self._state(u_prev, "u_prev")
        b = self._state(u_now, "u_now")
        if a.shape != b.shape:
            raise ValueError(f"u_prev and u_now must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        B = a.shape[0] if self.batch == 1 else self.batch
        return a.expand(B, *self.grid.shape), b.expand(B, *self.grid.shape), B

    @_one_thread
    def advance(
        self,
        u_prev: Any,
        u_now: Any,
        intervals: int,
        *,
        every: int,
        chunk: int | None = None,
    ) -> torch.Tensor:
        """Continue a source-free run from two snapshots ``every`` steps apart.

        ``u_prev``, ``u_now``: ``(B, H, W)`` snapshots at steps ``n - every`` and
        ``n``.  Returns the next ``intervals`` snapshots, ``(B, intervals, H, W)``,
        at steps ``n + every, ..., n + intervals * every``, at the cost of
        ``every`` solver steps per interval.

        With ``every = 1`` this is plain stepping.  For ``every > 1`` it uses
        ``u^{n+k} = 2 T_k(A) u^n - u^{n-k}``, where ``u^{n+1} + u^{n-1} = 2 A u^n``
        is the undamped recurrence and ``T_k(A) u^n`` is the solver run ``k``
        steps from ``u^n`` at rest; this reproduces the solver's snapshots
        exactly (to round-off).  It needs an undamped solver: with an
        absorbing side or a sponge two snapshots do not determine the state,
        and a ``ValueError`` says so.
        """
        _check_count(intervals, "intervals", minimum=1)
        _check_count(every, "every", minimum=1)
        if every == 1:
            return self.snapshots(u_prev, u_now, intervals, every=1, chunk=chunk)
        a, b, B = self._pair(u_prev, u_now)
        if self.damped:
            raise ValueError(
                "advance: two snapshots more than one step apart do not determine the state of a damped "
                f"solver (boundary {self.boundary.spec()!r}, sponge {self.sponge}); use every=1 snapshots, "
                "a 'neumann'/'dirichlet' boundary, or restart with run()"
            )
        out = torch.empty(B, intervals, *self.grid.shape, dtype=self.dtype, device=self.device)

        def continue_chunk(sl: slice) -> None:
            stepper = self._stepper(sl, sl.stop - sl.start)
            prev, now = a[sl], b[sl]
            for j in range(intervals):
                stepper.load(now, self._first(now, None, None, sl))
                stepper.advance(every - 1)
                out[sl, j] = (2 * stepper.now() - prev) * self._free
                prev, now = now, out[sl, j]

        self._map_chunks(B, chunk, continue_chunk)
        return out

    def _map_chunks(self, B: int, chunk: int | None, work: Callable[[slice], None]) -> None:
        """Run ``work`` on slices ("chunks") of the batch.

        With the compiled kernel, or on GPU, the chunks run one after another
        (by default one chunk: the whole batch).  With torch ops on CPU,
        ``torch.get_num_threads()`` Python worker threads step different
        chunks at once, each with a single intra-op thread (torch releases the
        GIL inside ops).  A step is about ten small elementwise ops; letting
        each op fork and join an OpenMP team costs a barrier per op, which on
        a busy machine made stepping 10-20x slower.  Default chunks hold about
        1 MB of state so that a chunk stays in cache.  Chunks are independent
        trajectories, so the result does not depend on the chunking.
        """
        H, W = self.grid.shape
        if self.device.type != "cpu" or self.backend == "kernel":
            # the compiled op threads over the batch itself (one item per thread, all steps in cache)
            chunk = B if chunk is None else chunk
            _check_count(chunk, "chunk", minimum=1)
            for i in range(0, B, chunk):
                work(slice(i, min(B, i + chunk)))
            return
        workers = max(1, self._threads or torch.get_num_threads())
        if chunk is None:
            per = (H + 2) * (W + 2) * (torch.finfo(self.dtype).bits // 8) * 6
            n = -(-B * per // _CHUNK_BYTES)
            n = min(B, -(-n // workers) * workers)
            chunk = -(-B // n)
        _check_count(chunk, "chunk", minimum=1)
        slices = [slice(i, min(B, i + chunk)) for i in range(0, B, chunk)]
        from concurrent.futures import ThreadPoolExecutor

        main_threads = torch.get_num_threads()
        try:
            with ThreadPoolExecutor(max_workers=min(workers, len(slices)),
                                    initializer=torch.set_num_threads, initargs=(1,)) as pool:
                for f in [pool.submit(work, sl) for sl in slices]:
                    f.result()
        finally:
            if torch.get_num_threads() != main_threads:  # thread pools that are process-wide
                torch.set_num_threads(main_threads)

    def _stepper(self, sl: slice, B: int) -> "_Stepper | _KernelStepper":
        return _KernelStepper(self, sl, B) if self.backend == "kernel" else _Stepper(self, sl, B)


# bytes of solver state per CPU chunk (keeps a chunk's buffers in a core's cache)
_CHUNK_BYTES = 1 << 20


def _kernel_available(device: torch.device) -> bool:
    from .. import _ext

    if not _ext.available():
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device.type)
    return key is not None and torch._C._dispatch_has_kernel_for_dispatch_key("leanconv::wave_step_", key)


def _choose_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "kernel", "torch"):
        raise ValueError(f"backend must be 'auto', 'kernel' or 'torch', got {backend!r}")
    if backend == "torch":
        return backend
    # "auto" takes the compiled kernel on CPU only: the CUDA kernel compiles but has not yet run on a
    # GPU here (tests/wave/test_wave_step_op.py checks it when one is visible); request it explicitly.
    if _kernel_available(device) and (backend == "kernel" or device.type == "cpu"):
        return "kernel"
    if backend == "kernel":
        from .. import _ext

        why = "the compiled extension is not loaded" if not _ext.available() else f"it has no {device.type} kernel"
        raise ValueError(f"backend='kernel': leanconv's wave_step_ op is unavailable ({why}); use backend='torch'")
    return "torch"


class _KernelStepper:
    """Unpadded buffers stepped in place by the compiled ``wave_step_`` op."""

    def __init__(self, solver: WaveSolver, sl: slice, B: int) -> None:
        from ..ops.wave import wave_step_

        self._op = wave_step_
        H, W = solver.grid.shape
        kw = dict(dtype=solver.dtype, device=solver.device)
        self.prev = torch.empty(B, H, W, **kw)  # every use starts with load()
        self.cur = torch.empty(B, H, W, **kw)

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t if t.shape[0] == 1 else t[sl].contiguous()

        self.a_k, self.a_f = pick(solver._a_k), pick(solver._a_f)
        self.b = pick(solver._b) if solver.damped else None
        self.negd = pick(solver._negd) if solver.damped else None
        self.k = solver._k
        self.free = solver._free
        self.threads = solver._threads or torch.get_num_threads()

    def _call(self, steps: int, **kw: Any) -> None:
        n = self.threads
        if n > 1 and self.prev.device.type == "cpu" and torch.get_num_threads() != n:
            torch.set_num_threads(n)  # the op's own threads; back to one for the bookkeeping after
            try:
                self._op(self.prev, self.cur, self.a_k, self.k, steps, b=self.b, negd=self.negd, **kw)
            finally:
                torch.set_num_threads(1)
        else:
            self._op(self.prev, self.cur, self.a_k, self.k, steps, b=self.b, negd=self.negd, **kw)

    def load(self, u_prev: torch.Tensor, u_now: torch.Tensor) -> None:
        torch.mul(u_prev, self.free, out=self.prev)  # Dirichlet nodes are held at zero
        torch.mul(u_now, self.free, out=self.cur)

    def now(self) -> torch.Tensor:
        return self.cur

    def before(self) -> torch.Tensor:
        return self.prev

    def step(self, force: torch.Tensor | None) -> None:
        if force is None:
            return self.advance(1)
        self._call(1, force=force.contiguous(), a_f=self.a_f)
        self.prev, self.cur = self.cur, self.prev

    def advance(self, steps: int) -> None:
        self._call(steps)
        if steps % 2:
            self.prev, self.cur = self.cur, self.prev


class _Stepper:
    """Padded buffers and the in-place central-difference update for a slice of the batch."""

    def __init__(self, solver: WaveSolver, sl: slice, B: int) -> None:
        self.s = solver
        H, W = solver.grid.shape
        kw = dict(dtype=solver.dtype, device=solver.device)
        self.prev = torch.zeros(B, H + 2, W + 2, **kw)
        self.cur = torch.zeros(B, H + 2, W + 2, **kw)
        self.rows = torch.empty(B, H + 2, W, **kw)
        self.box = torch.empty(B, H, W, **kw)
        self.cy = torch.empty(B, H, W, **kw) if solver._rect else None

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t if t.shape[0] == 1 else t[sl]

        self.p, self.q, self.sc = pick(solver._p), pick(solver._q), pick(solver._s)
        self.negd = pick(solver._negd) if solver.damped else None
        self.a_f = pick(solver._a_f)
        self.free = solver._free

    def load(self, u_prev: torch.Tensor, u_now: torch.Tensor) -> None:
        # Dirichlet nodes are held at zero: the update's coefficients vanish there
        self.prev[:, 1:-1, 1:-1] = u_prev * self.free
        self.cur[:, 1:-1, 1:-1] = u_now * self.free
        _fill_ghosts(self.prev)
        _fill_ghosts(self.cur)

    def now(self) -> torch.Tensor:
        return self.cur[:, 1:-1, 1:-1]

    def before(self) -> torch.Tensor:
        return self.prev[:, 1:-1, 1:-1]

    def advance(self, steps: int) -> None:
        for _ in range(steps):
            self.step(None)

    def step(self, force: torch.Tensor | None) -> None:
        cur, rows, box = self.cur, self.rows, self.box
        torch.add(cur[:, :, :-2], cur[:, :, 2:], out=rows)
        rows.add_(cur[:, :, 1:-1])
        torch.add(rows[:, :-2], rows[:, 2:], out=box)
        box.add_(rows[:, 1:-1])
        nxt = self.prev[:, 1:-1, 1:-1]
        u = cur[:, 1:-1, 1:-1]
        if self.negd is None:
            nxt.neg_()
        else:
            nxt.mul_(self.negd)
        nxt.addcmul_(self.p, u)
        nxt.addcmul_(self.q, box)
        if self.sc is not None:
            cy = self.cy
            torch.add(cur[:, :-2, 1:-1], cur[:, 2:, 1:-1], out=cy)
            cy.add_(u).sub_(rows[:, 1:-1])
            nxt.addcmul_(self.sc, cy)
        if force is not None:
            nxt.addcmul_(self.a_f, force)
        _fill_ghosts(self.prev)
        self.prev, self.cur = self.cur, self.prev


def _check_count(v: Any, name: str, minimum: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
