"""A compressed ResNet-like CNN: basic residual blocks whose 3x3 convolutions are
``leanconv.nn.FactorizedConv2d`` (CP / one-way factorized) at a given rank or
parameter ratio, or dense ``nn.Conv2d`` when ``rank=None`` (the baseline)."""
from __future__ import annotations

import importlib
from collections.abc import Sequence

import torch
from torch import nn

from ..nn._checks import check_rank
from .layers import StageClassifier
from .registry import register_preset

__all__ = ["CompressedResNet", "BasicBlock", "factorized_conv_class"]


def factorized_conv_class() -> type:
    """``leanconv.nn.FactorizedConv2d``, looked up when first needed."""
    cls = getattr(importlib.import_module("leanconv.nn"), "FactorizedConv2d", None)
    if cls is None:
        raise RuntimeError(
            "this model needs leanconv.nn.FactorizedConv2d, which this version of leanconv does not have; "
            "pass rank=None for the dense baseline"
        )
    return cls


def _conv3x3(cin: int, cout: int, stride: int, rank) -> nn.Module:
    if rank is None:
        return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    return factorized_conv_class()(cin, cout, 3, stride=stride, padding=1, bias=False, rank=rank)


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus a (1x1 conv + BN when the shape changes) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1, rank=None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride, rank)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout, 1, rank)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class CompressedResNet(StageClassifier):
    """ResNet-like classifier whose residual 3x3 convolutions are factorized.

    Args:
        in_chans, num_classes: input channels and classes.
        depths: basic blocks per stage; each stage after the first halves the size.
        dims: channels per stage.
        rank: ``FactorizedConv2d`` rank (int) or kept fraction of the dense
            parameters (float in (0, 1]) for every 3x3 conv in the blocks;
            ``None`` builds dense ``nn.Conv2d`` layers (the baseline).  The stem
            and the 1x1 shortcuts stay dense.
        stem_stride: 1 or 2.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 10,
        depths: Sequence[int] = (2, 2, 2),
        dims: Sequence[int] = (32, 64, 128),
        *,
        rank: int | float | None = 0.1,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        depths, dims = self._check(in_chans, num_classes, depths, dims)
        rank = None if rank is None else check_rank(rank, "rank", owner)
        if stem_stride not in (1, 2):
            raise ValueError(f"{owner}: stem_stride must be 1 or 2, got {stem_stride!r}")
        self.config = dict(in_chans=in_chans, num_classes=num_classes, depths=depths, dims=dims, rank=rank,
                           stem_stride=stem_stride)
        stem = nn.Sequential(
            nn.Conv2d(in_chans, dims[0], 3, stem_stride, 1, bias=False), nn.BatchNorm2d(dims[0]), nn.ReLU()
        )
        blocks, cin = [], dims[0]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            # the first block of each later stage halves the size
            blocks.append([BasicBlock(cin if j == 0 else dim, dim, 2 if i > 0 and j == 0 else 1, rank)
                           for j in range(depth)])
            cin = dim
        self._assemble(stem, dims, blocks, lambda cin, cout: [], nn.Identity(), num_classes)


register_preset(
    "resnet_micro", CompressedResNet,
    "Dense ResNet-like baseline, (1, 1, 1) x (32, 64, 128) basic blocks, 1 input channel, for 32x32 images.",
    in_chans=1, num_classes=10, depths=(1, 1, 1), dims=(32, 64, 128), rank=None,
)
register_preset(
    "resnet_micro_cp", CompressedResNet,
    "resnet_micro with FactorizedConv2d 3x3 convs keeping 10% of their parameters (rank=0.1).",
    in_chans=1, num_classes=10, depths=(1, 1, 1), dims=(32, 64, 128), rank=0.1,
)
