"""Drop-in depthwise convolution modules running leanconv's kernels."""
from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..ops._geometry import pad_last_first, padding_pairs, same_padding
from ..ops.depthwise import depthwise_conv
from ._checks import check_ints
from ._select import check_backend, pick

__all__ = ["DepthwiseConv2d", "DepthwiseConv3d"]

# symbolic tracing (torch.fx) records the op as one call instead of tracing through its checks
torch.fx.wrap("depthwise_conv")


class _DepthwiseMixin:
    """Shared constructor, checks and forward of DepthwiseConv2d/3d (subclasses of nn.ConvNd)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        kernel_size: int | tuple[int, ...] = 3,
        stride: int | tuple[int, ...] = 1,
        padding: str | int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int | None = None,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        *,
        backend: str | None = None,
    ) -> None:
        """nn.ConvNd's arguments (one int or N per spatial axis), ``out_channels`` and ``groups``
        defaulting to ``in_channels``, and keyword ``backend``."""
        out_channels = in_channels if out_channels is None else out_channels
        groups = in_channels if groups is None else groups
        super().__init__(  # nn.Conv2d / nn.Conv3d, next in the subclass's MRO
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )
        self._check_depthwise()
        self.backend = check_backend(backend, type(self).__name__)

    def _check_depthwise(self) -> None:
        name = type(self).__name__
        if self.out_channels != self.in_channels:
            raise ValueError(
                f"{name}: out_channels must equal in_channels ({self.in_channels}) for a depthwise "
                f"convolution, got {self.out_channels}"
            )
        if self.groups != self.in_channels:
            raise ValueError(
                f"{name}: groups must equal in_channels ({self.in_channels}), got {self.groups}"
            )
        # nn.ConvNd stores these as given; check them now (numpy integers become ints), not at forward time
        n = len(self.kernel_size)
        for arg in ("kernel_size", "stride", "dilation"):
            setattr(self, arg, check_ints(getattr(self, arg), n, arg, name))
        if not isinstance(self.padding, str):
            self.padding = check_ints(self.padding, n, "padding", name, minimum=0)

    def _pairs(self) -> list[int]:
        n = len(self.kernel_size)
        if isinstance(self.padding, str):
            if self.padding == "valid":
                return [0] * (2 * n)
            return same_padding(self.kernel_size, self.dilation)  # "same"
        return padding_pairs(list(self.padding), n)

    def _leanconv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        pairs = self._pairs()
        if self.padding_mode != "zeros":
            input = F.pad(input, pad_last_first(pairs), mode=self.padding_mode)
            pairs = [0] * len(pairs)
        return depthwise_conv(input, weight, bias, list(self.stride), pairs, list(self.dilation))

    def extra_repr(self) -> str:
        s = super().extra_repr()
        backend = getattr(self, "backend", None)
        return s if backend is None else f"{s}, backend={backend!r}"

    def _table_backend(self) -> str:
        """The built-in choice (used while torch.compile / torch.fx trace), from the
        benchmarks: PyTorch's kernel for 3x3 (and smaller) kernels, and on CUDA for half
        types up to 7 taps per axis; leanconv's elsewhere."""
        k = max(self.kernel_size)
        if self.weight.device.type == "cuda" and self.weight.dtype in (torch.float16, torch.bfloat16):
            return "torch" if k <= 7 else "leanconv"
        return "torch" if k <= 3 else "leanconv"

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        backend = pick(type(self).__name__, getattr(self, "backend", None), input, self.kernel_size, self.stride,
                       self.padding, self.dilation, (weight, bias),
                       {"leanconv": self._leanconv_forward, "torch": self._conv_forward}, self._table_backend)
        if backend == "torch":
            return self._conv_forward(input, weight, bias)
        return self._leanconv_forward(input, weight, bias)


class DepthwiseConv2d(_DepthwiseMixin, nn.Conv2d):
    """Depthwise 2-D convolution on leanconv's kernels; drop-in for
    ``nn.Conv2d(C, C, kernel_size, groups=C)``.

    Takes nn.Conv2d's arguments and has the same parameters and ``state_dict``
    keys (``weight`` of shape (C, 1, kH, kW), ``bias`` of shape (C,)), so a
    checkpoint of one loads into the other.  ``out_channels`` and ``groups``
    default to ``in_channels`` and must equal it.  Kernels may be rectangular
    (e.g. 51x5); padding may be an int, a pair, ``"same"`` or ``"valid"``.

    ``backend``: ``"leanconv"`` (leanconv's kernels), ``"torch"`` (PyTorch's
    convolution, as ``nn.Conv2d``), ``"auto"`` (for each new call signature the
    faster of the two, measured once and cached: see :mod:`leanconv.nn._select`)
    or None (default: ``$LEANCONV_BACKEND``, else ``"auto"``).  Both are exact;
    the results differ only by floating-point rounding.
    """


class DepthwiseConv3d(_DepthwiseMixin, nn.Conv3d):
    """Depthwise 3-D convolution on leanconv's kernels; drop-in for
    ``nn.Conv3d(C, C, kernel_size, groups=C)`` (same arguments and ``state_dict``;
    ``backend`` as in :class:`DepthwiseConv2d`)."""
