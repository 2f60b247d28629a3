"""Normalisation of stride / padding / dilation arguments shared by the ops."""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch


def as_int(value: Any, name: str) -> int:
    """``value`` as a Python int: ints and integer scalars (``numpy.int64``, a 0-d integer
    tensor) are accepted, as ``nn.Conv2d`` accepts them; bools, floats and others raise."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"{name} must hold ints, got {value!r} ({type(value).__name__})")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must hold ints, got {value!r} ({type(value).__name__})") from None


def _values(value: Any, name: str) -> list[int]:
    if isinstance(value, str):
        raise ValueError(f"{name} must be an int or a sequence of ints, got {value!r}")
    values = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") else [value]
    return [as_int(v, name) for v in values]


def ntuple(value: int | Sequence[int], n: int, name: str) -> list[int]:
    """``value`` as a list of ``n`` ints (a single int is repeated)."""
    values = _values(value, name)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    return values


def padding_pairs(padding: int | Sequence[int], n: int) -> list[int]:
    """Padding as ``[before_0, after_0, before_1, after_1, ...]`` over the spatial axes.

    Accepts an int, ``n`` ints (symmetric per axis) or ``2 * n`` ints given as
    (before, after) pairs per axis in (D,) H, W order.
    """
    values = _values(padding, "padding")
    if len(values) == 1:
        values = values * n
    if len(values) == n:
        return [v for v in values for _ in range(2)]
    if len(values) == 2 * n:
        return values
    raise ValueError(
        f"padding must be an int, {n} ints (one per spatial axis) or {2 * n} ints "
        f"((before, after) per axis), got {padding!r}"
    )


# Device types that always have autocast: torch.amp.is_autocast_available is asked only
# for others (Dynamo cannot trace it in torch 2.11: torch.compile(fullgraph=True) failed)
_AUTOCAST_KINDS = ("cpu", "cuda")


def autocast_dtype(kind: str) -> torch.dtype | None:
    """The autocast dtype when autocast is on for device type ``kind``, else None."""
    if (kind in _AUTOCAST_KINDS or torch.amp.is_autocast_available(kind)) and torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return None


def autocast_to(device: torch.device, *tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """The tensors in the autocast dtype when autocast is on for ``device``'s type, as
    torch's convolutions run under autocast (floating tensors are cast; None stays None)."""
    dtype = autocast_dtype(device.type)
    if dtype is None:
        return tensors
    return tuple(t.to(dtype) if t is not None and t.is_floating_point() and t.dtype != dtype else t
                 for t in tensors)


def pad_last_first(pairs: Sequence[int]) -> list[int]:
    """``[before, after]`` pairs in (D,) H, W order as ``F.pad`` wants them: last axis first."""
    n = len(pairs) // 2
    return [p for i in reversed(range(n)) for p in (pairs[2 * i], pairs[2 * i + 1])]


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
