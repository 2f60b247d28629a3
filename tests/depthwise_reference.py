"""Shared pieces of the depthwise tests: the PyTorch reference, layouts, tolerances.

The reference is ``F.conv2d``/``F.conv3d`` with ``groups=C`` (asymmetric
padding through ``F.pad``), evaluated in float64 on the CPU so that it is the
most accurate number in every comparison.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# assert_close tolerance relative to the largest magnitude of the expected tensor
REL_TOL = {
    torch.float64: 1e-10,
    torch.float32: 5e-5,
    torch.bfloat16: 2e-2,
    torch.float16: 4e-3,
}

# "strided": a view with W stride 2; "hw_swapped": H and W swapped in memory
LAYOUTS = ["contiguous", "channels_last", "strided", "hw_swapped"]


def pad_pairs(padding, dims: int) -> list[tuple[int, int]]:
    """(before, after) per spatial axis from an int, one int per axis or 2*dims ints."""
    if isinstance(padding, int):
        padding = [padding]
    padding = list(padding)
    if len(padding) == 1:
        padding = padding * dims
    if len(padding) == dims:
        return [(p, p) for p in padding]
    assert len(padding) == 2 * dims
    return [(padding[2 * i], padding[2 * i + 1]) for i in range(dims)]


def reference(x, w, b=None, stride=1, padding=0, dilation=1):
    """Depthwise convolution by F.conv2d/F.conv3d(groups=C) in float64 on the CPU."""
    dims = x.dim() - 2
    x, w = x.double().cpu(), w.double().cpu()
    b = None if b is None else b.double().cpu()
    # F.pad takes the last axis first.
    pad = [p for lo_hi in reversed(pad_pairs(padding, dims)) for p in lo_hi]
    conv = F.conv2d if dims == 2 else F.conv3d
    return conv(F.pad(x, pad), w, b, stride, 0, dilation, groups=x.shape[1])


def reference_with_grads(x, w, b, grad_out, stride=1, padding=0, dilation=1):
    """Reference output and (grad_input, grad_weight, grad_bias) for ``grad_out``."""
    xr = x.detach().double().cpu().requires_grad_()
    wr = w.detach().double().cpu().requires_grad_()
    br = None if b is None else b.detach().double().cpu().requires_grad_()
    y = reference(xr, wr, br, stride, padding, dilation)
    leaves = [xr, wr] + ([br] if br is not None else [])
    grads = torch.autograd.grad(y, leaves, grad_out.detach().double().cpu())
    return y.detach(), list(grads) + ([None] if br is None else [])


def with_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """``t`` (differentiably) re-laid out: contiguous, channels_last, or a strided view."""
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        return t.contiguous(memory_format=fmt)
    if layout == "strided":
        # every other element of a twice-as-wide tensor
        return torch.stack([t, torch.zeros_like(t)], dim=-1).flatten(-2)[..., ::2]
    if layout == "hw_swapped":
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    raise ValueError(layout)


def assert_close_to(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """``actual`` equals the float64 ``expected`` within the tolerance of ``dtype``."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = expected.abs().max().item() if expected.numel() else 1.0
    tol = REL_TOL[dtype] * max(scale, 1e-3)
    torch.testing.assert_close(
        actual.detach().double().cpu(), expected, rtol=REL_TOL[dtype], atol=tol, msg=lambda m: f"{what}: {m}"
    )
