"""Verification of wave data sets: the manifest's own consistency and every shard file.

:func:`manifest_problems` checks counts, the shard list, the solver settings
re-derived from the generating config and the types of every entry;
:func:`seed_problem` re-draws a shard's velocity models from the seed;
:func:`check_shard` checks a shard's files (size, shape, dtype, SHA-256);
:func:`verify_dataset` (``leanconv dataset verify``) does all of it and
returns a :class:`VerifyReport`.  The format itself is described in
:mod:`leanconv.wave.store`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .generate import DatasetConfig
from .store import (ARRAYS, MANIFEST, DatasetError, _expected_shards, _sha256, read_manifest,
                    shard_names)

__all__ = ["Problem", "VerifyReport", "manifest_problems", "seed_problem", "check_shard", "verify_dataset"]


@dataclass
class Problem:
    """One thing wrong with a data set: the file (or shard) and what."""

    name: str
    kind: str  # missing | truncated | size | altered | header | incomplete | manifest
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.kind}: {self.message}"


@dataclass
class VerifyReport:
    """Result of :func:`verify_dataset`: ``ok`` and the list of problems."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    shards_checked: int = 0
    bytes_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_files(self) -> list[str]:
        return [p.name for p in self.problems]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-12 relative (JSON round trips are exact, arithmetic order may not be)."""
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
                and not isinstance(b, bool) and math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def manifest_problems(manifest: dict[str, Any]) -> list[Problem]:
    """The manifest's own inconsistencies (no file is read): ``seed`` and ``samples``,
    a valid ``config``, ``solver`` equal to the settings re-derived from the config,
    and a shard list that covers ``0..samples-1`` in ``shard_size`` steps, every
    entry with its two files, their names, float32 dtype and shapes
    ``(count, frames, H, W)`` / ``(count, H, W)``.  Missing shards are a problem
    only in a manifest marked complete (else the writing is still under way)."""
    problems: list[Problem] = []

    def bad(message: str, name: str = MANIFEST) -> None:
        problems.append(Problem(name, "manifest", message))

    seed, samples = manifest["seed"], manifest["samples"]
    if not _is_int(seed) or seed < 0:
        bad(f"seed must be a non-negative integer, got {seed!r}")
    if not _is_int(samples) or samples < 1:
        bad(f"samples must be a positive integer, got {samples!r}")
        return problems
    if not isinstance(manifest["complete"], bool):
        bad(f"complete must be true or false, got {manifest['complete']!r}")
    try:
        if not isinstance(manifest["config"], dict):
            raise ValueError(f"expected a mapping, got {type(manifest['config']).__name__}")
        config = DatasetConfig.from_dict(manifest["config"])
    except (ValueError, TypeError) as exc:
        bad(f"config is not valid: {exc}")
        return problems
    expected = config.solver_settings()
    solver = manifest["solver"]
    if not isinstance(solver, dict):
        bad(f"solver must be a mapping, got {solver!r}")
    else:
        for key in expected:
            if key not in solver:
                bad(f"solver lacks {key!r} (the config gives {expected[key]!r})")
            elif not _same(solver[key], expected[key]):
                bad(f"solver.{key} is {solver[key]!r}, but the config gives {expected[key]!r} "
                    "(the manifest was edited?)")
        for key in sorted(set(solver) - set(expected)):
            bad(f"solver.{key} is not a setting this format knows")
    shards = manifest["shards"]
    if not isinstance(shards, list) or not all(isinstance(s, dict) for s in shards):
        bad("shards must be a list of shard entries")
        return problems
    want = {i: (start, count) for i, start, count in _expected_shards(samples, config.shard_size)}
    n, t = config.frame_grid, config.frames
    seen: set[int] = set()
    for s in shards:
        index = s.get("index")
        if not _is_int(index):
            bad(f"a shard entry has no valid index ({index!r})")
            continue
        name = f"shard-{index:05d}"
        if index in seen:
            bad("listed twice in the manifest", name)
            continue
        seen.add(index)
        if index not in want:
            bad(f"not part of a data set of {samples} trajectories in shards of {config.shard_size} "
                f"(shards 0 to {len(want) - 1})", name)
            continue
        start, count = want[index]
        if s.get("start") != start or s.get("count") != count:
            bad(f"holds trajectories from {s.get('start')!r}, {s.get('count')!r} of them; {samples} trajectories "
                f"in shards of {config.shard_size} put {count} from {start} here", name)
            continue
        files = s.get("files")
        if not isinstance(files, dict) or sorted(files) != sorted(ARRAYS):
            bad(f"must list the files {', '.join(ARRAYS)}", name)
            continue
        shapes = {"frames": [count, t, n, n], "velocity": [count, n, n]}
        for a in ARRAYS:
            e = files[a]
            if not isinstance(e, dict) or not {"name", "shape", "dtype", "bytes", "sha256"} <= set(e):
                bad(f"the {a} entry lacks name, shape, dtype, bytes or sha256", name)
            elif e["name"] != shard_names(index)[a]:
                bad(f"the {a} file is named {e['name']!r}, expected {shard_names(index)[a]!r}", name)
            elif e["dtype"] != "float32" or e["shape"] != shapes[a] or not _is_int(e["bytes"]):
                bad(f"{e['name']} is recorded as {e['dtype']}{e['shape']}; {count} trajectories of this config "
                    f"are float32{shapes[a]}", name)
    if manifest["complete"] is True:
        for index in sorted(set(want) - seen):
            bad("missing from the shard list of a data set marked complete (the manifest was edited?)",
                f"shard-{index:05d}")
    return problems


def seed_problem(root: Path, manifest: dict[str, Any], shard: dict[str, Any]) -> Problem | None:
    """Check the manifest's ``seed`` (and media settings) against the stored velocity model of
    the first trajectory of ``shard`` (a sound shard), re-drawn from them; None when they agree."""
    from .generate import solver_velocity

    config = DatasetConfig.from_dict(manifest["config"])
    path = root / shard["files"]["velocity"]["name"]
    try:
        stored = np.load(path, mmap_mode="r", allow_pickle=False)[0]
    except (OSError, ValueError, IndexError) as exc:
        return Problem(path.name, "header", f"not a readable .npy file ({exc})")
    k = config.coarsen
    drawn = solver_velocity(config, manifest["seed"], [shard["start"]])[0][::k, ::k].astype(np.float32)
    if stored.shape != drawn.shape or not np.allclose(stored, drawn, rtol=1e-5, atol=0.0):
        return Problem(MANIFEST, "manifest",
                       f"seed {manifest['seed']!r}: the stored velocity model of trajectory {shard['start']} is not "
                       "the one this seed and config give (the seed or the media settings were edited?)")
    return None


def _check_file(root: Path, entry: dict[str, Any], full: bool) -> Problem | None:
    """Check one shard file against its manifest entry (size, header, and optionally sha256)."""
    name = entry["name"]
    path = root / name
    if not path.is_file():
        return Problem(name, "missing", "file does not exist")
    size = path.stat().st_size
    if size < entry["bytes"]:
        return Problem(name, "truncated", f"{size} bytes, the manifest records {entry['bytes']}")
    if size != entry["bytes"]:
        return Problem(name, "size", f"{size} bytes, the manifest records {entry['bytes']}")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
    except Exception as exc:  # any parse failure of the header is damage
        return Problem(name, "header", f"not a readable .npy file ({exc})")
    if list(shape) != list(entry["shape"]) or str(dtype) != entry["dtype"] or fortran:
        return Problem(name, "header", f"holds {dtype}{list(shape)}, the manifest records {entry['dtype']}{entry['shape']}")
    if full and _sha256(path) != entry["sha256"]:
        return Problem(name, "altered", "SHA-256 differs from the manifest (the contents changed)")
    return None


def check_shard(root: Path, shard: dict[str, Any], full: bool) -> list[Problem]:
    """Problems of one manifest shard entry (empty when it is sound)."""
    return [p for p in (_check_file(root, shard["files"][a], full) for a in ARRAYS) if p is not None]


def verify_dataset(root: str | os.PathLike, full: bool = True) -> VerifyReport:
    """Check a data set folder: the manifest's consistency (:func:`manifest_problems`),
    every shard's presence, size, header and (``full``) SHA-256, and the seed
    against the first stored velocity model (:func:`seed_problem`).

    Never raises for a damaged data set; the report lists each problem with
    the file it concerns.
    """
    root = Path(root)
    report = VerifyReport(root)
    try:
        manifest = read_manifest(root)
    except DatasetError as exc:
        report.problems.append(Problem(MANIFEST, "manifest", str(exc)))
        return report
    report.problems.extend(manifest_problems(manifest))
    if any(p.name == MANIFEST for p in report.problems):  # settings unusable: the shards cannot be judged
        return report
    flagged = {p.name for p in report.problems}
    listed = {s["index"]: s for s in manifest["shards"]}
    seed_checked = False
    for index, start, count in _expected_shards(manifest["samples"], manifest["config"]["shard_size"]):
        shard = listed.get(index)
        name = f"shard-{index:05d}"
        if name in flagged:
            continue
        if shard is None:
            report.problems.append(
                Problem(name, "incomplete",
                        "not written yet; rerun `leanconv simulate` with the same arguments to resume")
            )
            continue
        problems = check_shard(root, shard, full)
        report.problems.extend(problems)
        report.shards_checked += 1
        report.bytes_checked += sum(shard["files"][a]["bytes"] for a in ARRAYS)
        if not problems and not seed_checked:
            seed_checked = True
            p = seed_problem(root, manifest, shard)
            if p is not None:
                report.problems.append(p)
    if not report.problems and not manifest["complete"]:
        report.problems.append(Problem(MANIFEST, "incomplete", "the run that wrote it did not finish"))
    return report
