"""Choice of depthwise convolution implementation for blocks and models.

Blocks and models take ``backend="leanconv"`` (depthwise convolutions run
leanconv's kernels through :class:`~leanconv.nn.DepthwiseConv2d`) or
``backend="torch"`` (the same layers as plain ``nn.Conv2d(groups=C)``), so the
same network can be built on either and compared.  Both have identical
parameters and ``state_dict`` keys.
"""
from __future__ import annotations

from torch import nn

from ._checks import check_backend
from .depthwise import DepthwiseConv2d


def backend_of(conv: nn.Module) -> str:
    """``"leanconv"`` if ``conv`` runs leanconv's kernels (a DepthwiseConv2d), else ``"torch"``.

    Re-parameterization builds its merged convolution on the backend of the
    convolutions it replaces, so a block whose convs :func:`leanconv.convert`
    swapped keeps leanconv's kernels after merging."""
    return "leanconv" if isinstance(conv, DepthwiseConv2d) else "torch"


def depthwise_conv2d(
    channels: int,
    kernel_size: int | tuple[int, int],
    *,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    stride: int | tuple[int, int] = 1,
    bias: bool = True,
    backend: str = "leanconv",
    device=None,
    dtype=None,
) -> nn.Conv2d:
    """A depthwise 2-D convolution module on the chosen backend."""
    check_backend(backend, "depthwise_conv2d")
    cls = DepthwiseConv2d if backend == "leanconv" else nn.Conv2d
    return cls(
        channels, channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
        groups=channels, bias=bias, device=device, dtype=dtype,
    )
