"""One --resume / --force policy and one resume check for every trainer."""
import pytest

from leanconv.training import changed_settings, check_resume, start_or_resume


def test_check_resume_names_every_differing_key_with_both_values():
    saved = {"lr": 0.1, "width": 8, "seed": 0, "device": "cpu"}
    current = {"lr": 0.2, "width": 16, "seed": 0, "device": "cuda"}
    with pytest.raises(ValueError) as info:
        check_resume(saved, current, keys=("lr", "width", "seed"))
    msg = str(info.value)
    assert msg.startswith("--resume: ")
    assert "lr=0.2 differs from the checkpoint's 0.1" in msg
    assert "width=16 differs from the checkpoint's 8" in msg
    assert "seed" not in msg and "device" not in msg  # equal, or not a resume key
    check_resume(saved, current, keys=("seed",))  # equal: no error


def test_changed_settings_skips_optional_keys_an_earlier_checkpoint_lacks():
    current = {"data_digest": "abc", "lr": 0.1}
    assert changed_settings({"lr": 0.1}, current, optional=("data_digest",)) == []
    assert changed_settings({"lr": 0.1}, current) == [("data_digest", None, "abc")]
    assert changed_settings({"lr": 0.1, "data_digest": "xyz"}, current, optional=("data_digest",)) == [
        ("data_digest", "xyz", "abc")]


def test_changed_settings_compares_nested_values():
    saved = {"model_kwargs": {"depths": (1,), "dims": (8,)}}
    assert changed_settings(saved, {"model_kwargs": {"depths": (1,), "dims": (8,)}}) == []
    assert [k for k, _, _ in changed_settings(saved, {"model_kwargs": {"depths": (2,), "dims": (8,)}})] == [
        "model_kwargs"]


def test_start_or_resume(tmp_path):
    path = tmp_path / "checkpoint.pt"
    lines = []
    assert start_or_resume(path, resume=False, force=False, log=lines.append) is False
    assert lines == []
    # --resume without a checkpoint: a new run, and a line that says so
    assert start_or_resume(path, resume=True, force=False, log=lines.append) is False
    assert len(lines) == 1 and "no checkpoint" in lines[0] and str(path) in lines[0]
    assert start_or_resume(path, resume=False, force=True, log=lines.append) is False
    assert len(lines) == 1  # nothing to overwrite: nothing said

    path.write_bytes(b"x")
    assert start_or_resume(path, resume=True, force=False, log=lines.append) is True
    with pytest.raises(FileExistsError, match="--resume.*--force"):
        start_or_resume(path, resume=False, force=False, log=lines.append)
    assert start_or_resume(path, resume=False, force=True, log=lines.append) is False
    assert "--force" in lines[-1] and str(path) in lines[-1]
    for exists in (True, False):
        if not exists:
            path.unlink()
        with pytest.raises(ValueError, match="exclude each other"):
            start_or_resume(path, resume=True, force=True, log=lines.append)


def test_start_or_resume_without_a_checkpoint_path():
    lines = []
    assert start_or_resume(None, resume=False, force=False, log=lines.append) is False and lines == []
    assert start_or_resume(None, resume=True, force=False, log=lines.append) is False
    assert "writes no checkpoint" in lines[0]
