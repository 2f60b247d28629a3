"""Image classification data that needs no download.

:func:`digits` - scikit-learn's bundled handwritten digits (1,797 grey 8x8
images, 10 classes), upsampled to ``image_size`` and standardised.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["ImageSplit", "digits", "random_shift"]


@dataclass
class ImageSplit:
    """Train and test tensors: images (N, C, H, W) float32, labels (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def in_chans(self) -> int:
        return self.x_train.shape[1]


def digits(image_size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> ImageSplit:
    """scikit-learn's digits, bilinearly upsampled from 8x8 to ``image_size``,
    standardised with the training set's mean and std, split stratified."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"digits: image_size must be an int >= 8, got {image_size!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"digits: test_fraction must be in (0, 1), got {test_fraction!r}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    idx_train, idx_test = train_test_split(
        torch.arange(len(y)).numpy(), test_size=test_fraction, random_state=seed, stratify=y.numpy()
    )
    x_train, x_test = x[idx_train], x[idx_test]
    mean, std = x_train.mean(), x_train.std()
    return ImageSplit(
        (x_train - mean) / std, y[idx_train], (x_test - mean) / std, y[idx_test], num_classes=10
    )


def random_shift(x: torch.Tensor, max_fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random offset of up to ``max_fraction`` of its size
    (bilinear, zero fill) - a light augmentation."""
    if max_fraction <= 0:
        return x
    n = x.shape[0]
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * max_fraction)  # grid units span 2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
