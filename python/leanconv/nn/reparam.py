"""Structurally re-parameterizable large-kernel depthwise blocks.

During training these blocks sum several parallel depthwise convolutions, each
followed by BatchNorm.  Since every branch is linear in eval mode (BatchNorm
then uses its running statistics), the sum equals ONE depthwise convolution
with a bias: :meth:`reparameterize` folds each BatchNorm into its convolution,
expands a dilated kernel of size k and dilation r to its dense equivalent of
size r(k-1)+1, pads every kernel to the large size and adds them up.

- :class:`DilatedReparamBlock` - UniRepLKNet's block: a K x K kernel plus
  dilated small kernels (branch table in :data:`DILATED_BRANCHES`).
- :class:`SLaKBlock` - SLaK's decomposition: K x s and s x K rectangular
  kernels plus an s x s one (e.g. 51x5, 5x51, 5x5).

:func:`reparameterize_model` merges every such block of a model.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ._backend import backend_of, depthwise_conv2d
from ._checks import check_backend, check_odd, check_positive_int

__all__ = [
    "DILATED_BRANCHES",
    "DilatedReparamBlock",
    "SLaKBlock",
    "reparameterize_model",
    "fuse_conv_bn",
    "dilate_kernel",
]

#: (kernel, dilation) of the dilated branches that accompany a K x K kernel in
#: UniRepLKNet, by K.  The first entry is the non-dilated small kernel.
DILATED_BRANCHES: dict[int, tuple[tuple[int, int], ...]] = {
    17: ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
    15: ((5, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    7: ((5, 1), (3, 2), (3, 3)),
    5: ((3, 1), (3, 2)),
}


def fuse_conv_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.modules.batchnorm._BatchNorm
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``bn(conv(x))`` as one convolution (eval-mode BatchNorm).

    Computed in float64; the results keep ``weight``'s dtype.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"cannot fold {bn}: it has no running statistics (track_running_stats=False)")
    f64 = lambda t: None if t is None else t.detach().double()  # noqa: E731
    w, b = fuse_conv_bn_weights(
        f64(weight), f64(bias), f64(bn.running_mean), f64(bn.running_var), bn.eps, f64(bn.weight), f64(bn.bias)
    )
    return w.detach().to(weight.dtype), b.detach().to(weight.dtype)


def dilate_kernel(weight: torch.Tensor, dilation: Sequence[int]) -> torch.Tensor:
    """Dense kernel equal to ``weight`` applied with ``dilation``: size r(k-1)+1 per axis,
    the taps at multiples of r and zeros between them."""
    kh, kw = weight.shape[-2:]
    dh, dw = dilation
    if (dh, dw) == (1, 1):
        return weight
    out = weight.new_zeros(*weight.shape[:-2], dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    out[..., ::dh, ::dw] = weight
    return out


def _pad_centered(weight: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    kh, kw = weight.shape[-2:]
    ph, pw = (size[0] - kh) // 2, (size[1] - kw) // 2
    return F.pad(weight, (pw, pw, ph, ph))


class _ParallelDepthwiseBranches(nn.Module):
    """Sum of parallel depthwise conv + BatchNorm branches, all centred and
    stride 1, whose dense equivalents fit in ``kernel_size``."""

    def __init__(
        self,
        channels: int,
        kernel_size: tuple[int, int],
        branches: Sequence[tuple[tuple[int, int], tuple[int, int]]],
        backend: str,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int(channels, "channels", owner)
        self.kernel_size = tuple(kernel_size)
        self.backend = check_backend(backend, owner)
        self.branch_specs = tuple((tuple(k), tuple(d)) for k, d in branches)
        for (kh, kw), (dh, dw) in self.branch_specs:
            eq = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
            if eq[0] > self.kernel_size[0] or eq[1] > self.kernel_size[1]:
                raise ValueError(
                    f"{owner}: branch kernel {(kh, kw)} with dilation {(dh, dw)} spans {eq}, "
                    f"larger than kernel_size {self.kernel_size}"
                )
        self.convs = nn.ModuleList(
            depthwise_conv2d(
                channels, k, padding=(d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2), dilation=d,
                bias=False, backend=backend, device=device, dtype=dtype,
            )
            for k, d in self.branch_specs
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(channels, device=device, dtype=dtype) for _ in self.branch_specs)
        self.register_module("merged", None)

    @property
    def is_reparameterized(self) -> bool:
        return self.merged is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged is not None:
            return self.merged(x)
        out = None
        for conv, bn in zip(self.convs, self.bns):
            y = bn(conv(x))
            out = y if out is None else out + y
        return out

    @torch.no_grad()
    def equivalent_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (C, 1, Kh, Kw), bias (C,)) of the single convolution equal to
        this block in eval mode."""
        if self.merged is not None:
            return self.merged.weight.detach().clone(), self.merged.bias.detach().clone()
        weight = bias = None
        for conv, bn in zip(self.convs, self.bns):
            w, b = fuse_conv_bn(conv.weight, conv.bias, bn)
            w = _pad_centered(dilate_kernel(w.double(), conv.dilation), self.kernel_size)
            weight = w if weight is None else weight + w
            bias = b.double() if bias is None else bias + b.double()
        dtype = self.convs[0].weight.dtype
        return weight.to(dtype), bias.to(dtype)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by ONE depthwise convolution (with bias) that gives
        the eval-mode output.  Idempotent."""
        if self.merged is not None:
            return
        weight, bias = self.equivalent_kernel()
        ref = self.convs[0].weight
        # the branches' own kind (leanconv.convert may have swapped them since construction)
        self.backend = backend_of(self.convs[0])
        merged = depthwise_conv2d(
            self.channels, self.kernel_size,
            padding=(self.kernel_size[0] // 2, self.kernel_size[1] // 2),
            bias=True, backend=self.backend, device=ref.device, dtype=ref.dtype,
        )
        merged.weight.copy_(weight)
        merged.bias.copy_(bias)
        merged.train(self.training)
        del self.convs, self.bns
        self.merged = merged

    def extra_repr(self) -> str:
        state = "merged" if self.merged is not None else f"branches={list(self.branch_specs)}"
        return f"{self.channels}, kernel_size={self.kernel_size}, {state}, backend={self.backend!r}"


class DilatedReparamBlock(_ParallelDepthwiseBranches):
    """UniRepLKNet's dilated re-parameterizable block (depthwise, stride 1, "same" size).

    Training form: a ``K x K`` depthwise conv plus the parallel dilated small
    depthwise convs of :data:`DILATED_BRANCHES[K]`, each followed by
    BatchNorm, summed.  :meth:`reparameterize` merges them into one ``K x K``
    depthwise conv with bias (eval-mode output unchanged).

    Args:
        channels: input = output channels.
        kernel_size: K, one of 5, 7, 9, 11, 13, 15, 17 (the table's keys).
        branches: optional custom ``[(k, r), ...]`` (kernel, dilation) pairs
            instead of the table's; every r(k-1)+1 must be odd and <= K.
        backend: ``"leanconv"`` (DepthwiseConv2d) or ``"torch"`` (nn.Conv2d).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        *,
        branches: Sequence[tuple[int, int]] | None = None,
        backend: str = "leanconv",
        device=None,
        dtype=None,
    ) -> None:
        owner = type(self).__name__
        check_odd(kernel_size, "kernel_size", owner)
        if branches is None:
            if kernel_size not in DILATED_BRANCHES:
                raise ValueError(
                    f"{owner}: kernel_size must be one of {sorted(DILATED_BRANCHES)} (or pass branches=), "
                    f"got {kernel_size}"
                )
            branches = DILATED_BRANCHES[kernel_size]
        specs = [((kernel_size, kernel_size), (1, 1))]
        for item in branches:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ValueError(f"{owner}: branches must hold (kernel, dilation) pairs, got {item!r}")
            k, r = item
            check_odd(k, "branch kernel", owner)
            check_positive_int(r, "branch dilation", owner)
            specs.append(((k, k), (r, r)))
        super().__init__(channels, (kernel_size, kernel_size), specs, backend, device, dtype)


class SLaKBlock(_ParallelDepthwiseBranches):
    """SLaK's decomposed large kernel: ``K x s`` and ``s x K`` depthwise convs plus an
    ``s x s`` one, in parallel, each followed by BatchNorm, summed.

    :meth:`reparameterize` merges them into one ``K x K`` depthwise conv with
    bias.  ``small_kernel=None`` drops the ``s x s`` branch and ``s`` is then
    the short side of the rectangles (``rect_width``).

    Args:
        channels: input = output channels.
        kernel_size: K, odd (e.g. 51).
        small_kernel: s, odd and < K (default 5), or None.
        rect_width: short side of the rectangular kernels (default: small_kernel, or 5).
        backend: ``"leanconv"`` or ``"torch"``.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 51,
        small_kernel: int | None = 5,
        *,
        rect_width: int | None = None,
        backend: str = "leanconv",
        device=None,
        dtype=None,
    ) -> None:
        owner = type(self).__name__
        check_odd(kernel_size, "kernel_size", owner)
        if small_kernel is not None:
            check_odd(small_kernel, "small_kernel", owner)
        width = rect_width if rect_width is not None else (small_kernel if small_kernel is not None else 5)
        check_odd(width, "rect_width", owner)
        for name, v in (("small_kernel", small_kernel), ("rect_width", width)):
            if v is not None and v >= kernel_size:
                raise ValueError(f"{owner}: {name} must be smaller than kernel_size ({kernel_size}), got {v}")
        K = kernel_size
        specs = [((K, width), (1, 1)), ((width, K), (1, 1))]
        if small_kernel is not None:
            specs.append(((small_kernel, small_kernel), (1, 1)))
        self.small_kernel, self.rect_width = small_kernel, width
        super().__init__(channels, (K, K), specs, backend, device, dtype)


def reparameterize_model(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Merge every re-parameterizable block of ``model`` (any submodule with a
    ``reparameterize()`` method: leanconv's blocks and models, and timm-style
    blocks) and return the model.

    With ``inplace=False`` (default) a deep copy is converted and ``model`` is
    left untouched.  A block's own ``reparameterize()`` handles its children,
    so the walk does not descend into a block it merged.  Outputs in eval mode
    are unchanged (up to rounding).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"reparameterize_model: model must be an nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)

    def visit(module: nn.Module) -> None:
        fn = getattr(module, "reparameterize", None)
        if callable(fn):
            fn()
            return
        for child in list(module.children()):
            visit(child)

    visit(model)
    return model
