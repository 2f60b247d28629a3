"""ConvNeXt-style classifiers: depthwise K x K -> LayerNorm -> 1x1 MLP -> layer
scale, residual; patchify stem and LayerNorm + 2x2 strided downsampling."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn._backend import depthwise_conv2d
from ..nn._checks import check_positive_int
from .layers import (
    LayerNorm2d,
    ScaledMLP,
    StageClassifier,
    check_large_kernel_args,
)
from .registry import register_preset

__all__ = ["ConvNeXtBlock", "ConvNeXt"]


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: depthwise K x K (bias) -> LayerNorm -> 1x1 (x ffn_ratio) -> GELU -> 1x1 -> layer scale, + x."""

    def __init__(
        self, dim: int, kernel_size: int = 7, *, ffn_ratio: float = 4.0, layer_scale_init: float = 1e-6,
        backend: str = "leanconv",
    ) -> None:
        super().__init__()
        self.dwconv = depthwise_conv2d(dim, kernel_size, padding=kernel_size // 2, bias=True, backend=backend)
        self.norm = LayerNorm2d(dim)
        self.mlp = ScaledMLP(dim, ffn_ratio, layer_scale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(self.dwconv(x)))


class ConvNeXt(StageClassifier):
    """ConvNeXt-style classifier.

    Args:
        in_chans, num_classes: input channels and classes.
        depths, dims: blocks and channels per stage (e.g. (2, 2, 6, 2), (40, 80, 160, 320)).
        kernel_sizes: depthwise kernel size - an int, one per stage, or one
            sequence per stage (odd).
        ffn_ratio: MLP width relative to the stage width.
        stem_stride: patch size of the stem (4 for ImageNet-size inputs, 1 or 2 for 32x32).
        layer_scale_init: initial per-channel residual scale.
        backend: ``"leanconv"`` or ``"torch"`` for the depthwise convolutions.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (2, 2, 6, 2),
        dims: Sequence[int] = (40, 80, 160, 320),
        kernel_sizes=7,
        *,
        ffn_ratio: float = 4.0,
        stem_stride: int = 4,
        layer_scale_init: float = 1e-6,
        backend: str = "leanconv",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        depths, dims = self._check(in_chans, num_classes, depths, dims)
        kernels = check_large_kernel_args(kernel_sizes, depths, ffn_ratio, backend, owner)
        check_positive_int(stem_stride, "stem_stride", owner)
        self.config = dict(
            in_chans=in_chans, num_classes=num_classes, depths=depths, dims=dims, kernel_sizes=kernels,
            ffn_ratio=ffn_ratio, stem_stride=stem_stride, backend=backend,
        )
        stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], stem_stride, stem_stride), LayerNorm2d(dims[0]))
        blocks = [
            [ConvNeXtBlock(dim, k, ffn_ratio=ffn_ratio, layer_scale_init=layer_scale_init, backend=backend)
             for k in ks]
            for dim, ks in zip(dims, kernels)
        ]
        self._assemble(stem, dims, blocks, _downsample, nn.LayerNorm(dims[-1]), num_classes)


def _downsample(cin: int, cout: int) -> list[nn.Module]:
    return [LayerNorm2d(cin), nn.Conv2d(cin, cout, 2, 2)]


register_preset(
    "convnext_micro", ConvNeXt,
    "ConvNeXt-style, 3 stages (1, 1, 2) x (16, 32, 64), K=7, 1 input channel: for 32x32 images on a CPU.",
    in_chans=1, num_classes=10, depths=(1, 1, 2), dims=(16, 32, 64), kernel_sizes=7, stem_stride=2,
)
register_preset(
    "convnext_atto", ConvNeXt, "ConvNeXt-atto-style: depths (2, 2, 6, 2), dims (40, 80, 160, 320), K=7.",
    depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), kernel_sizes=7,
)
