"""Sizes and a priori initialisation of the factorized layers (:mod:`leanconv.nn.factorized`): the weight
count of a rank, the rank of a kept fraction, and the initial factors.

A priori initialisation (variance of the reconstructed kernel = nn.Conv2d's):
nn.ConvNd's default init is kaiming_uniform(a=sqrt(5)), i.e. U(-b, b) with
b = 1/sqrt(fan_in), fan_in = C_in * prod(k), so Var(W) = 1/(3 fan_in).  With
independent zero-mean factors the variance of a sum of R products is R times
the product of the factor variances, so we draw

    cp:       lam = 1, B ~ N(0, 1/C_in), F_axis ~ N(0, 1/k_axis), A ~ N(0, 1/(3R))
              -> Var(W) = R * 1/(3R) * 1/C_in * prod 1/k = 1/(3 fan_in)
    spatial:  F_axis ~ N(0, c/k_axis) with c = (1/(3 C_in R))^(1/n_axes)
              -> Var(W) = R * c^n / prod(k) = 1/(3 fan_in)

(the cp split keeps each intermediate activation at the input's variance: B
sums C_in terms of variance 1/C_in, each filter k terms of variance 1/k).  The
bias is drawn like nn.ConvNd's, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_rank

__all__ = ["factorized_param_count", "resolve_rank", "init_factors"]


def factorized_param_count(in_channels: int, out_channels: int, kernel_size: Sequence[int], rank: int,
                           factorization: str = "cp") -> int:
    """Weight parameters of a factorized layer (bias not counted)."""
    if factorization == "cp":
        return rank * (in_channels + out_channels + sum(kernel_size) + 1)
    return out_channels * in_channels * rank * sum(kernel_size)


def resolve_rank(rank: int | float, in_channels: int, out_channels: int, kernel_size: Sequence[int],
                 factorization: str = "cp", owner: str = "FactorizedConv") -> int:
    """The integer rank for ``rank``: an int >= 1 as is, or a float in (0, 1] taken as
    the fraction of the dense weight count to keep (R = max(1, floor(ratio * dense /
    params per rank)))."""
    rank = check_rank(rank, "rank", owner)
    if isinstance(rank, int):
        return rank
    dense = in_channels * out_channels * math.prod(kernel_size)
    per_rank = factorized_param_count(in_channels, out_channels, kernel_size, 1, factorization)
    return max(1, math.floor(rank * dense / per_rank + 1e-9))


@torch.no_grad()
def init_factors(layer: nn.Module) -> None:
    """Draw the factors (and bias) of a FactorizedConv2d/3d ``layer`` as the module docstring says:
    the reconstructed kernel gets nn.ConvNd's default variance 1/(3 fan_in)."""
    fan_in = layer.in_channels * math.prod(layer.kernel_size)
    R = layer.rank
    if layer.factorization == "cp":
        layer.cp_weights.fill_(1.0)
        layer.in_factor.normal_(0.0, 1.0 / math.sqrt(layer.in_channels))
        layer.out_factor.normal_(0.0, 1.0 / math.sqrt(3.0 * R))
        for f, k in zip(layer.spatial_factors, layer.kernel_size):
            f.normal_(0.0, 1.0 / math.sqrt(k))
    else:
        c = (1.0 / (3.0 * layer.in_channels * R)) ** (1.0 / len(layer.kernel_size))
        for f, k in zip(layer.spatial_factors, layer.kernel_size):
            f.normal_(0.0, math.sqrt(c / k))
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(fan_in)
        layer.bias.uniform_(-bound, bound)
