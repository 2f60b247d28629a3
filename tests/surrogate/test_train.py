"""Training: the loss falls, resume continues bit-identically, DDP keeps ranks equal,
bad input gives clear errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import leanconv.surrogate.train as T
from leanconv.surrogate.train import load_model, train



def test_loss_falls_and_outputs_written(tiny_data, tmp_path, tiny_config):
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=3)
    summary = train(cfg)
    hist = summary["history"]
    assert len(hist) == 3
    assert hist[-1]["val_loss"] < 0.7 * hist[0]["val_loss"]
    assert (tmp_path / "run" / "model.pt").is_file() and (tmp_path / "run" / "checkpoint.pt").is_file()
    assert json.loads((tmp_path / "run" / "history.json").read_text())["params"] == summary["params"]
    assert summary["peak_train_memory_bytes"] and summary["peak_train_memory_bytes"] > 0
    model, info = load_model(tmp_path / "run" / "model.pt")
    assert info["params"] == summary["params"]


def _weights(path):
    return torch.load(path, weights_only=False)["model"]


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _interrupt_then_resume(tiny_data, tmp_path, tiny_config, monkeypatch, name, interrupt, at, **settings):
    """Train a full run, and the same run interrupted (Ctrl-C) by ``interrupt`` patched over ``T.<name>``;
    its checkpoint must be at (epoch, batch) ``at``, and resuming it must give the full run's weights."""
    train(tiny_config(tiny_data, tmp_path / "full", **settings))
    cfg = tiny_config(tiny_data, tmp_path / "part", **settings)
    monkeypatch.setattr(T, name, interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.undo()
    state = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    assert (state["epoch"], state["batch"]) == at
    train(cfg, resume=True)
    _assert_same(_weights(tmp_path / "full" / "model.pt"), _weights(tmp_path / "part" / "model.pt"))


def test_resume_after_epoch_is_bit_identical(tiny_data, tmp_path, tiny_config, monkeypatch):
    # an interrupted run: Ctrl-C right after the first epoch's checkpoint
    real = T._epoch_batches

    def stop_at_second_epoch(n, batch, seed, epoch, rank, world):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(n, batch, seed, epoch, rank, world)

    _interrupt_then_resume(tiny_data, tmp_path, tiny_config, monkeypatch, "_epoch_batches", stop_at_second_epoch,
                           (1, 0), epochs=3, conv="factorized", rank=0.3)


def test_resume_mid_epoch_is_bit_identical(tiny_data, tmp_path, tiny_config, monkeypatch):
    real, calls = T._collate, {"n": 0}

    def interrupt(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # the memory probe, then 3 batches, then Ctrl-C
            raise KeyboardInterrupt
        return real(*a, **k)

    _interrupt_then_resume(tiny_data, tmp_path, tiny_config, monkeypatch, "_collate", interrupt, (0, 3), epochs=2)


def test_existing_run_needs_resume(tiny_data, tmp_path, tiny_config):
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1)
    train(cfg)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg)
    other = tiny_config(tiny_data, tmp_path / "run", epochs=1, width=8)
    with pytest.raises(ValueError, match="width"):
        train(other, resume=True)


def test_resume_without_a_checkpoint_starts_a_new_run_and_force_starts_over(tiny_data, tmp_path, tiny_config,
                                                                            capsys):
    from leanconv.cli import main

    run = tmp_path / "run"
    lines = []
    first = train(tiny_config(tiny_data, run, epochs=1), resume=True, log=lines.append)
    assert lines == [f"--resume: no checkpoint at {run / 'checkpoint.pt'}: starting a new run"]
    assert [h["epoch"] for h in first["history"]] == [1]
    before = _weights(run / "model.pt")
    # other settings: --resume would refuse them, --force starts the run over with them
    train(tiny_config(tiny_data, run, epochs=1, lr=1e-2), force=True, log=lines.append)
    assert lines[-1].startswith("--force: starting over")
    assert torch.load(run / "checkpoint.pt", weights_only=False)["config"]["lr"] == 1e-2
    after = _weights(run / "model.pt")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="exclude each other"):
        train(tiny_config(tiny_data, run, epochs=1), resume=True, force=True)
    assert main(["train", "--data", str(tiny_data), "--out", str(run), "--resume", "--force"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_checkpoint_of_an_earlier_version(tiny_data, tmp_path, tiny_config):
    """Files without the format tag (written before it): --resume refuses the checkpoint saying why,
    the model still loads (rollout)."""
    run = tmp_path / "run"
    train(tiny_config(tiny_data, run, epochs=1))
    for name in ("model.pt", "checkpoint.pt"):
        state = torch.load(run / name, weights_only=False)
        assert state["format"] == "leanconv-checkpoint/2" and state["kind"] == "surrogate"
        del state["format"], state["kind"]
        torch.save(state, run / name)
    with pytest.raises(ValueError, match="checkpoint.pt has no format tag.*--force"):
        train(tiny_config(tiny_data, run, epochs=1), resume=True)
    for name in ("model.pt", "checkpoint.pt"):
        model, info = load_model(run / name)
        assert info["config"]["width"] == 4


def test_missing_data_set(tmp_path, tiny_config):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(tiny_config(tmp_path / "nope", tmp_path / "run"))


def test_damaged_data_set_is_refused(tiny_data, tmp_path, tiny_config):
    import shutil

    from leanconv.wave import DatasetError

    bad = tmp_path / "bad"
    shutil.copytree(tiny_data, bad)
    shard = sorted(bad.glob("*.frames.npy"))[0]
    raw = bytearray(shard.read_bytes())
    raw[-8:] = b"\x00" * 8 if raw[-8:] != b"\x00" * 8 else b"\x01" * 8
    shard.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=shard.name):
        train(tiny_config(bad, tmp_path / "run"))


def test_windows_longer_than_trajectories(tiny_data, tmp_path, tiny_config):
    with pytest.raises(ValueError, match="do not fit in a trajectory"):
        train(tiny_config(tiny_data, tmp_path / "run", t_in=4, t_out=5, unroll=2))


def test_two_process_ddp_ranks_end_equal(tiny_data, tmp_path, tiny_config):
    """torchrun, 2 processes, gloo on loopback: the replicas end with identical weights."""
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(29500 + os.getpid() % 1000), "-m", "leanconv", "train", "--data", str(tiny_data),
           "--out", str(out), "--width", "4", "--levels", "2", "--epochs", "2", "--batch-size", "2", "--quiet"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "history.json").read_text())
    assert summary["world"] == 2
    assert summary["rank_weight_max_diff"] == 0.0
    assert np.isfinite(summary["history"][-1]["val_loss"])


def test_resume_with_other_settings_is_refused(tiny_data, tmp_path, tiny_config):
    train(tiny_config(tiny_data, tmp_path / "run", epochs=1))
    with pytest.raises(ValueError, match="--resume: lr=0.01 differs from the checkpoint's 0.003"):
        train(tiny_config(tiny_data, tmp_path / "run", epochs=1, lr=1e-2), resume=True)
    # settings outside RESUME_KEYS (here the progress bar) may change
    train(tiny_config(tiny_data, tmp_path / "run", epochs=1, progress=True), resume=True)


def test_checkpoints_record_the_data_set(tiny_data, tmp_path, tiny_config):
    """model.pt and checkpoint.pt record the data set's manifest digest and layout (what --resume and
    rollout check); a checkpoint from before they were recorded still resumes."""
    from leanconv.wave import open_dataset
    from leanconv.wave.store import dataset_digest

    run = tmp_path / "run"
    train(tiny_config(tiny_data, run, epochs=1))
    wd = open_dataset(tiny_data)
    for name in ("model.pt", "checkpoint.pt"):
        config = torch.load(run / name, weights_only=False)["config"]
        assert config["data_digest"] == dataset_digest(wd.meta)
        assert config["data_layout"] == {"frame_shape": [17, 17], "snapshot_dt": wd.snapshot_dt,
                                         "channels": ["frames", "velocity"]}
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    for key in ("data_digest", "data_layout"):
        del state["config"][key]
    torch.save(state, run / "checkpoint.pt")
    train(tiny_config(tiny_data, run, epochs=1), resume=True)
