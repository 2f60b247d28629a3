"""Normalisation of stride / padding / dilation arguments shared by the ops."""
from __future__ import annotations

from collections.abc import Sequence


def ntuple(value: int | Sequence[int], n: int, name: str) -> list[int]:
    """``value`` as a list of ``n`` ints (a single int is repeated)."""
    if isinstance(value, int):
        return [value] * n
    values = list(value)
    if len(values) == 1:
        return values * n
    if len(values) != n or not all(isinstance(v, int) for v in values):
        raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    return values


def padding_pairs(padding: int | Sequence[int], n: int) -> list[int]:
    """Padding as ``[before_0, after_0, before_1, after_1, ...]`` over the spatial axes.

    Accepts an int, ``n`` ints (symmetric per axis) or ``2 * n`` ints given as
    (before, after) pairs per axis in (D,) H, W order.
    """
    if isinstance(padding, int):
        values = [padding] * n
    else:
        values = list(padding)
    if len(values) == 1:
        values = values * n
    if len(values) == n:
        out = [v for v in values for _ in range(2)]
    elif len(values) == 2 * n:
        out = values
    else:
        raise ValueError(
            f"padding must be an int, {n} ints (one per spatial axis) or {2 * n} ints "
            f"((before, after) per axis), got {padding!r}"
        )
    if not all(isinstance(v, int) for v in out):
        raise ValueError(f"padding must hold ints, got {padding!r}")
    return out


def same_padding(kernel_size: Sequence[int], dilation: Sequence[int]) -> list[int]:
    """(before, after) pairs that keep the size with stride 1, as PyTorch's ``padding="same"``
    (the odd extra pixel goes after)."""
    out = []
    for k, d in zip(kernel_size, dilation):
        total = d * (k - 1)
        out += [total // 2, total - total // 2]
    return out


def conv_output_size(size: int, k: int, stride: int, lo: int, hi: int, dilation: int) -> int:
    return (size + lo + hi - dilation * (k - 1) - 1) // stride + 1
