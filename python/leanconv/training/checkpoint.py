"""The one checkpoint format of leanconv's training runs.

A checkpoint is a dict saved with ``torch.save`` (atomically, see
:mod:`leanconv._io`) holding

- ``format``: :data:`FORMAT`, the version tag, checked on every read;
- ``kind``: which trainer wrote it (a key of :data:`KINDS`), so a classifier
  checkpoint is not mistaken for a wave surrogate and back;
- ``config``: the run's settings (a dict), what a resume is checked against;
- ``model``, ``optimizer``, ``scheduler``: the ``state_dict()`` of each;
- ``rng``: the state of every random number generator a run draws from
  (python ``random``, numpy, torch on the CPU and each CUDA device), so a
  resumed run draws the numbers the uninterrupted run would have drawn;
- whatever the trainer adds (epoch, history, times, ...).

The final model files (``model.pt``) use the same format without the
optimizer, scheduler and RNG parts.
"""
from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import atomic_torch_save

__all__ = ["FORMAT", "KINDS", "CheckpointError", "rng_state", "set_rng_state", "save_checkpoint", "read_checkpoint",
           "restore_checkpoint"]

FORMAT = "leanconv-checkpoint/2"

# kind -> (what it holds, the command that writes it)
KINDS: dict[str, tuple[str, str]] = {
    "surrogate": ("wave surrogate", "leanconv train"),
    "classifier": ("classifier", "leanconv train-classifier"),
}
# format tags of earlier versions that name their kind (untagged files are earlier surrogates)
_EARLIER_TAGS = {"leanconv-classifier-checkpoint/1": "classifier"}


class CheckpointError(ValueError):
    """A file that is not a checkpoint this version of leanconv can use (the message says why)."""


def rng_state() -> dict[str, Any]:
    """The state of python's ``random``, numpy's global generator, torch's CPU generator and, when
    CUDA has been initialized in this process, each CUDA device's generator."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Put back generator states taken by :func:`rng_state` (those present in ``state``; CUDA
    devices beyond those visible here are skipped)."""
    if "python" in state:
        random.setstate(_as_tuple(state["python"]))
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        for device, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, device)


def _as_tuple(value: Any) -> Any:
    """random.setstate needs tuples where a round trip may have left lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: str | os.PathLike, *, kind: str, config: Mapping[str, Any], model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None, rng: bool = True,
                    **extra: Any) -> Path:
    """Write a checkpoint of ``kind`` (a key of :data:`KINDS`) to ``path`` atomically: the format
    tag, ``config``, the state dicts of ``model``, ``optimizer`` and ``scheduler`` (those given),
    the generators' states when ``rng`` is true, and ``extra`` (epoch, history, ...)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    state: dict[str, Any] = {"format": FORMAT, "kind": kind, "config": dict(config), "model": model.state_dict()}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if rng:
        state["rng"] = rng_state()
    clash = sorted(set(state) & set(extra))
    if clash:
        raise ValueError(f"extra entries {', '.join(clash)} would replace the checkpoint's own")
    state.update(extra)
    return atomic_torch_save(state, path)


def read_checkpoint(path: str | os.PathLike, *, kind: str, what: str | None = None, map_location: Any = "cpu",
                    accept_untagged: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Load a checkpoint of ``kind`` from ``path`` and check what it is.

    Raises :class:`CheckpointError` (a ValueError) when the file is not a torch file, is a
    checkpoint of another kind (naming both), or carries another format tag than
    :data:`FORMAT` (naming both tags: it was written by another version of leanconv).
    ``accept_untagged(state)`` may accept a file without a format tag (read-only uses of
    files from earlier versions, such as rolling out a finished model).  ``what`` names the
    expected file in messages (default: "a checkpoint of `<command>`").
    """
    noun, command = KINDS[kind]
    what = what or f"a checkpoint of `{command}`"
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (train a model with `{command}` first)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # not a torch file at all, truncated, ...
        raise CheckpointError(f"{path} is not {what} (torch.load: {type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not {what}")
    tag = state.get("format")
    theirs = state.get("kind") if tag == FORMAT else _EARLIER_TAGS.get(tag) if isinstance(tag, str) else None
    if theirs is not None and theirs != kind:
        other_noun, other_command = KINDS.get(theirs, (str(theirs), "?"))
        model = (state.get("config") or {}).get("model")
        raise CheckpointError(f"{path} is a {other_noun} checkpoint of `{other_command}`"
                              + (f" ({model})" if model else "") + f", not a {noun} from `{command}`")
    if tag == FORMAT:
        if not isinstance(state.get("config"), dict) or "model" not in state:
            raise CheckpointError(f"{path} is not {what} (its config or model weights are missing)")
        return state
    if tag is None and accept_untagged is not None and accept_untagged(state):
        return state
    found = "has no format tag" if tag is None else f"has the format tag {tag!r}"
    raise CheckpointError(f"{path} {found}, and this version of leanconv reads only {FORMAT!r} "
                          f"(it is not {what} of this version, or one written by an earlier version: "
                          "start over with --force, or train into another --out)")


def restore_checkpoint(state: Mapping[str, Any], *, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                       scheduler: Any = None, rng: bool = True) -> None:
    """Load a checkpoint's weights into ``model`` and, where given, its optimizer and scheduler
    states; with ``rng`` true, put back the generators' states last (loading touches none)."""
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if rng:
        if not isinstance(state.get("rng"), Mapping):
            raise CheckpointError("the checkpoint holds no random number generator states, so the run cannot "
                                  "continue as it would have without the interruption")
        set_rng_state(state["rng"])
