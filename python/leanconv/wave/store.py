"""On-disk wave data sets: shards of ``.npy`` files plus a JSON manifest.

Layout of a data-set folder::

    manifest.json
    shard-00000.frames.npy     float32 (n, T, H, W): frames of n trajectories
    shard-00000.velocity.npy   float32 (n, H, W):    their velocity models
    shard-00001.frames.npy ...

``.npy`` is numpy's own format (a short header, then the raw little-endian
array), so ``numpy.load(path, mmap_mode="r")`` maps a shard without reading it.
``manifest.json`` holds ``format`` (``"leanconv.wave-dataset"``),
``format_version`` (1), ``leanconv_version``, ``seed``, ``samples``, the
generating ``config`` (:class:`DatasetConfig`), the ``solver`` settings
(``dt``, ``every``, ``snapshot_dt``, boundary, ...), ``generator`` (device,
step backend and torch version, for information), ``complete``, and per
shard its ``index``, first trajectory ``start``, ``count`` and per file its
``name``, ``shape``, ``dtype``, ``bytes`` and ``sha256``.

Every file is written under a temporary name and renamed into place, the
manifest after each finished shard; a rerun with the same settings skips the
shards that verify and makes the rest.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes
from .generate import DatasetConfig, simulate_trajectories

__all__ = [
    "DatasetError",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "write_dataset",
    "read_manifest",
    "verify_dataset",
    "VerifyReport",
    "Problem",
    "shard_names",
]

FORMAT = "leanconv.wave-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = ("frames", "velocity")
_OURS = re.compile(r"^(manifest\.json|preview\.png|shard-\d{5}\.(frames|velocity)\.npy|\..*\.tmp)$")


class DatasetError(ValueError):
    """A data set folder is missing, incomplete, damaged or made with other settings."""


def shard_names(index: int) -> dict[str, str]:
    """File names of shard ``index``: ``{"frames": ..., "velocity": ...}``."""
    return {name: f"shard-{index:05d}.{name}.npy" for name in ARRAYS}


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    atomic_write_bytes(root / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def _new_manifest(config: DatasetConfig, samples: int, seed: int) -> dict[str, Any]:
    from .._version import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "leanconv_version": __version__,
        "seed": seed,
        "samples": samples,
        "config": config.to_dict(),
        "solver": config.solver_settings(),
        "complete": False,
        "shards": [],
    }


def _generator_info(device: str | None) -> dict[str, Any]:
    """What computed the frames (informational; the fused kernel and plain torch ops differ in round-off)."""
    import torch

    from .solver import _choose_backend

    dev = torch.device(device or "cpu")
    return {"device": dev.type, "backend": _choose_backend("auto", dev), "torch": torch.__version__}


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """Load and sanity-check ``root/manifest.json``; raise :class:`DatasetError` naming what is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data set folder {str(root)!r} does not exist")
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path}: no manifest; this is not a leanconv wave data set (or its writing never began)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            f"{path}: format version {manifest.get('format_version')!r}; this leanconv reads version {FORMAT_VERSION}"
        )
    for key in ("seed", "samples", "config", "solver", "shards", "complete"):
        if key not in manifest:
            raise DatasetError(f"{path}: manifest lacks {key!r}")
    return manifest


def _expected_shards(samples: int, shard_size: int) -> list[tuple[int, int, int]]:
    return [(i, start, min(shard_size, samples - start)) for i, start in enumerate(range(0, samples, shard_size))]


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
    """Check a data set folder: manifest, every shard's presence, size, header and (``full``) SHA-256.

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
    listed = {s["index"]: s for s in manifest["shards"]}
    shard_size = manifest["config"].get("shard_size", 0)
    for index, start, count in _expected_shards(manifest["samples"], shard_size):
        shard = listed.get(index)
        if shard is None:
            report.problems.append(
                Problem(f"shard-{index:05d}", "incomplete",
                        "not written yet; rerun `leanconv simulate` with the same arguments to resume")
            )
            continue
        if shard["start"] != start or shard["count"] != count:
            report.problems.append(Problem(f"shard-{index:05d}", "manifest", "trajectory range disagrees with samples/shard_size"))
            continue
        report.problems.extend(check_shard(root, shard, full))
        report.shards_checked += 1
        report.bytes_checked += sum(shard["files"][a]["bytes"] for a in ARRAYS)
    if not report.problems and not manifest["complete"]:
        report.problems.append(Problem(MANIFEST, "incomplete", "the run that wrote it did not finish"))
    return report


def _prepare_folder(root: Path, manifest: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """Create ``root`` or validate an existing one for resuming; return the manifest to continue."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"--out {str(root)!r} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    entries = sorted(p.name for p in root.iterdir())
    if (root / MANIFEST).exists():
        try:
            old = read_manifest(root)
        except DatasetError:
            old = None
        same = old is not None and all(old[k] == manifest[k] for k in ("seed", "samples", "config", "solver"))
        if same:
            return old
        if not overwrite:
            raise DatasetError(
                f"{root} holds a data set made with other settings (seed, samples or config differ); "
                "choose another folder or pass --overwrite to replace it"
            )
    elif entries and not overwrite:
        foreign = [e for e in entries if not _OURS.match(e)]
        if foreign:
            raise DatasetError(
                f"{root} is not empty and holds no data set (e.g. {foreign[0]!r}); choose an empty or new folder"
            )
    if overwrite:
        for e in entries:
            if _OURS.match(e):
                (root / e).unlink()
    return manifest


def write_dataset(
    root: str | os.PathLike,
    config: DatasetConfig,
    samples: int,
    seed: int = 0,
    *,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Simulate ``samples`` trajectories into the folder ``root`` (resumable, atomic).

    Shards already present and intact (size, header and SHA-256 match the
    manifest) are skipped, so an interrupted run continues where it stopped;
    a folder holding another data set is refused unless ``overwrite``.  The
    same ``(config, samples, seed)`` gives the same bytes on the same machine
    and torch build.  Returns ``root`` as a Path.
    """
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    root = Path(root)
    manifest = _prepare_folder(root, _new_manifest(config, samples, seed), overwrite)
    manifest["generator"] = _generator_info(device)
    done = {s["index"]: s for s in manifest["shards"]}
    todo = []
    for index, start, count in _expected_shards(samples, config.shard_size):
        shard = done.get(index)
        if shard is not None and not check_shard(root, shard, full=True):
            continue
        done.pop(index, None)
        todo.append((index, start, count))
    manifest["shards"] = sorted(done.values(), key=lambda s: s["index"])
    manifest["complete"] = False
    _write_manifest(root, manifest)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=samples, initial=samples - sum(c for _, _, c in todo), unit="traj",
                   desc=f"simulate {root.name}", dynamic_ncols=True)
    try:
        for index, start, count in todo:
            frames, velocity = simulate_trajectories(
                config, seed, range(start, start + count), device=device,
                progress=None if bar is None else bar.update,
            )
            files = {}
            for name, array in zip(ARRAYS, (frames, velocity)):
                data = _npy_bytes(array)
                fname = shard_names(index)[name]
                atomic_write_bytes(root / fname, data)
                files[name] = {
                    "name": fname,
                    "shape": list(array.shape),
                    "dtype": str(array.dtype),
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            manifest["shards"].append({"index": index, "start": start, "count": count, "files": files})
            manifest["shards"].sort(key=lambda s: s["index"])
            _write_manifest(root, manifest)
    finally:
        if bar is not None:
            bar.close()
    manifest["complete"] = True
    _write_manifest(root, manifest)
    return root


def iter_shards(manifest: dict[str, Any]) -> Iterable[dict[str, Any]]:
    return sorted(manifest["shards"], key=lambda s: s["index"])
