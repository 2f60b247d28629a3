"""Data-set files: manifest, checksums, atomic and resumable writes, reproducibility, verification."""
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from leanconv.wave import (DatasetConfig, DatasetError, WaveSolver, generate, open_dataset,
                           reference_rollout, verify_dataset, write_dataset)
from leanconv.wave import store

CONFIG = DatasetConfig(grid=16, steps=24, every=3, shard_size=4, scheme="q1")  # the Q1 scheme's data (fd4: test_fd4)
SAMPLES = 10  # shards of 4, 4, 2


def files(root):
    return sorted(p for p in os.listdir(root))


def read_bytes(root):
    return {name: (root / name).read_bytes() for name in files(root)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "data"
    write_dataset(root, CONFIG, SAMPLES, seed=3, progress=False)
    return root


def test_layout_and_manifest(dataset):
    assert files(dataset) == ["manifest.json"] + [f"shard-0000{i}.{a}.npy" for i in range(3) for a in ("frames", "velocity")]
    m = json.loads((dataset / "manifest.json").read_text())
    assert m["format"] == "leanconv.wave-dataset" and m["format_version"] == 1
    assert m["seed"] == 3 and m["samples"] == SAMPLES and m["complete"] is True
    assert m["leanconv_version"]
    assert m["solver"]["every"] == 3 and m["solver"]["frames"] == 9
    assert m["solver"]["dt"] == pytest.approx(0.5 * (1 / 15) / 2.0)  # courant * h / c_max
    for shard, count in zip(m["shards"], (4, 4, 2)):
        assert shard["count"] == count
        for entry in shard["files"].values():
            data = (dataset / entry["name"]).read_bytes()
            assert len(data) == entry["bytes"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    frames = np.load(dataset / "shard-00002.frames.npy", mmap_mode="r")
    assert frames.shape == (2, 9, 16, 16) and frames.dtype == np.float32


def test_contents_are_the_simulation(dataset):
    data = open_dataset(dataset)
    assert len(data) == SAMPLES
    cfg = data.config
    for i in (0, 5, 9):
        c, fr = data.velocity(i), data.frames(i)
        assert cfg.c_min <= c.min() and c.max() <= cfg.c_max
        # independently re-simulate trajectory i from its stored first frame and velocity
        s = WaveSolver(torch.tensor(c, dtype=torch.float64), spacing=cfg.h, dt=cfg.dt)
        again = s.run(torch.tensor(fr[0], dtype=torch.float64), steps=cfg.steps, every=cfg.every)[0].numpy()
        assert np.abs(again - fr).max() < 1e-5 * np.abs(fr).max()
        assert np.abs(fr[-1] - fr[0]).max() > 0.05  # not a frozen field


def test_frame_zero_is_a_pulse_at_rest(dataset):
    data = open_dataset(dataset)
    fr = data.frames(0)
    # the field starts as Gaussian bumps: a smooth field with its extremum inside the domain
    iy, ix = np.unravel_index(np.abs(fr[0]).argmax(), fr[0].shape)
    assert 0 < iy < 15 and 0 < ix < 15


def test_same_seed_same_bytes(dataset, tmp_path):
    other = tmp_path / "again"
    write_dataset(other, CONFIG, SAMPLES, seed=3, progress=False)
    assert read_bytes(other) == read_bytes(dataset)
    different = tmp_path / "seed4"
    write_dataset(different, CONFIG, SAMPLES, seed=4, progress=False)
    assert (different / "shard-00000.frames.npy").read_bytes() != (dataset / "shard-00000.frames.npy").read_bytes()


def test_in_memory_generation_equals_files(dataset):
    mem = generate(CONFIG, SAMPLES, seed=3)
    fr, ve = mem.arrays()
    fr2, ve2 = open_dataset(dataset).arrays()
    np.testing.assert_array_equal(fr, fr2)
    np.testing.assert_array_equal(ve, ve2)


def test_resume_rewrites_only_missing_shards(dataset, tmp_path):
    root = tmp_path / "resume"
    write_dataset(root, CONFIG, SAMPLES, seed=3, progress=False)
    (root / "shard-00001.frames.npy").unlink()
    stamps = {n: (root / n).stat().st_mtime_ns for n in files(root) if "00001" not in n and n != "manifest.json"}
    write_dataset(root, CONFIG, SAMPLES, seed=3, progress=False)
    assert {n: (root / n).stat().st_mtime_ns for n in stamps} == stamps
    assert read_bytes(root) == read_bytes(dataset)


def test_interrupted_run_resumes(dataset, tmp_path, monkeypatch):
    root = tmp_path / "interrupted"
    real = store.simulate_trajectories
    calls = []

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(store, "simulate_trajectories", flaky)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(root, CONFIG, SAMPLES, seed=3, progress=False)
    monkeypatch.setattr(store, "simulate_trajectories", real)
    m = json.loads((root / "manifest.json").read_text())
    assert m["complete"] is False and [s["index"] for s in m["shards"]] == [0]
    assert not [n for n in files(root) if n.endswith(".tmp")]
    with pytest.raises(DatasetError, match="incomplete"):
        open_dataset(root)
    report = verify_dataset(root)
    assert not report.ok and {p.name for p in report.problems} == {"shard-00001", "shard-00002"}
    calls.clear()
    monkeypatch.setattr(store, "simulate_trajectories", lambda *a, **k: calls.append(1) or real(*a, **k))
    write_dataset(root, CONFIG, SAMPLES, seed=3, progress=False)
    assert len(calls) == 2  # shards 1 and 2 only
    assert read_bytes(root) == read_bytes(dataset)


def test_other_settings_are_refused_unless_overwrite(dataset, tmp_path):
    root = tmp_path / "mismatch"
    write_dataset(root, CONFIG, SAMPLES, seed=3, progress=False)
    with pytest.raises(DatasetError, match="other settings"):
        write_dataset(root, CONFIG, SAMPLES, seed=5, progress=False)
    write_dataset(root, CONFIG, 4, seed=5, progress=False, overwrite=True)
    assert len(open_dataset(root)) == 4 and not (root / "shard-00002.frames.npy").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        write_dataset(foreign, CONFIG, SAMPLES, progress=False)


def damage(root, name, how):
    path = root / name
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 100])
    elif how == "altered":
        data = bytearray(path.read_bytes())
        data[-7] ^= 0x10  # one bit in the array data, same size
        path.write_bytes(bytes(data))
    elif how == "header":
        data = bytearray(path.read_bytes())
        data[20:40] = b"{'descr': '<f8',    "[:20]
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["missing", "truncated", "altered", "header"])
def test_damage_is_detected_and_named(dataset, tmp_path, how):
    import shutil

    root = tmp_path / how
    shutil.copytree(dataset, root)
    assert verify_dataset(root).ok
    damage(root, "shard-00001.velocity.npy", how)
    report = verify_dataset(root)
    assert [(p.name, p.kind) for p in report.problems] == [("shard-00001.velocity.npy", how)]
    with pytest.raises(DatasetError, match="shard-00001.velocity.npy"):
        open_dataset(root)
    from leanconv.wave import WaveWindows

    with pytest.raises(DatasetError, match="shard-00001.velocity.npy"):
        WaveWindows(root, 2, 2)


def test_quick_verify_skips_checksums_but_catches_sizes(dataset, tmp_path):
    import shutil

    root = tmp_path / "quick"
    shutil.copytree(dataset, root)
    damage(root, "shard-00000.frames.npy", "altered")
    assert verify_dataset(root, full=False).ok
    assert not verify_dataset(root, full=True).ok
    damage(root, "shard-00002.frames.npy", "truncated")
    assert verify_dataset(root, full=False).bad_files == ["shard-00002.frames.npy"]


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no manifest"):
        open_dataset(tmp_path / "empty")
    report = verify_dataset(tmp_path / "empty")
    assert report.bad_files == ["manifest.json"]


def test_reference_rollout_continues_stored_frames(dataset):
    data = open_dataset(dataset)
    fr, ve = data.arrays()
    out = reference_rollout(data, torch.from_numpy(ve[:4]), torch.from_numpy(fr[:4, 1]), torch.from_numpy(fr[:4, 2]), 6)
    assert out.shape == (4, 6, 16, 16)
    assert (out.numpy() - fr[:4, 3:9]).__abs__().max() < 1e-5 * np.abs(fr[:4]).max()
    E = data.solver(ve[:4]).energy(torch.from_numpy(fr[:4, 2]), torch.from_numpy(fr[:4, 3]), interval=data.every)
    assert E.shape == (4,) and bool((E > 0).all())


def test_snapshot_energy_is_nearly_constant_over_a_reflecting_run():
    from leanconv.wave import snapshot_energy

    for every, tol in ((1, 1e-6), (2, 0.02)):  # measured: 6.6e-8 (float32 frames), 6.7e-3
        cfg = DatasetConfig(grid=32, steps=200, every=every, shard_size=8, dtype="float64", scheme="q1")
        data = generate(cfg, 3, seed=0)
        fr, ve = data.arrays()
        E = torch.stack([snapshot_energy(data, ve, fr[:, k], fr[:, k + 1]) for k in range(fr.shape[1] - 1)], dim=1)
        drift = (E / E[:, :1] - 1).abs().max()
        assert drift < tol  # O(snapshot_dt^2) variation, no growth or decay
    # a field that is not the solution has a clearly different energy history
    E_wrong = snapshot_energy(data, ve, fr[:, 10], fr[:, 10] * 1.5)
    assert bool(((E_wrong / E[:, 10] - 1).abs() > 0.2).all())


def test_config_validation():
    with pytest.raises(ValueError, match="grid must be an integer >= 8"):
        DatasetConfig(grid=4)
    with pytest.raises(ValueError, match="media must be a non-empty subset"):
        DatasetConfig(media=("granite",))
    with pytest.raises(ValueError, match="every .* must not exceed steps"):
        DatasetConfig(steps=5, every=10)
    with pytest.raises(ValueError, match="a sponge needs at least one absorbing side"):
        DatasetConfig(sponge=8)
    assert DatasetConfig.from_dict(CONFIG.to_dict()) == CONFIG


def test_ricker_data_set(tmp_path):
    cfg = DatasetConfig(grid=16, steps=40, every=4, source="ricker", boundary="absorbing", sponge=3, shard_size=8)
    data = generate(cfg, 3, seed=1)
    fr, _ = data.arrays()
    assert np.abs(fr[:, 0]).max() == 0 and np.abs(fr[:, -1]).max() > 0  # starts at rest, the source excites it
