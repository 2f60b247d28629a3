"""Argument checks shared by leanconv's blocks and models: each raises a
ValueError naming the owner, the argument and what was expected."""
from __future__ import annotations

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


def check_rank_or_ratio(value, name: str, owner: str):
    """``value`` if it is None, an int rank >= 1 or a float ratio in (0, 1]
    (FactorizedConv2d's ``rank``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}: {name} must be None, an int rank >= 1 or a float ratio in (0, 1], got {value!r}")
    if isinstance(value, int) and value < 1:
        raise ValueError(f"{owner}: {name} as a rank must be >= 1, got {value}")
    if isinstance(value, float) and not 0.0 < value <= 1.0:
        raise ValueError(f"{owner}: {name} as a ratio must be in (0, 1], got {value}")
    return value
