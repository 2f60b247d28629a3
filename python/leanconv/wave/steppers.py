"""Steppers of the wave solver: the compiled fused kernel and plain torch ops.

A stepper owns the state buffers of a slice of the batch: ``load(u_prev,
u_now)``, ``advance(steps)`` (source-free), ``step(force)`` (one step with a
load vector), ``now()`` / ``before()`` (views of the current and previous
state).  Both read the same :class:`~leanconv.wave.assembly.Coefficients`.
"""
from __future__ import annotations

from typing import Any

import torch

from .assembly import Coefficients
from .threads import ThreadPolicy

__all__ = ["KernelStepper", "TorchStepper", "FD4KernelStepper", "PaddedStepper", "choose_backend", "kernel_available",
           "CHUNK_BYTES", "BACKENDS"]

BACKENDS = ("auto", "kernel", "torch")
# bytes of solver state per CPU chunk of the torch-ops stepper (keeps a chunk's buffers in a core's cache)
CHUNK_BYTES = 1 << 20


# the compiled op of each scheme
OPS = {"q1": "wave_step_", "fd4": "wave_fd4_step_"}


def kernel_available(device: torch.device, scheme: str = "q1") -> bool:
    """True when leanconv's compiled stepping op of ``scheme`` has a kernel for ``device``'s type."""
    from .. import _ext

    if not _ext.available():
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device.type)
    name = "leanconv::" + OPS[scheme]
    return (key is not None and torch._C._dispatch_has_kernel_for_dispatch_key(name, key))


def choose_backend(backend: str, device: torch.device, scheme: str = "q1") -> str:
    """``'kernel'`` or ``'torch'`` for a solver's ``backend`` argument on ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto', 'kernel' or 'torch', got {backend!r}")
    if backend == "torch":
        return backend
    # "auto" takes the compiled kernel on CPU only: the CUDA kernel has passed its test on a GPU
    # once but was never benchmarked against the torch path (issue 16); request it explicitly.
    try:
        available = kernel_available(device, scheme)
    except RuntimeError:  # an op this build does not register
        available = False
    if available and (backend == "kernel" or device.type == "cpu"):
        return "kernel"
    if backend == "kernel":
        from .. import _ext

        why = "the compiled extension is not loaded" if not _ext.available() else f"it has no {device.type} kernel"
        raise ValueError(f"backend='kernel': leanconv's {OPS[scheme]} op is unavailable ({why}); use backend='torch'")
    return "torch"


def _pick(t: torch.Tensor | None, sl: slice, contiguous: bool = False) -> torch.Tensor | None:
    """The slice ``sl`` of a per-model coefficient (one shared by all models as it is)."""
    if t is None or t.shape[0] == 1:
        return t
    return t[sl].contiguous() if contiguous else t[sl]


def fill_ghosts(p: torch.Tensor) -> None:
    """Refresh the mirrored ghost layer of a padded buffer ``(B, H+2, W+2)`` in place."""
    p[:, 0, 1:-1].copy_(p[:, 2, 1:-1])
    p[:, -1, 1:-1].copy_(p[:, -3, 1:-1])
    p[:, :, 0].copy_(p[:, :, 2])
    p[:, :, -1].copy_(p[:, :, -3])


class _InPlaceStepper:
    """Unpadded buffers stepped in place by the compiled op of ``scheme`` (the two swap roles after
    every step); :meth:`_coefficients` gives the op's arguments between the two buffers and ``steps``."""

    scheme: str

    def __init__(self, coef: Any, threads: ThreadPolicy, shape: tuple[int, int], dtype: torch.dtype,
                 device: torch.device, sl: slice, B: int) -> None:
        from ..ops import wave as wave_ops

        kw = dict(dtype=dtype, device=device)
        self.prev = torch.empty(B, *shape, **kw)  # every use starts with load()
        self.cur = torch.empty(B, *shape, **kw)
        self.free = coef.free
        self.threads = threads
        self._op = getattr(wave_ops, OPS[self.scheme])
        self._operands = self._coefficients(coef, sl)
        self.a_f = _pick(coef.a_f, sl, True)
        self.b = _pick(coef.b, sl, True) if coef.damped else None
        self.negd = _pick(coef.negd, sl, True) if coef.damped else None

    @staticmethod
    def _coefficients(coef: Any, sl: slice) -> tuple:
        raise NotImplementedError

    def _call(self, steps: int, **kw: Any) -> None:
        """``steps`` steps of the op (``force=`` and ``a_f=`` with one step)."""
        with self.threads.stepping():  # the op's own threads; back to one for the bookkeeping after
            self._op(self.prev, self.cur, *self._operands, steps, b=self.b, negd=self.negd, **kw)

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


class KernelStepper(_InPlaceStepper):
    """The Q1 scheme stepped by the compiled ``wave_step_`` op."""

    scheme = "q1"

    @staticmethod
    def _coefficients(coef: Coefficients, sl: slice) -> tuple:
        return _pick(coef.a_k, sl, True), coef.kernel_stencil


class PaddedStepper:
    """Buffers padded by ``halo`` mirrored ghost layers, stepped by torch ops one step at a time
    (any device); a subclass writes :meth:`step` and refreshes its ghosts."""

    halo: int

    def __init__(self, coef: Any, shape: tuple[int, int], dtype: torch.dtype, device: torch.device, B: int) -> None:
        H, W = shape
        self.prev = torch.zeros(B, H + 2 * self.halo, W + 2 * self.halo, dtype=dtype, device=device)
        self.cur = torch.zeros_like(self.prev)
        self.free = coef.free

    def _interior(self, padded: torch.Tensor) -> torch.Tensor:
        h = self.halo
        return padded[:, h:-h, h:-h]

    def load(self, u_prev: torch.Tensor, u_now: torch.Tensor) -> None:
        # Dirichlet nodes are held at zero: the update's coefficients vanish there
        self._interior(self.prev)[...] = u_prev * self.free
        self._interior(self.cur)[...] = u_now * self.free

    def now(self) -> torch.Tensor:
        return self._interior(self.cur)

    def before(self) -> torch.Tensor:
        return self._interior(self.prev)

    def advance(self, steps: int) -> None:
        for _ in range(steps):
            self.step(None)

    def step(self, force: torch.Tensor | None) -> None:
        raise NotImplementedError


class TorchStepper(PaddedStepper):
    """Padded buffers and the in-place central-difference update for a slice of the batch."""

    halo = 1

    def __init__(self, coef: Coefficients, threads: ThreadPolicy, shape: tuple[int, int], dtype: torch.dtype,
                 device: torch.device, sl: slice, B: int) -> None:
        super().__init__(coef, shape, dtype, device, B)
        H, W = shape
        kw = dict(dtype=dtype, device=device)
        self.rows = torch.empty(B, H + 2, W, **kw)
        self.box = torch.empty(B, H, W, **kw)
        self.cy = torch.empty(B, H, W, **kw) if coef.rect else None
        self.p, self.q, self.sc = _pick(coef.p, sl), _pick(coef.q, sl), _pick(coef.s, sl)
        self.negd = _pick(coef.negd, sl) if coef.damped else None
        self.a_f = _pick(coef.a_f, sl)

    def load(self, u_prev: torch.Tensor, u_now: torch.Tensor) -> None:
        super().load(u_prev, u_now)
        fill_ghosts(self.prev)
        fill_ghosts(self.cur)

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
        fill_ghosts(self.prev)
        self.prev, self.cur = self.cur, self.prev


class FD4KernelStepper(_InPlaceStepper):
    """The fd4 scheme stepped by the compiled ``wave_fd4_step_`` op."""

    scheme = "fd4"

    @staticmethod
    def _coefficients(coef: Any, sl: slice) -> tuple:
        return _pick(coef.cc, sl, True), coef.kernel_constants(), coef.signs
