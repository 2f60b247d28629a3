"""UniRepLKNet-style classifiers: large-kernel depthwise blocks trained in their
multi-branch dilated form (:class:`~leanconv.nn.DilatedReparamBlock`) and
merged into single large kernels for inference (:meth:`reparameterize`)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn._backend import backend_of, depthwise_conv2d
from ..nn.reparam import DILATED_BRANCHES, DilatedReparamBlock, fuse_conv_bn
from .layers import (
    ScaledMLP,
    SqueezeExcite,
    StageClassifier,
    check_large_kernel_args,
)
from .registry import register_preset

__all__ = ["UniRepLKNetBlock", "UniRepLKNet"]


class UniRepLKNetBlock(nn.Module):
    """Depthwise K x K (dilated re-param branches when K is in the table, a plain
    depthwise conv otherwise) -> BatchNorm -> squeeze-excite -> 1x1 MLP ->
    layer scale, with a residual connection.

    :meth:`reparameterize` merges the branches AND the BatchNorm after them into
    one depthwise conv with bias.
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        *,
        ffn_ratio: float = 4.0,
        use_se: bool = True,
        layer_scale_init: float = 1e-6,
        backend: str = "leanconv",
    ) -> None:
        super().__init__()
        self.dim, self.kernel_size, self.backend = dim, kernel_size, backend
        if kernel_size in DILATED_BRANCHES:
            self.dwconv: nn.Module = DilatedReparamBlock(dim, kernel_size, backend=backend)
        else:
            self.dwconv = depthwise_conv2d(dim, kernel_size, padding=kernel_size // 2, bias=False, backend=backend)
        self.norm: nn.Module = nn.BatchNorm2d(dim)
        self.se = SqueezeExcite(dim, max(dim // 4, 1)) if use_se else nn.Identity()
        self.mlp = ScaledMLP(dim, ffn_ratio, layer_scale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.se(self.norm(self.dwconv(x))))

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the branches and the following BatchNorm into one depthwise conv
        (eval-mode outputs unchanged).  Idempotent."""
        if isinstance(self.norm, nn.Identity):
            return
        if isinstance(self.dwconv, DilatedReparamBlock):
            self.dwconv.reparameterize()
            conv = self.dwconv.merged
        else:
            conv = self.dwconv
        weight, bias = fuse_conv_bn(conv.weight, conv.bias, self.norm)
        self.backend = backend_of(conv)  # leanconv.convert may have swapped the conv since construction
        merged = depthwise_conv2d(
            self.dim, self.kernel_size, padding=self.kernel_size // 2, bias=True, backend=self.backend,
            device=weight.device, dtype=weight.dtype,
        )
        merged.weight.copy_(weight)
        merged.bias.copy_(bias)
        merged.train(self.training)
        self.dwconv, self.norm = merged, nn.Identity()


class UniRepLKNet(StageClassifier):
    """UniRepLKNet-style classifier.

    Args:
        in_chans: input channels.
        num_classes: classes of the linear head.
        depths: blocks per stage, e.g. (2, 2, 6, 2).
        dims: channels per stage, e.g. (40, 80, 160, 320).
        kernel_sizes: an int for every block, one int per stage, or one
            sequence of ints per stage; odd.  Sizes 5..17 get the dilated
            re-param branches, others a plain depthwise conv.
        ffn_ratio: hidden width of the 1x1 MLP relative to the stage width.
        stem_stride: 1, 2 or 4 - downsampling of the stem (4 for ImageNet-size
            inputs, 1 or 2 for 32x32 images).
        use_se: squeeze-excite in every block.
        layer_scale_init: initial value of the per-channel residual scale.
        backend: ``"leanconv"`` (depthwise convs on leanconv's kernels) or
            ``"torch"`` (nn.Conv2d) - the same network and ``state_dict``.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (2, 2, 6, 2),
        dims: Sequence[int] = (40, 80, 160, 320),
        kernel_sizes=(3, 13, 13, 13),
        *,
        ffn_ratio: float = 4.0,
        stem_stride: int = 4,
        use_se: bool = True,
        layer_scale_init: float = 1e-6,
        backend: str = "leanconv",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        depths, dims = self._check(in_chans, num_classes, depths, dims)
        kernels = check_large_kernel_args(kernel_sizes, depths, ffn_ratio, backend, owner)
        if stem_stride not in (1, 2, 4):
            raise ValueError(f"{owner}: stem_stride must be 1, 2 or 4, got {stem_stride!r}")
        self.config = dict(
            in_chans=in_chans, num_classes=num_classes, depths=depths, dims=dims, kernel_sizes=kernels,
            ffn_ratio=ffn_ratio, stem_stride=stem_stride, use_se=use_se, backend=backend,
        )
        mid = max(dims[0] // 2, 1)
        s1, s2 = {1: (1, 1), 2: (2, 1), 4: (2, 2)}[stem_stride]
        stem = nn.Sequential(
            nn.Conv2d(in_chans, mid, 3, s1, 1, bias=False), nn.BatchNorm2d(mid), nn.GELU(),
            nn.Conv2d(mid, dims[0], 3, s2, 1, bias=False), nn.BatchNorm2d(dims[0]),
        )
        blocks = [
            [UniRepLKNetBlock(dim, k, ffn_ratio=ffn_ratio, use_se=use_se, layer_scale_init=layer_scale_init,
                              backend=backend) for k in ks]
            for dim, ks in zip(dims, kernels)
        ]
        self._assemble(stem, dims, blocks, _downsample, nn.LayerNorm(dims[-1]), num_classes)


def _downsample(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout)]


register_preset(
    "unireplknet_micro", UniRepLKNet,
    "UniRepLKNet-style, 3 stages (1, 1, 2) x (16, 32, 64), K=13, 1 input channel: for 32x32 images on a CPU.",
    in_chans=1, num_classes=10, depths=(1, 1, 2), dims=(16, 32, 64), kernel_sizes=13, stem_stride=2,
)
register_preset(
    "unireplknet_a", UniRepLKNet, "UniRepLKNet-A-style: depths (2, 2, 6, 2), dims (40, 80, 160, 320), K=3 then 13.",
    depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), kernel_sizes=(3, 13, 13, 13),
)
