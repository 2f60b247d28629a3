"""Argument checks shared by leanconv's blocks and models: each raises a
ValueError naming the owner, the argument and what was expected."""
from __future__ import annotations

import math
import numbers

from ..ops._geometry import ntuple

BACKENDS = ("leanconv", "torch")


def check_backend(backend: str, owner: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"{owner}: backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def check_positive_int(value, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def check_odd(value, name: str, owner: str) -> int:
    check_positive_int(value, name, owner)
    if value % 2 == 0:
        raise ValueError(f"{owner}: {name} must be odd (centred kernels), got {value}")
    return value


def check_positive_number(value, name: str, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{owner}: {name} must be a positive number, got {value!r}")
    return value


def check_rank(value, name: str, owner: str) -> int | float:
    """``value`` as an int rank >= 1 (numpy integers too) or a float ratio in (0, 1]
    (the fraction of the dense weight count a factorized layer keeps)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}: {name} must be an int >= 1 or a float in (0, 1], got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{owner}: {name} must be >= 1 when given as an int, got {value}")
        return value
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ValueError(f"{owner}: {name} given as a float is the fraction of the dense parameter count to keep "
                         f"and must be in (0, 1], got {value}")
    return value


def check_ints(value, n: int, name: str, owner: str, minimum: int = 1) -> tuple[int, ...]:
    """``value`` (an int, an integer scalar such as ``numpy.int64``, or a sequence of ``n`` of
    them) as ``n`` Python ints >= ``minimum`` (a module's kernel_size, stride, padding, dilation)."""
    try:
        values = tuple(ntuple(value, n, name))
    except ValueError as exc:
        raise ValueError(f"{owner}: {exc}") from None
    if any(v < minimum for v in values):
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return values
