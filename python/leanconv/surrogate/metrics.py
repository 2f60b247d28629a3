"""Rollout metrics of a surrogate against the FE reference.

All functions take predictions and references of shape (B, S, H, W) (batch,
rollout step, grid) and return one value per step (shape (S,)) averaged over
the batch, unless stated otherwise.
"""
from __future__ import annotations

import math

import torch

__all__ = ["nrmse", "rmse", "max_error", "frequency_errors", "FREQUENCY_BANDS"]


def _check(pred: torch.Tensor, true: torch.Tensor) -> None:
    if pred.shape != true.shape or pred.dim() != 4:
        raise ValueError(
            f"pred and true must both have shape (B, S, H, W); got {tuple(pred.shape)} and {tuple(true.shape)}"
        )


def nrmse(pred: torch.Tensor, true: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Normalised RMSE as PDEBench defines it: per sample and step
    ||pred - true||_2 / ||true||_2 over the grid, then the mean over samples."""
    _check(pred, true)
    err = torch.linalg.vector_norm(pred - true, dim=(2, 3))
    ref = torch.linalg.vector_norm(true, dim=(2, 3)).clamp_min(eps)
    return (err / ref).mean(0)


def rmse(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Root-mean-square error per sample and step, averaged over samples."""
    _check(pred, true)
    return (pred - true).pow(2).mean(dim=(2, 3)).sqrt().mean(0)


def max_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Largest absolute error over samples and grid, per step."""
    _check(pred, true)
    return (pred - true).abs().amax(dim=(0, 2, 3))


# PDEBench's bands of the radial wavenumber index: [0, 4), [4, 12), [12, end).
FREQUENCY_BANDS = {"low": (0, 4), "mid": (4, 12), "high": (12, None)}


def frequency_errors(
    pred: torch.Tensor,
    true: torch.Tensor,
    extent: tuple[float, float] = (1.0, 1.0),
    bands: dict[str, tuple[int, int | None]] = FREQUENCY_BANDS,
) -> dict[str, torch.Tensor]:
    """Errors in low / mid / high spatial frequencies, as PDEBench's fRMSE.

    The error's 2-D DFT power ``|F(pred - true)|^2`` is summed over the modes
    (i, j), 0 <= i < H/2, 0 <= j < W/2, whose radial index floor(sqrt(i^2 + j^2))
    falls in each bin r < min(H, W)/2; per bin, the root of the batch mean is
    scaled by (Ly * Lx) / (H * W); each band is the mean over its bins.  A band
    with no bins gives NaN.  Returns {band: tensor of shape (S,)}.
    """
    _check(pred, true)
    h, w = pred.shape[-2:]
    power = torch.fft.fft2((pred - true).double()).abs().pow(2)[..., : h // 2, : w // 2]
    nbins = min(h // 2, w // 2)
    i = torch.arange(h // 2, device=pred.device).view(-1, 1).double()
    j = torch.arange(w // 2, device=pred.device).view(1, -1).double()
    radius = torch.floor(torch.sqrt(i * i + j * j)).long()
    keep = radius < nbins
    binned = torch.zeros(*pred.shape[:2], nbins, dtype=power.dtype, device=pred.device)
    binned.index_add_(2, radius[keep], power[..., keep])
    spectrum = binned.mean(0).sqrt() * (extent[0] * extent[1]) / (h * w)  # (S, nbins)
    out = {}
    for name, (lo, hi) in bands.items():
        hi = nbins if hi is None else min(hi, nbins)
        if lo >= hi:
            out[name] = torch.full((pred.shape[1],), math.nan, dtype=torch.float64)
        else:
            out[name] = spectrum[:, lo:hi].mean(-1).cpu()
    return out
