"""Seeded velocity models on a nodal grid: constant, layered, Gaussian inclusions, smooth random fields.

Every generator takes a ``numpy.random.Generator`` (so a seed reproduces the
model exactly), the nodal shape ``(H, W)`` and the velocity range
``[c_min, c_max]``, and returns a float64 array ``(H, W)`` inside that range.
Positions are in normalised coordinates: x and y run over ``[0, 1]`` across
the grid.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["MEDIA", "velocity_model", "constant", "layered", "inclusions", "random_field"]


def _check(shape: Sequence[int], c_min: float, c_max: float) -> tuple[int, int]:
    if len(shape) != 2 or min(shape) < 3:
        raise ValueError(f"shape must be (H, W) with H, W >= 3, got {tuple(shape)}")
    if not (0 < c_min <= c_max < np.inf):
        raise ValueError(f"need 0 < c_min <= c_max < inf, got c_min={c_min}, c_max={c_max}")
    return int(shape[0]), int(shape[1])


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.linspace(0.0, 1.0, w), np.linspace(0.0, 1.0, h), indexing="xy")


def constant(rng: np.random.Generator, shape: Sequence[int], c_min: float, c_max: float) -> np.ndarray:
    """One velocity drawn uniformly from ``[c_min, c_max]``."""
    h, w = _check(shape, c_min, c_max)
    return np.full((h, w), rng.uniform(c_min, c_max))


def layered(rng: np.random.Generator, shape: Sequence[int], c_min: float, c_max: float,
            layers: tuple[int, int] = (2, 6), max_dip: float = 0.3) -> np.ndarray:
    """2-6 layers separated by straight, gently dipping interfaces (slope up to ``max_dip``).

    Velocities are drawn per layer and sorted to increase with depth (downward
    from the top row), as in sedimentary ground; the interfaces are sharp.
    """
    h, w = _check(shape, c_min, c_max)
    X, Y = _coords(h, w)
    n = int(rng.integers(layers[0], layers[1] + 1))
    depths = np.sort(rng.uniform(0.1, 0.9, n - 1))
    slopes = rng.uniform(-max_dip, max_dip, n - 1)
    speeds = np.sort(rng.uniform(c_min, c_max, n))
    depth = 1.0 - Y  # 0 at the top row
    index = np.zeros((h, w), dtype=np.int64)
    for d, s in zip(depths, slopes):
        index += depth > d + s * (X - 0.5)
    return speeds[index]


def inclusions(rng: np.random.Generator, shape: Sequence[int], c_min: float, c_max: float,
               count: tuple[int, int] = (1, 4), radius: tuple[float, float] = (0.05, 0.2)) -> np.ndarray:
    """A uniform background with 1-4 Gaussian bumps (faster or slower), clipped to the range."""
    h, w = _check(shape, c_min, c_max)
    X, Y = _coords(h, w)
    c = np.full((h, w), rng.uniform(c_min, c_max))
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        cx, cy = rng.uniform(0.1, 0.9, 2)
        r = rng.uniform(*radius)
        amp = rng.uniform(-1.0, 1.0) * (c_max - c_min)
        c += amp * np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * r * r))
    return np.clip(c, c_min, c_max)


def random_field(rng: np.random.Generator, shape: Sequence[int], c_min: float, c_max: float,
                 correlation: tuple[float, float] = (0.05, 0.25)) -> np.ndarray:
    """A smooth Gaussian random field (Gaussian covariance, correlation length drawn from
    ``correlation``), mapped affinely onto a random sub-range of at least half of ``[c_min, c_max]``."""
    h, w = _check(shape, c_min, c_max)
    ell = rng.uniform(*correlation)
    noise = rng.standard_normal((2 * h, 2 * w))  # doubled so the periodic FFT filter does not wrap
    ky = np.fft.fftfreq(2 * h, d=1.0 / max(h - 1, 1))
    kx = np.fft.fftfreq(2 * w, d=1.0 / max(w - 1, 1))
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    field = np.fft.ifft2(np.fft.fft2(noise) * np.exp(-2 * (np.pi * ell) ** 2 * k2)).real[:h, :w]
    lo_f, hi_f = field.min(), field.max()
    unit = (field - lo_f) / (hi_f - lo_f) if hi_f > lo_f else np.zeros_like(field)
    span = (c_max - c_min) * rng.uniform(0.5, 1.0)
    lo = rng.uniform(c_min, c_max - span)
    return np.clip(lo + span * unit, c_min, c_max)


#: name -> generator(rng, shape, c_min, c_max)
MEDIA: dict[str, Callable[..., np.ndarray]] = {
    "constant": constant,
    "layered": layered,
    "inclusions": inclusions,
    "random": random_field,
}


def velocity_model(kind: str, rng: np.random.Generator, shape: Sequence[int], c_min: float = 1.0,
                   c_max: float = 2.0) -> np.ndarray:
    """Draw a velocity model of ``kind`` (one of :data:`MEDIA`)."""
    if kind not in MEDIA:
        raise ValueError(f"unknown medium {kind!r}; choose from {sorted(MEDIA)}")
    return MEDIA[kind](rng, shape, c_min, c_max)
