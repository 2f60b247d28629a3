"""Small layers and argument checks shared by the classifier families."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn._checks import check_backend, check_positive_int, check_positive_number

__all__ = [
    "StageClassifier",
    "LayerNorm2d",
    "SqueezeExcite",
    "ScaledMLP",
    "check_stage_args",
    "stage_kernel_sizes",
    "check_large_kernel_args",
]


class StageClassifier(nn.Module):
    """Base of the classifier families: ``stem`` -> ``stages`` -> global average
    pool -> ``head_norm`` -> ``head`` (subclasses build these four)."""

    stem: nn.Module
    stages: nn.ModuleList
    head_norm: nn.Module
    head: nn.Linear

    def _check(self, in_chans, num_classes, depths, dims) -> tuple[tuple[int, ...], tuple[int, ...]]:
        owner = type(self).__name__
        check_positive_int(in_chans, "in_chans", owner)
        check_positive_int(num_classes, "num_classes", owner)
        return check_stage_args(depths, dims, owner)

    def _assemble(
        self,
        stem: nn.Module,
        dims: Sequence[int],
        stage_blocks: Sequence[Sequence[nn.Module]],
        downsample: Callable[[int, int], list[nn.Module]],
        head_norm: nn.Module,
        num_classes: int,
    ) -> None:
        """Stage i = ``downsample(dims[i-1], dims[i])`` (for i > 0) then ``stage_blocks[i]``."""
        self.stem = stem
        self.stages = nn.ModuleList(
            nn.Sequential(*(downsample(dims[i - 1], dims[i]) if i else []), *blocks)
            for i, blocks in enumerate(stage_blocks)
        )
        self.head_norm = head_norm
        self.head = nn.Linear(dims[-1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled, normalised features (N, dims[-1])."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head_norm(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) tensor; the output keeps
    the input's memory format (contiguous or channels_last)."""

    def __init__(self, channels: int, eps: float = 1e-6, device=None, dtype=None) -> None:
        super().__init__(channels, eps=eps, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        y = y.permute(0, 3, 1, 2)
        return y if channels_last else y.contiguous()


class ScaledMLP(nn.Module):
    """1x1 conv (dim -> ffn_ratio * dim) -> GELU -> 1x1 conv -> per-channel scale
    (layer scale, initialised to ``layer_scale_init``): the channel-mixing half of a block."""

    def __init__(self, dim: int, ffn_ratio: float = 4.0, layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        hidden = max(int(dim * ffn_ratio), 1)
        self.pwconv1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.pwconv2 = nn.Conv2d(hidden, dim, 1)
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), float(layer_scale_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * self.pwconv2(self.act(self.pwconv1(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: channel gates from globally pooled features."""

    def __init__(self, channels: int, reduced: int, device=None, dtype=None) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, reduced, 1, device=device, dtype=dtype)
        self.up = nn.Conv2d(reduced, channels, 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.up(F.relu(self.down(s))))


def check_stage_args(depths, dims, owner: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``depths`` and ``dims`` as equal-length tuples of positive ints."""
    for name, seq in (("depths", depths), ("dims", dims)):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence) or len(seq) == 0:
            raise ValueError(f"{owner}: {name} must be a non-empty sequence of positive ints, got {seq!r}")
        for v in seq:
            check_positive_int(v, name + " entries", owner)
    if len(depths) != len(dims):
        raise ValueError(
            f"{owner}: depths and dims must have one entry per stage, got {len(depths)} depths and {len(dims)} dims"
        )
    return tuple(depths), tuple(dims)


def check_large_kernel_args(
    kernel_sizes, depths: Sequence[int], ffn_ratio, backend: str, owner: str
) -> list[list[int]]:
    """Checks shared by the large-kernel families; returns the per-block kernel sizes."""
    check_backend(backend, owner)
    check_positive_number(ffn_ratio, "ffn_ratio", owner)
    return stage_kernel_sizes(kernel_sizes, depths, owner)


def stage_kernel_sizes(kernel_sizes, depths: Sequence[int], owner: str) -> list[list[int]]:
    """Per-block kernel sizes from an int (every block), one int per stage, or
    one sequence per stage with an int per block.  All odd positive ints."""
    n = len(depths)
    if isinstance(kernel_sizes, int) and not isinstance(kernel_sizes, bool):
        per_stage: list = [kernel_sizes] * n
    elif isinstance(kernel_sizes, Sequence) and not isinstance(kernel_sizes, (str, bytes)) and len(kernel_sizes) == n:
        per_stage = list(kernel_sizes)
    else:
        raise ValueError(
            f"{owner}: kernel_sizes must be an int, or one entry per stage ({n}), got {kernel_sizes!r}"
        )
    out = []
    for i, (entry, depth) in enumerate(zip(per_stage, depths)):
        blocks = [entry] * depth if isinstance(entry, int) and not isinstance(entry, bool) else list(entry)
        if len(blocks) != depth:
            raise ValueError(
                f"{owner}: kernel_sizes[{i}] must be an int or {depth} ints (depths[{i}]), got {entry!r}"
            )
        for k in blocks:
            check_positive_int(k, f"kernel_sizes[{i}] entries", owner)
            if k % 2 == 0:
                raise ValueError(f"{owner}: kernel sizes must be odd, got {k} in stage {i}")
        out.append(blocks)
    return out
