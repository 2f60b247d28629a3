"""Whether a run starts, starts over or resumes, and whether it may resume.

One behaviour for every trainer (``leanconv train``, ``leanconv train-classifier``):

- no checkpoint in the run folder: the run starts; with ``--resume`` it says
  that it found none and starts a new run (so a job script can always pass
  ``--resume``);
- a checkpoint there: ``--resume`` continues it, ``--force`` starts over
  (overwriting it), neither is an error naming both options;
- ``--resume`` and ``--force`` together are an error;
- a resumed run must have the settings that decide its result (the trainer's
  resume keys) equal to its checkpoint's, else the error names every
  setting that differs with both values.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["start_or_resume", "changed_settings", "resume_refusal", "check_resume"]


def start_or_resume(path: str | os.PathLike | None, *, resume: bool, force: bool,
                    log: Callable[[str], Any] = print) -> bool:
    """True when the run should continue from the checkpoint at ``path``, False when it starts anew.

    ``path`` None: the run writes no checkpoint.  Raises ValueError for ``resume`` with
    ``force`` and FileExistsError for an existing checkpoint with neither; ``log`` gets a
    line when ``--resume`` finds no checkpoint or ``--force`` replaces one.
    """
    if resume and force:
        raise ValueError("--resume and --force exclude each other: --resume continues the run in --out, "
                         "--force starts it over")
    if path is None:
        if resume:
            log("--resume: this run writes no checkpoint, so there is none to continue: starting a new run")
        return False
    path = Path(path)
    if path.exists():
        if resume:
            return True
        if force:
            log(f"--force: starting over; {path} will be overwritten")
            return False
        raise FileExistsError(f"{path} exists: continue that run with --resume, start it over with --force, "
                              "or choose another --out")
    if resume:
        log(f"--resume: no checkpoint at {path}: starting a new run")
    return False


def changed_settings(saved: Mapping[str, Any], current: Mapping[str, Any], keys: Iterable[str] | None = None,
                     optional: Iterable[str] = ()) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, current value)`` for every key of ``keys`` (default: all of
    ``current``) where the settings saved in a checkpoint differ from ``current``.  Keys in
    ``optional`` that ``saved`` lacks (settings earlier versions did not record) are skipped."""
    optional = set(optional)
    return [(k, saved.get(k), current[k]) for k in (current if keys is None else keys)
            if saved.get(k) != current[k] and not (k in optional and k not in saved)]


def resume_refusal(changed: list[tuple[str, Any, Any]]) -> str:
    """The one-line refusal of a resume whose settings differ from its checkpoint's, naming
    each differing setting with this run's value and the checkpoint's."""
    parts = "; ".join(f"{k}={mine!r} differs from the checkpoint's {theirs!r}" for k, theirs, mine in changed)
    return (f"--resume: {parts}; resume with the checkpoint's settings, start over with --force, "
            "or train into another --out")


def check_resume(saved: Mapping[str, Any], current: Mapping[str, Any], keys: Iterable[str],
                 optional: Iterable[str] = ()) -> None:
    """Raise ValueError (see :func:`resume_refusal`) when a setting of ``keys`` differs between
    the checkpoint's ``saved`` settings and the ``current`` ones."""
    changed = changed_settings(saved, current, keys, optional)
    if changed:
        raise ValueError(resume_refusal(changed))
