"""Shared pieces of the depthwise tests: the PyTorch reference, layouts, tolerances, the CUDA cases.

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


# (N, C, spatial, kernel, stride, padding, dilation); padding as the ops take it
# (int, one per axis, or (before, after) pairs per axis).  Comments name the
# CUDA path each case takes (see csrc/cuda/depthwise_cuda.cpp);
# tests/test_depthwise_cuda.py runs them on a GPU and through the CPU replay of
# the CUDA tiling.
CUDA_CASES = [
    # common: stride 1, 'same' padding -> tiled forward / grad_input / grad_weight
    (2, 8, (56, 56), (3, 3), 1, 1, 1),
    (2, 8, (56, 56), (7, 7), 1, 3, 1),
    (2, 4, (28, 28), (5, 5), 1, 2, 1),
    (2, 4, (32, 32), (13, 13), 1, 6, 1),
    (1, 4, (32, 32), (31, 31), 1, 15, 1),
    (2, 3, (16, 16), (31, 31), 1, 15, 1),
    (1, 3, (40, 36), (51, 5), 1, (25, 2), 1),
    (1, 3, (36, 40), (5, 51), 1, (2, 25), 1),
    (2, 3, (20, 45), (1, 31), 1, (0, 15), 1),
    (2, 3, (45, 20), (31, 1), 1, (15, 0), 1),
    (2, 3, (23, 29), (9, 11), 1, (4, 5), 1),  # kernel widths without a specialization
    (1, 2, (70, 130), (5, 7), 1, (2, 3), 1),  # several tiles along both axes
    (1, 2, (20, 20), (63, 63), 1, 31, 1),  # largest kernel
    (2, 2, (10, 10), (3, 3), 1, 5, 1),  # padding > kernel: flipped grad_input crops
    (2, 2, (12, 13), (3, 4), 1, (0, 2, 1, 2), 1),  # asymmetric padding, even kernel
    (1, 2, (1, 1), (1, 1), 1, 0, 1),  # 1-pixel plane
    (2, 3, (1, 40), (1, 7), 1, (0, 0, 3, 3), 1),  # 1-row planes
    # stride / dilation along H only -> still the tiled kernels
    (2, 3, (33, 35), (5, 3), 1, (4, 1), (2, 1)),
    (2, 3, (25, 27), (3, 5), (2, 1), (1, 2), (3, 1)),
    # stride / dilation along W -> generic kernels
    (3, 5, (17, 19), (3, 3), 2, 1, 1),
    (2, 3, (30, 31), (7, 5), (3, 2), (3, 2), 1),
    (2, 3, (33, 35), (3, 3), 1, 2, 2),
    (1, 2, (24, 26), (3, 3), 3, (0, 2, 1, 0), 3),
    # 3-D
    (2, 3, (7, 9, 11), (3, 3, 3), 1, 1, 1),
    (1, 2, (8, 10, 12), (3, 5, 7), (2, 1, 1), (1, 2, 3), (1, 2, 1)),
    (1, 2, (9, 9, 9), (7, 1, 1), 1, (3, 0, 0), 1),  # one-way k x 1 x 1
    (1, 2, (6, 7, 8), (2, 3, 3), (1, 2, 2), (0, 1, 1, 0, 1, 1), (2, 1, 1)),
    (1, 2, (5, 12, 14), (3, 3, 3), 2, 1, 2),
]


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
