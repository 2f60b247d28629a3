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
shards that verify and makes the rest (and writes nothing when all are there).
A writer holds an exclusive lock on the folder (``flock`` of the folder itself,
so no lock file), so a second writer into the same folder stops at once.

:func:`verify_dataset` (``leanconv dataset verify``) checks the manifest's own
consistency (:func:`manifest_problems`: counts, shard list, the solver settings
re-derived from the config, and the seed against the stored velocity models)
and every shard file; :func:`leanconv.wave.open_dataset` refuses a data set
that fails these checks.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
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
    "manifest_problems",
    "seed_problem",
    "dataset_digest",
    "dataset_bytes",
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
    if root.exists() and not root.is_dir():
        raise DatasetError(f"data set {str(root)!r} is a file, not a data set folder (pass the folder that holds "
                           f"{MANIFEST})")
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


def dataset_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of what identifies a data set: its manifest without the informational
    ``generator`` and ``leanconv_version`` (the per-shard SHA-256 make it name the contents)."""
    core = {k: v for k, v in manifest.items() if k not in ("generator", "leanconv_version")}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


def _npy_header_bytes(shape: tuple[int, ...]) -> int:
    return len(_npy_bytes(np.empty((0,) + tuple(shape[1:]), np.float32))) + 16  # header; the shape's digits vary a little


def dataset_bytes(config: DatasetConfig, samples: int, shards: Iterable[tuple[int, int, int]] | None = None) -> int:
    """Bytes of the shard files of ``samples`` trajectories made with ``config`` (or of the given
    ``(index, start, count)`` shards only)."""
    n, t = config.frame_grid, config.frames
    shards = _expected_shards(samples, config.shard_size) if shards is None else list(shards)
    per = 4 * (t * n * n + n * n)
    return sum(count * per + _npy_header_bytes((count, t, n, n)) + _npy_header_bytes((count, n, n))
               for _, _, count in shards)


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


@contextlib.contextmanager
def _writer_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder ``root`` (``flock`` of the folder itself:
    no file is made); a second writer gets :class:`DatasetError` at once."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no lock
        yield
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DatasetError(
                f"{root} is being written by another process (another `leanconv simulate` into the same --out?); "
                "wait for it to finish, or choose another folder") from None
        yield
    finally:
        os.close(fd)  # releases the lock


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

    Checked before anything is written: ``samples``, ``seed``, ``device``, that
    ``root`` can be made and written, and that its file system has room for
    the shards still to make.  The folder is locked while it is written: a
    second writer raises :class:`DatasetError` at once.
    """
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    from .._preflight import check_device, check_free_space, check_output_dir

    check_device(device or "cpu")
    root = Path(root)
    check_output_dir(root, "--out")
    fresh = not root.exists()
    if fresh:  # before making the folder: a refusal leaves nothing behind
        check_free_space(root, dataset_bytes(config, samples))
    root.mkdir(parents=True, exist_ok=True)
    with _writer_lock(root):
        return _write_locked(root, config, samples, seed, device, overwrite, progress)


def _write_locked(root: Path, config: DatasetConfig, samples: int, seed: int, device: str | None,
                  overwrite: bool, progress: bool) -> Path:
    from .._preflight import check_free_space

    manifest = _prepare_folder(root, _new_manifest(config, samples, seed), overwrite)
    problems = manifest_problems(manifest)  # an edited manifest: its flagged entries are made again
    flagged = {p.name for p in problems}
    done = {s["index"]: s for s in manifest["shards"]
            if isinstance(s, dict) and _is_int(s.get("index")) and f"shard-{s['index']:05d}" not in flagged}
    todo = []
    for index, start, count in _expected_shards(samples, config.shard_size):
        shard = done.get(index)
        if shard is not None and not check_shard(root, shard, full=True):
            continue
        done.pop(index, None)
        todo.append((index, start, count))
    if not todo and manifest["complete"] is True and not problems:
        return root  # nothing to do: leave the folder as it is
    check_free_space(root, dataset_bytes(config, samples, todo))
    manifest["generator"] = _generator_info(device)
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
