"""The batched explicit finite-element solver of the 2-D scalar wave equation: a thin front.

:class:`WaveSolver` checks its arguments, assembles the operators once
(:mod:`.assembly`: lumped Q1 mass, stiffness stencil, boundary damping, the
per-node update coefficients) and steps states with a stepper (:mod:`.steppers`:
leanconv's fused ``wave_step_`` kernel or plain torch ops), under one thread
policy (:mod:`.threads`).  The scheme itself is described in :mod:`.assembly`.

(About 500 lines: one class, the solver's whole public API - argument checks,
operators, energy, and the stepping entry points ``first_step``, ``step``,
``march``, ``run``, ``snapshots`` and ``advance`` with their docstrings.)
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from .assembly import Coefficients, apply_stencil, assemble, point_load
from .fd4 import FD4Coefficients, FD4TorchStepper, assemble_fd4, stable_dt_fd4
from .grid import Boundary, Grid, Sponge, stable_dt
from .steppers import CHUNK_BYTES, FD4KernelStepper, KernelStepper, TorchStepper, choose_backend, kernel_available
from .threads import ThreadPolicy

__all__ = ["WaveSolver", "SCHEMES"]

SCHEMES = ("q1", "fd4")

Source = Callable[[float], "torch.Tensor | None"]

# (the names other modules imported before the solver was split)
_choose_backend, _kernel_available = choose_backend, kernel_available


def _one_thread(method: Callable) -> Callable:
    """Run a CPU solver method's bookkeeping torch ops on one thread (see :mod:`.threads`)."""

    @functools.wraps(method)
    def wrapper(self: "WaveSolver", *args: Any, **kwargs: Any) -> Any:
        with self._threads.bookkeeping():
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
        scheme: ``'q1'`` (default: bilinear elements, lumped mass, central
            differences; second order) or ``'fd4'`` (fourth-order finite
            differences in space and time, :mod:`leanconv.wave.fd4`; the same
            sides and sponge, stable up to about 1.06 h / c_max).
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
        scheme: str = "q1",
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
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        self.scheme = scheme
        self.sponge = sponge
        self.device, self.dtype = device, dtype
        self.c_max = float(c.max())
        hx, hy = self.grid.hx, self.grid.hy
        self.dt_max = (stable_dt if scheme == "q1" else stable_dt_fd4)(hx, hy, self.c_max)
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
                f"(Courant number {dt / self.dt_max:.4g} > 1; scheme {scheme!r}, c_max={self.c_max:.6g}, "
                f"h=({hx:.6g}, {hy:.6g})); use a smaller dt or courant <= 1"
            )
        self.dt = dt
        self.courant = dt / self.dt_max
        self.backend = choose_backend(backend, self.device, scheme)
        self._threads = ThreadPolicy(self.device)
        self._c = c
        with self._threads.bookkeeping():
            if scheme == "q1":
                self._coef: Coefficients | FD4Coefficients = assemble(c, self.grid, self.boundary, sponge,
                                                                      self.c_max, dt, dtype)
            else:
                self._coef = assemble_fd4(c, self.grid, self.boundary, dt, dtype, sponge, self.c_max)

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
        return self._coef.damped

    @property
    def coefficients(self) -> Coefficients:
        """The assembled operators and update coefficients (read-only)."""
        return self._coef

    @property
    def mass(self) -> torch.Tensor:
        """Lumped mass ``M_ii = int phi_i / c^2`` at the nodes, float64 ``(Bc, H, W)``."""
        return self._q1("mass").mass

    @property
    def damping(self) -> torch.Tensor:
        """Lumped Engquist-Majda damping of the absorbing sides, float64 ``(Bc, H, W)``."""
        return self._q1("damping").damping

    @property
    def sigma(self) -> torch.Tensor:
        """Sponge damping rate at the nodes, float64 ``(H, W)`` (zero without a sponge)."""
        return self._q1("sigma").sigma

    @property
    def dirichlet(self) -> torch.Tensor:
        """Nodes held at zero (bool ``(H, W)``)."""
        return self._coef.dirichlet

    def _q1(self, what: str) -> Coefficients:
        if self.scheme != "q1":
            raise ValueError(f"{what} is defined for scheme='q1' (the finite-element operators); this solver uses "
                             f"scheme={self.scheme!r}")
        return self._coef

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
            "scheme": self.scheme,
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
        coef = self._q1("the stiffness stencil")
        return apply_stencil(u, coef.stencil, coef.rect)

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
        if self.scheme == "fd4":
            if interval != 1:
                raise ValueError("energy: scheme='fd4' conserves its energy for consecutive steps; interval must be 1")
            from .fd4 import energy_fd4

            a = self._state(u_prev, "u_prev").to(torch.float64)
            return energy_fd4(self._coef, a, self._state(u_now, "u_now").to(torch.float64))
        free = (~self._coef.dirichlet).to(torch.float64)
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
        return point_load(self._c, self.grid, self._coef.dirichlet, points).to(self.dtype)

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

        if self.scheme == "fd4":
            return self._first_fd4(u0, v0, f0, pick)
        coef = self._coef
        mass = pick(coef.mass)
        u = u0.to(torch.float64)
        acc = -self._apply_stencil(u) / pick(coef.mass_full)
        vel = torch.zeros_like(u) if v0 is None else v0.to(torch.float64)
        if v0 is not None:
            acc = acc - (pick(coef.damping) / mass + coef.sigma) * vel
        if f0 is not None:
            acc = acc + f0.to(torch.float64) / mass
        u1 = u + self.dt * vel + 0.5 * self.dt * self.dt * acc
        return (u1 * (~coef.dirichlet)).to(self.dtype)

    def _first_fd4(self, u0: torch.Tensor, v0: torch.Tensor | None, f0: torch.Tensor | None, pick) -> torch.Tensor:
        """The fourth-order Taylor step of :mod:`.fd4` (in float64)."""
        from dataclasses import replace

        from .fd4 import apply_l

        coef = self._coef.in_float64()
        c64 = replace(coef, cc=pick(coef.cc), a_f=pick(coef.a_f))
        dt = self.dt
        u = u0.to(torch.float64)
        lu = apply_l(u, c64)
        u1 = u + 0.5 * dt * dt * lu + dt**4 / 24.0 * apply_l(lu, c64)
        if v0 is not None:
            v = v0.to(torch.float64)
            u1 = u1 + dt * v + dt**3 / 6.0 * apply_l(v, c64)
            if coef.rate is not None:  # the damping's second-order term, as in the damped step
                u1 = u1 - 0.5 * dt * dt * pick(coef.rate) * v
        if f0 is not None:
            a_f = c64.a_f if coef.rate is None else c64.a_f * (1.0 + 0.5 * dt * pick(coef.rate))
            u1 = u1 + 0.5 * a_f * f0.to(torch.float64)
        return (u1 * c64.free).to(self.dtype)

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
        u0 = u0.expand(B, *self.grid.shape) * self._coef.free
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
                out[sl, j] = (2 * stepper.now() - prev) * self._coef.free
                prev, now = now, out[sl, j]

        self._map_chunks(B, chunk, continue_chunk)
        return out

    def _map_chunks(self, B: int, chunk: int | None, work: Callable[[slice], None]) -> None:
        """Run ``work`` on slices ("chunks") of the batch: one after another with the compiled
        kernel or on GPU (default: one chunk, the whole batch), else on the thread policy's
        Python workers (:mod:`.threads`), chunks of about 1 MB of state that stay in cache.
        Chunks are independent trajectories: the result does not depend on the chunking."""
        H, W = self.grid.shape
        if self.device.type != "cpu" or self.backend == "kernel":
            # the compiled op threads over the batch itself (one item per thread, all steps in cache)
            chunk = B if chunk is None else chunk
            _check_count(chunk, "chunk", minimum=1)
            for i in range(0, B, chunk):
                work(slice(i, min(B, i + chunk)))
            return
        workers = max(1, self._threads.threads)
        if chunk is None:
            per = (H + 2) * (W + 2) * (torch.finfo(self.dtype).bits // 8) * 6
            n = -(-B * per // CHUNK_BYTES)
            n = min(B, -(-n // workers) * workers)
            chunk = -(-B // n)
        _check_count(chunk, "chunk", minimum=1)
        self._threads.run_chunks(work, [slice(i, min(B, i + chunk)) for i in range(0, B, chunk)])

    def _stepper(self, sl: slice, B: int) -> KernelStepper | TorchStepper | FD4TorchStepper:
        if self.scheme == "fd4":
            cls = FD4KernelStepper if self.backend == "kernel" else FD4TorchStepper
        else:
            cls = KernelStepper if self.backend == "kernel" else TorchStepper
        return cls(self._coef, self._threads, self.grid.shape, self.dtype, self.device, sl, B)


def _check_count(v: Any, name: str, minimum: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
