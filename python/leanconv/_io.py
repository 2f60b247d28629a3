"""Atomic file writes for checkpoints and result files: write to a temporary
file in the same folder, then rename over the target, so a crash never
leaves a half-written file behind."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write", "atomic_torch_save", "atomic_write_json", "atomic_write_text", "atomic_write_bytes"]


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temporary file next to ``path`` and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file a plain open()'s mode
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)``, atomically."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """``obj`` as indented JSON at ``path``, atomically."""
    return atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2) + "\n"), mode="w")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """``text`` at ``path``, atomically."""
    return atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` at ``path``, atomically."""
    return atomic_write(path, lambda f: f.write(data))
