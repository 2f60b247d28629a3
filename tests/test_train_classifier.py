"""Classifier training on scikit-learn's digits: accuracy, checkpoint, resume, CLI."""
import json

import pytest
import torch

from leanconv.classify import data
from leanconv.classify import train as training
from leanconv.classify.train import TrainConfig, train_classifier
from leanconv.cli import main

# a small large-kernel net (K=13 dilated re-param blocks) on 12x12 digits: a few seconds on one core
FAST = dict(model="unireplknet_micro", model_kwargs=dict(depths=(1, 1), dims=(8, 16), kernel_sizes=13),
            image_size=12, epochs=2, lr=5e-3, augment=0.0)
# smaller still, for the checkpoint / resume mechanics
TINY = dict(model="convnext_micro", model_kwargs=dict(depths=(1,), dims=(8,)), image_size=8, epochs=2, augment=0.05)


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention on a shared machine
    yield
    torch.set_num_threads(n)


def test_digits_split():
    split = data.digits(16)
    assert split.x_train.shape[1:] == (1, 16, 16) and len(split.y_train) + len(split.y_test) == 1797
    assert abs(split.x_train.mean().item()) < 1e-4 and abs(split.x_train.std().item() - 1) < 1e-3
    assert torch.bincount(split.y_test).min() >= 30  # stratified
    with pytest.raises(ValueError, match="image_size"):
        data.digits(4)


def test_large_kernel_training_beats_chance(tmp_path, one_thread):
    result = train_classifier(TrainConfig(**FAST, out=str(tmp_path)), progress=False)
    assert result["test_accuracy"] > 0.6  # chance is 0.1
    assert result["reparam_test_accuracy"] == result["test_accuracy"]
    assert result["reparam_max_logit_diff"] < 1e-4
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result["test_accuracy"] and len(metrics["history"]) == 2


def test_checkpoint_and_resume(tmp_path, one_thread, monkeypatch):
    straight = train_classifier(TrainConfig(**TINY, out=str(tmp_path / "a")), progress=False)

    # crash right after the first checkpoint, then resume: same result as the straight run
    real_save = training.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(TrainConfig(**TINY, out=str(tmp_path / "b")), progress=False)
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["epoch"] == 1
    with pytest.raises(FileExistsError, match="--resume"):
        train_classifier(TrainConfig(**TINY, out=str(tmp_path / "b")), progress=False)
    with pytest.raises(ValueError, match="lr="):
        train_classifier(TrainConfig(**{**TINY, "lr": 1e-3}, out=str(tmp_path / "b")), resume=True, progress=False)
    resumed = train_classifier(TrainConfig(**TINY, out=str(tmp_path / "b")), resume=True, progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"] == straight["history"]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)


def test_checkpoint_format_and_an_earlier_one(tmp_path, one_thread, capsys):
    from leanconv.training import FORMAT

    cfg = TrainConfig(**{**TINY, "epochs": 1}, out=str(tmp_path))
    train_classifier(cfg, progress=False)
    path = tmp_path / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    assert state["format"] == FORMAT and state["kind"] == "classifier" and state["epoch"] == 1
    assert {"python", "numpy", "torch"} <= set(state["rng"])
    # a checkpoint of the earlier classifier format: --resume refuses it naming the tag, --force starts over
    state["format"] = "leanconv-classifier-checkpoint/1"
    del state["kind"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="'leanconv-classifier-checkpoint/1'.*--force"):
        train_classifier(cfg, resume=True, progress=False)
    lines = []
    train_classifier(cfg, force=True, progress=False, log=lines.append)
    assert lines[0].startswith("--force: starting over")
    assert torch.load(path, weights_only=False)["format"] == FORMAT


def test_cli(tmp_path, one_thread, capsys):
    assert main(["train-classifier", "--list"]) == 0
    assert "unireplknet_micro" in capsys.readouterr().out
    args = ["train-classifier", "--model", "convnext_micro", "--model-arg", "depths=(1,)", "--model-arg",
            "dims=(8,)", "--image-size", "8", "--epochs", "1", "--no-progress", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "convnext_micro: test accuracy" in out and (tmp_path / "checkpoint.pt").exists()
    assert main(args) == 2  # checkpoint exists, neither --resume nor --force
    err = capsys.readouterr().err  # user errors: one line on stderr
    assert "--resume" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--resume", "--force"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["train-classifier", "--model", "nope", "--no-save"]) == 2


@pytest.mark.parametrize("kwargs,match", [(dict(epochs=0), "epochs"), (dict(augment=0.7), "augment"),
                                          (dict(dataset="cifar"), "dataset"), (dict(lr=0), "lr")])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_classifier(TrainConfig(**kwargs), progress=False)
