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

:func:`leanconv.wave.verify.verify_dataset` (``leanconv dataset verify``)
checks the manifest's own consistency (counts, shard list, the solver settings
re-derived from the config, and the seed against the stored velocity models)
and every shard file; :func:`leanconv.wave.open_dataset` refuses a data set
that fails these checks.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
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
    "shard_names",
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
    from .verify import _is_int, check_shard, manifest_problems  # (verify imports this module)

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
