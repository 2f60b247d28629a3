"""Checks made before work starts: devices, output folders, free disk space.

Each raises ``ValueError`` with one line naming the argument and what was
expected, and writes nothing (the writability check asks the file system with
``os.access`` instead of creating a file).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

__all__ = ["check_device", "check_output_dir", "check_free_space", "nearest_existing", "format_bytes",
           "available_memory"]


def check_device(device: str, what: str = "device") -> str:
    """``device`` if it names a usable torch device (``cpu``, ``cuda``, ``cuda:N`` with that GPU visible)."""
    if type(device).__name__ == "device":  # a torch.device
        device = str(device)
    if not isinstance(device, str) or not device:
        raise ValueError(f"{what} must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device == "cpu":
        return device
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"{what} must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cpu":
        return device
    if dev.type != "cuda":
        raise ValueError(f"{what} {device!r}: only 'cpu' and 'cuda' devices are supported")
    if not torch.cuda.is_available():
        raise ValueError(f"{what} {device!r}: no GPU is visible to torch here (torch.cuda.is_available() is False); "
                         "use 'cpu'")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise ValueError(f"{what} {device!r}: this machine shows {count} GPU(s), cuda:0 to cuda:{count - 1}")
    return device


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` or its closest ancestor that exists (the current folder for a relative path's root)."""
    p = Path(os.path.abspath(os.fspath(path)))
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def check_output_dir(path: str | os.PathLike, what: str = "--out", files: Iterable[str] = ()) -> Path:
    """Refuse an output folder that cannot be created or written: a file in the way
    (``path`` itself or an ancestor), a folder without write permission or on a
    read-only file system, or one of ``files`` (names inside it) being a folder."""
    p = Path(path)
    if os.path.lexists(p) and not p.is_dir():
        raise ValueError(f"{what} {str(path)!r} exists and is not a folder (a file is in the way)")
    base = nearest_existing(p)
    if not base.is_dir():
        raise ValueError(f"{what} {str(path)!r} cannot be created: {str(base)!r} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        why = "on a read-only file system" if _read_only_fs(base) else "not writable (permission denied)"
        if base == Path(os.path.abspath(p)):
            raise ValueError(f"{what} {str(path)!r} is {why}")
        raise ValueError(f"{what} {str(path)!r} cannot be created: {str(base)!r} is {why}")
    for name in files:
        if (p / name).is_dir():
            raise ValueError(f"{what} {str(path)!r}: {name} there is a folder, so this run cannot write its {name}")
    return p


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_free_space(path: str | os.PathLike, needed: int, what: str = "--out") -> None:
    """Refuse when the file system of ``path`` (or of its closest existing ancestor)
    has less than ``needed`` bytes free."""
    if needed <= 0:
        return
    base = nearest_existing(path)
    free = shutil.disk_usage(base).free
    if free < needed:
        raise ValueError(f"{what} {str(path)!r}: not enough disk space: this run writes about "
                         f"{format_bytes(needed)}, the file system of {str(base)!r} has {format_bytes(free)} free")


def available_memory(device: str = "cpu") -> int | None:
    """Bytes of memory a new allocation can get on ``device`` (CPU: MemAvailable of
    /proc/meminfo; CUDA: the free memory of the GPU), or None where unknown."""
    if str(device).startswith("cuda"):
        try:
            import torch

            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:  # no GPU, or an old driver: unknown
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
