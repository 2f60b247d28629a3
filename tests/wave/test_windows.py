"""WaveWindows: the torch Dataset the surrogates train on."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from leanconv.wave import DatasetConfig, WaveWindows, generate, split_trajectories, write_dataset

CONFIG = DatasetConfig(grid=12, steps=30, every=3, shard_size=7)  # 11 frames


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("win") / "data"
    write_dataset(root, CONFIG, 20, seed=0, progress=False)
    return root


def test_items_are_windows_of_the_frames(folder):
    w = WaveWindows(folder, t_in=3, t_out=2, stride=2, split="all")
    assert w.windows_per_trajectory == (11 - 5) // 2 + 1 == 4
    assert len(w) == 20 * 4
    x, c, y = w[6]  # trajectory 1, window 2 -> frames 4..8
    assert x.shape == (3, 12, 12) and c.shape == (1, 12, 12) and y.shape == (2, 12, 12)
    assert x.dtype == c.dtype == y.dtype == torch.float32
    frames = np.load(folder / "shard-00000.frames.npy")[1]
    vel = np.load(folder / "shard-00000.velocity.npy")[1]
    np.testing.assert_array_equal(x.numpy(), frames[4:7])
    np.testing.assert_array_equal(y.numpy(), frames[7:9])
    np.testing.assert_array_equal(c[0].numpy(), vel)
    # across a shard boundary (trajectory 8 lives in shard 1 at row 1)
    _, _, y8 = w[8 * 4 + 3]
    np.testing.assert_array_equal(y8.numpy(), np.load(folder / "shard-00001.frames.npy")[1, 9:11])


def test_splits_partition_trajectories_by_seed():
    parts = [split_trajectories(50, s, seed=1) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [40, 5, 5]
    assert sorted(np.concatenate(parts).tolist()) == list(range(50))
    assert np.array_equal(split_trajectories(50, "val", seed=1), parts[1])
    assert not np.array_equal(split_trajectories(50, "val", seed=2), parts[1])


def test_dataset_splits_do_not_share_trajectories(folder):
    seen = {}
    for split in ("train", "val", "test"):
        w = WaveWindows(folder, 2, 2, split=split, split_seed=3)
        seen[split] = set(w.trajectories.tolist())
        assert {w.window(k)[0] for k in range(len(w))} == seen[split]
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"]) and not (seen["val"] & seen["test"])
    assert len(seen["train"] | seen["val"] | seen["test"]) == 20


def test_dataloader_with_workers_matches_direct_reads(folder):
    w = WaveWindows(folder, 2, 3, split="train")
    loader = DataLoader(w, batch_size=8, shuffle=False, num_workers=2)
    xs, cs, ys = zip(*loader)
    x, c, y = torch.cat(xs), torch.cat(cs), torch.cat(ys)
    assert x.shape == (len(w), 2, 12, 12)
    for k in (0, 17, len(w) - 1):
        a, b, d = w[k]
        assert torch.equal(x[k], a) and torch.equal(c[k], b) and torch.equal(y[k], d)


def test_in_memory_data_works_the_same(folder):
    mem = generate(CONFIG, 20, seed=0)
    a, b = WaveWindows(mem, 4, 4, split="val"), WaveWindows(folder, 4, 4, split="val")
    assert len(a) == len(b)
    for k in range(len(a)):
        assert all(torch.equal(p, q) for p, q in zip(a[k], b[k]))


def test_bad_window_settings(folder):
    with pytest.raises(ValueError, match="do not fit in a trajectory of 11 frames"):
        WaveWindows(folder, 8, 4)
    with pytest.raises(ValueError, match="t_in must be a positive integer"):
        WaveWindows(folder, 0, 4)
    with pytest.raises(ValueError, match="split 'val' is empty"):
        WaveWindows(generate(CONFIG, 3, seed=0), 2, 2, split="val", fractions=(0.9, 0.05, 0.05))
    with pytest.raises(ValueError, match="fractions must be"):
        WaveWindows(folder, 2, 2, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(IndexError):
        WaveWindows(folder, 2, 2)[10_000]
