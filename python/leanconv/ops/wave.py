"""The in-place wave-step op (``torch.ops.leanconv.wave_step_``): typed wrapper and fake kernel.

It is the compiled fast path of :class:`leanconv.wave.WaveSolver`; the
arithmetic is documented in ``csrc/ops/wave_params.h``.  It has no autograd
(the solver is not differentiated).
"""
from __future__ import annotations

import torch

__all__ = ["wave_step_", "wave_fd4_step_"]


def wave_step_(
    prev: torch.Tensor,
    now: torch.Tensor,
    a_k: torch.Tensor,
    k: tuple[float, float, float],
    steps: int = 1,
    *,
    b: torch.Tensor | None = None,
    negd: torch.Tensor | None = None,
    force: torch.Tensor | None = None,
    a_f: torch.Tensor | None = None,
) -> torch.Tensor:
    """Advance ``steps`` central-difference steps in place and return the buffer holding the newest field.

    ``prev``/``now``: ``(B, H, W)`` states at consecutive steps (both are
    overwritten: after each step the two swap roles).  ``a_k`` (and ``b``,
    ``negd``, ``force``, ``a_f``): ``(1 or B, H, W)`` per-node coefficients;
    ``k = (k0, k1, k2)`` the stencil constants.  ``force`` needs ``steps == 1``.
    Returns ``prev`` when ``steps`` is odd, ``now`` when it is even.
    """
    from .. import _ext

    _ext.load()
    k0, k1, k2 = (float(v) for v in k)
    torch.ops.leanconv.wave_step_(prev, now, a_k, b, negd, force, a_f, k0, k1, k2, int(steps))
    return prev if steps % 2 else now


def wave_fd4_step_(
    prev: torch.Tensor,
    now: torch.Tensor,
    cc: torch.Tensor,
    constants: tuple[float, float, float, float],
    signs: tuple[float, float, float, float],
    steps: int = 1,
    *,
    force: torch.Tensor | None = None,
    a_f: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    negd: torch.Tensor | None = None,
) -> torch.Tensor:
    """Advance ``steps`` steps of the fourth-order scheme (:mod:`leanconv.wave.fd4`) in place.

    ``prev``/``now``: ``(B, H, W)`` states at consecutive steps (both overwritten,
    swapping roles after each step); ``cc``: ``c^2`` at the nodes ``(1 or B, H, W)``;
    ``constants = (wx, wy, s2, s4)`` = ``(1/(12 hx^2), 1/(12 hy^2), dt^2, dt^4/12)``;
    ``signs``: the mirror images' signs on the (left, right, bottom, top) sides
    (+1 reflecting, -1 Dirichlet).  ``force`` (with ``a_f``) needs ``steps == 1``.
    ``b`` with ``negd`` (``(1 or B, H, W)``) make the damped step of absorbing sides
    and sponges: ``next = b (u + (dt^2 v + dt^4/12 L v) / 2) + negd prev``.
    Returns the buffer holding the newest field (``prev`` when ``steps`` is odd).
    """
    from .. import _ext

    _ext.load()
    torch.ops.leanconv.wave_fd4_step_(prev, now, cc, [float(v) for v in constants], [float(v) for v in signs],
                                      int(steps), force, a_f, b, negd)
    return prev if steps % 2 else now


def _register() -> None:
    @torch.library.register_fake("leanconv::wave_step_")
    def _fake(prev, now, a_k, b, negd, force, a_f, k0, k1, k2, steps):
        return None

    @torch.library.register_fake("leanconv::wave_fd4_step_")
    def _fake_fd4(prev, now, cc, constants, signs, steps, force=None, a_f=None, b=None, negd=None):
        return None
