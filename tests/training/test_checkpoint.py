"""The one checkpoint format: a resumed run draws and trains exactly as the uninterrupted one,
the format tag and the kind are checked, writes are atomic."""
import pickle
import random

import numpy as np
import pytest
import torch
from device_marks import requires_cuda
from torch import nn

from leanconv.training import (FORMAT, CheckpointError, read_checkpoint, restore_checkpoint, rng_state,
                               save_checkpoint, set_rng_state)


def _draws():
    """One draw from each generator a run may use."""
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist(), torch.randn(2).tolist())


def _seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_rng_state_round_trip_continues_the_sequence(tmp_path):
    _seed_all(7)
    _draws()  # some work before the checkpoint
    model = nn.Linear(2, 2)
    save_checkpoint(tmp_path / "c.pt", kind="surrogate", config={"seed": 7}, model=model)
    uninterrupted = [_draws() for _ in range(3)]

    _seed_all(123)  # another process, other states
    assert _draws() != uninterrupted[0]
    state = read_checkpoint(tmp_path / "c.pt", kind="surrogate")
    restore_checkpoint(state, model=nn.Linear(2, 2))
    assert [_draws() for _ in range(3)] == uninterrupted


def test_set_rng_state_of_a_state_taken_earlier():
    _seed_all(1)
    saved = rng_state()
    first = _draws()
    set_rng_state(saved)
    assert _draws() == first


def _train_steps(model, opt, sched, steps):
    for _ in range(steps):
        x = torch.randn(4, 3)  # data drawn from the global generator, as augmentation or dropout would
        loss = (model(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def _parts(seed):
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return model, opt, sched


def test_resume_trains_bit_identically_to_the_uninterrupted_run(tmp_path):
    model, opt, sched = _parts(0)
    _train_steps(model, opt, sched, 3)
    save_checkpoint(tmp_path / "c.pt", kind="classifier", config={"lr": 0.1}, model=model, optimizer=opt,
                    scheduler=sched, epoch=3)
    _train_steps(model, opt, sched, 4)

    resumed, ropt, rsched = _parts(99)  # other initial weights and generator state
    state = read_checkpoint(tmp_path / "c.pt", kind="classifier")
    assert state["format"] == FORMAT and state["kind"] == "classifier" and state["epoch"] == 3
    restore_checkpoint(state, model=resumed, optimizer=ropt, scheduler=rsched)
    _train_steps(resumed, ropt, rsched, 4)
    assert rsched.get_last_lr() == sched.get_last_lr()
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_without_rng_the_sequence_is_not_restored(tmp_path):
    """The control of the round trip above: a model file (rng=False) leaves the generators alone."""
    _seed_all(7)
    save_checkpoint(tmp_path / "m.pt", kind="surrogate", config={}, model=nn.Linear(2, 2), rng=False)
    uninterrupted = _draws()
    _seed_all(123)
    state = read_checkpoint(tmp_path / "m.pt", kind="surrogate")
    assert "rng" not in state
    restore_checkpoint(state, model=nn.Linear(2, 2), rng=False)
    assert _draws() != uninterrupted
    with pytest.raises(CheckpointError, match="random number generator"):
        restore_checkpoint(state, model=nn.Linear(2, 2))


def _retag(path, **changes):
    state = torch.load(path, weights_only=False)
    for k, v in changes.items():
        if v is None:
            state.pop(k, None)
        else:
            state[k] = v
    torch.save(state, path)


def test_another_format_tag_is_refused_naming_both_tags(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, kind="surrogate", config={"data": "d"}, model=nn.Linear(2, 2))
    assert read_checkpoint(path, kind="surrogate")["format"] == FORMAT
    _retag(path, format="leanconv-checkpoint/1")
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path, kind="surrogate")
    msg = str(info.value)
    assert "'leanconv-checkpoint/1'" in msg and repr(FORMAT) in msg and "earlier version" in msg


def test_an_untagged_file_is_refused_unless_accepted(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"config": {"data": "d"}, "model": nn.Linear(2, 2).state_dict()}, path)  # an earlier surrogate file
    with pytest.raises(CheckpointError, match="has no format tag"):
        read_checkpoint(path, kind="surrogate")
    state = read_checkpoint(path, kind="surrogate", accept_untagged=lambda s: "data" in s["config"])
    assert state["config"] == {"data": "d"}
    with pytest.raises(CheckpointError, match="has no format tag"):
        read_checkpoint(path, kind="surrogate", accept_untagged=lambda s: False)


def test_a_checkpoint_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, kind="classifier", config={"model": "convnext_micro"}, model=nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match=r"is a classifier checkpoint of `leanconv train-classifier` "
                                              r"\(convnext_micro\), not a wave surrogate from `leanconv train`"):
        read_checkpoint(path, kind="surrogate", accept_untagged=lambda s: True)
    # the earlier classifier format is still recognised as a classifier's
    _retag(path, format="leanconv-classifier-checkpoint/1", kind=None)
    with pytest.raises(CheckpointError, match="is a classifier checkpoint"):
        read_checkpoint(path, kind="surrogate")
    with pytest.raises(CheckpointError, match="'leanconv-classifier-checkpoint/1'"):
        read_checkpoint(path, kind="classifier")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint\n"], ids=["empty", "text"])
def test_a_file_that_is_no_checkpoint(tmp_path, content):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="is not a checkpoint of `leanconv train-classifier`"):
        read_checkpoint(path, kind="classifier")
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="is not a checkpoint"):
        read_checkpoint(path, kind="classifier")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt", kind="classifier")
    with pytest.raises(CheckpointError, match="is a folder"):
        read_checkpoint(tmp_path, kind="classifier")


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, kind="surrogate", config={}, model=nn.Linear(2, 2), epoch=1)
    before = path.read_bytes()
    with pytest.raises((AttributeError, pickle.PicklingError)):  # (which one depends on where the lambda is)
        save_checkpoint(path, kind="surrogate", config={}, model=nn.Linear(2, 2), epoch=2,
                        history=lambda: None)  # a lambda cannot be pickled: torch.save fails mid-write
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temporary file left


def test_save_checkpoint_refuses_unknown_kinds_and_clashing_entries(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        save_checkpoint(tmp_path / "c.pt", kind="detector", config={}, model=nn.Linear(2, 2))
    with pytest.raises(ValueError, match="format"):
        save_checkpoint(tmp_path / "c.pt", kind="surrogate", config={}, model=nn.Linear(2, 2), format="x")
    assert not (tmp_path / "c.pt").exists()


@requires_cuda
def test_cuda_generator_state_round_trip(tmp_path):
    torch.manual_seed(5)
    torch.rand(3, device="cuda")  # CUDA initialized: its generator is part of the state
    save_checkpoint(tmp_path / "c.pt", kind="surrogate", config={}, model=nn.Linear(2, 2))
    uninterrupted = torch.rand(4, device="cuda").tolist()
    torch.manual_seed(6)
    assert torch.rand(4, device="cuda").tolist() != uninterrupted
    state = read_checkpoint(tmp_path / "c.pt", kind="surrogate")
    assert len(state["rng"]["cuda"]) == torch.cuda.device_count()
    restore_checkpoint(state, model=nn.Linear(2, 2))
    assert torch.rand(4, device="cuda").tolist() == uninterrupted
