"""Bad input never costs work or data: every user error of the command line is one
line on stderr, exit code 2, and nothing is written or lost.  One test per
reproduction of the issue (the bug reports), on tiny data sets."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from leanconv.cli import main

TINY = ["--width", "4", "--levels", "2", "--batch-size", "4", "--quiet"]


# ------------------------------------------------------------------ helpers
def cli(argv):
    """``leanconv argv`` in this process (paths may be Path objects); returns the exit code."""
    return main([str(a) for a in argv])


def state(root):
    """Every file under ``root`` with its bytes' digest and mtime, and every folder: what 'nothing written' compares."""
    root = Path(root)
    if not root.exists():
        return None
    if root.is_file():
        return ("file", root.stat().st_mtime_ns, hashlib.sha256(root.read_bytes()).hexdigest())
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = ("file", p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) if p.is_file() else "dir"
    return out


def refused(capsys, argv, *words):
    """Run ``leanconv argv``: exit code 2 and one line on stderr naming ``words``; returns that line."""
    rc = cli(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("leanconv ") and ": error: " in lines[0], err
    assert "Traceback" not in err and "Errno" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def edit_manifest(root, change):
    path = Path(root) / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")


def copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Tiny data sets: 17 x 17 (two seeds), 33 x 33 with frames 0.03125 apart, and 33 x 33 with frames 0.0625 apart."""
    from leanconv.wave import make_dataset

    root = tmp_path_factory.mktemp("data")
    kw = dict(samples=12, steps=48, every=4, shard_size=8, scheme="q1")  # q1: frames 0.03125 apart
    make_dataset(root / "d17", seed=3, grid=17, **kw)
    make_dataset(root / "d17b", seed=4, grid=17, **kw)
    make_dataset(root / "d33", seed=3, grid=33, **kw)
    make_dataset(root / "d33e8", seed=3, grid=33, samples=12, steps=96, every=8, shard_size=8, scheme="q1")
    return {k: root / k for k in ("d17", "d17b", "d33", "d33e8")}


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """Finished training runs on the 17 x 17 and the 33 x 33 data set (one epoch each)."""
    root = tmp_path_factory.mktemp("runs")
    for name in ("d17", "d33"):
        assert cli(["train", "--data", str(data[name]), "--out", str(root / name), "--epochs", "1", *TINY]) == 0
    return {k: root / k for k in ("d17", "d33")}


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody may write in (chmod for users; root needs the immutable attribute)."""
    d = tmp_path / "readonly"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode:
        pytest.skip("running as root without a way to make a read-only folder (chattr +i)")
    try:
        yield d
    finally:
        subprocess.run(["chattr", "-i", str(d)], check=True)


# ------------------------------------------------------------------ data and runs
def test_resume_with_another_data_set_is_refused(data, runs, tmp_path, capsys):
    run = copy(runs["d17"], tmp_path / "run")
    before = state(run)
    line = refused(capsys, ["train", "--data", data["d17b"], "--out", run, "--epochs", "1", *TINY, "--resume"],
                   "--resume", "not the data set this run was trained on", "manifest digest")
    assert str(data["d17b"]) in line
    assert state(run) == before
    # the same data set in another folder is the same data set (its manifest digest): resuming it is fine
    same = copy(data["d17"], tmp_path / "same")
    assert cli(["train", "--data", same, "--out", run, "--epochs", "1", *TINY, "--resume"]) == 0


def test_resume_refuses_other_settings_that_change_the_result(data, runs, tmp_path, capsys):
    run = copy(runs["d17"], tmp_path / "run")
    before = state(run)
    for extra, word in ((["--epochs", "2"], "epochs=2"), (["--epochs", "1", "--conv", "factorized"], "conv="),
                        (["--epochs", "1", "--seed", "5"], "seed=5"), (["--epochs", "1", "--lr", "0.1"], "lr=0.1")):
        refused(capsys, ["train", "--data", data["d17"], "--out", run, *TINY, *extra, "--resume"], "--resume", word)
    assert state(run) == before


def test_too_many_levels_for_the_grid(data, tmp_path, capsys):
    t0 = time.perf_counter()
    refused(capsys, ["train", "--data", data["d33"], "--out", tmp_path / "run", "--levels", "10", "--quiet"],
            "levels=10", "33 x 33", "at most 6")
    assert time.perf_counter() - t0 < 60 and not (tmp_path / "run").exists()
    # a model too large for the machine's memory is refused from its size (built on the meta device), not tried
    refused(capsys, ["train", "--data", data["d33"], "--out", tmp_path / "run", "--width", "100000", "--quiet"],
            "parameters", "memory available", "--width")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("edit,words", [
    (lambda m: m["shards"][1].update(count=3), ["shard-00001", "3 of them"]),
    (lambda m: m.update(samples=11), ["shard-00001"]),
    (lambda m: (m.update(samples=11), m["shards"][1].update(count=3)), ["shard-00001.frames.npy", "float32[4"]),
    (lambda m: m["shards"].pop(1), ["shard-00001", "missing from the shard list"]),
], ids=["shard-count", "samples", "count-and-samples", "deleted-shard-entry"])
def test_edited_shard_list_fails_verify_and_train(data, tmp_path, capsys, edit, words):
    bad = copy(data["d17"], tmp_path / "bad")
    edit_manifest(bad, edit)
    assert cli(["dataset", "verify", bad]) == 1
    assert "BAD" in capsys.readouterr().out
    before = state(bad)
    refused(capsys, ["train", "--data", bad, "--out", tmp_path / "run", "--epochs", "1", *TINY],
            "inconsistent manifest", "leanconv dataset verify", *words[:1])
    assert state(bad) == before and not (tmp_path / "run").exists()


@pytest.mark.parametrize("edit,words", [
    (lambda m: m["solver"].update(dt=m["solver"]["dt"] * 2), ["solver.dt"]),
    (lambda m: m.update(seed=m["seed"] + 1), ["seed 4", "velocity model"]),
], ids=["solver-dt", "seed"])
def test_edited_settings_fail_verify_and_rollout(data, runs, tmp_path, capsys, edit, words):
    bad = copy(data["d17"], tmp_path / "bad")
    edit_manifest(bad, edit)
    assert cli(["dataset", "verify", bad]) == 1
    out = capsys.readouterr().out
    assert "BAD" in out and words[0] in out
    assert cli(["dataset", "verify", "--quick", bad]) == 1
    capsys.readouterr()
    refused(capsys, ["rollout", "--data", bad, "--run", runs["d17"], "--out", tmp_path / "cmp", "--steps", "2"],
            "inconsistent manifest", *words)
    assert not (tmp_path / "cmp").exists()


def test_rollout_label_given_twice(data, runs, tmp_path, capsys):
    refused(capsys, ["rollout", "--data", data["d17"], "--run", f"a={runs['d17']}", "--run", f"a={runs['d33']}",
                     "--out", tmp_path / "cmp"], "label 'a' is given twice")
    refused(capsys, ["rollout", "--data", data["d17"], "--run", runs["d17"], "--run", f"d17={runs['d33']}",
                     "--out", tmp_path / "cmp"], "label 'd17' is given twice")
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("name,words", [("d17", ["33 x 33 frames", "17 x 17", "0.03125 apart", "0.0625 apart"]),
                                        ("d33e8", ["0.03125 apart", "0.0625 apart"])])
def test_rollout_on_data_unlike_the_training_data(data, runs, tmp_path, capsys, name, words):
    argv = ["rollout", "--data", data[name], "--run", f"m={runs['d33']}", "--out", tmp_path / "cmp", "--steps", "2",
            "--max-windows", "2"]
    refused(capsys, argv, "model 'm' was trained on", "--allow-mismatch", *words)
    assert not (tmp_path / "cmp").exists()
    assert cli(argv + ["--allow-mismatch"]) == 0  # on request: compared, with a warning
    err = capsys.readouterr().err
    assert "warning: model 'm' was trained on" in err and words[-1] in err
    assert (tmp_path / "cmp" / "comparison.json").is_file()


def test_train_into_a_read_only_folder_is_refused_before_training(data, readonly_dir, capsys):
    t0 = time.perf_counter()
    refused(capsys, ["train", "--data", data["d17"], "--out", readonly_dir / "run", "--epochs", "1", *TINY],
            "--out", "cannot be created", "not writable")
    assert time.perf_counter() - t0 < 60
    assert "epoch" not in capsys.readouterr().out and list(readonly_dir.iterdir()) == []


def test_train_with_a_file_in_the_way(data, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    refused(capsys, ["train", "--data", data["d17"], "--out", afile, "--epochs", "1", *TINY],
            "exists and is not a folder")
    refused(capsys, ["train", "--data", data["d17"], "--out", afile / "run", "--epochs", "1", *TINY],
            "is a file, not a folder")
    assert afile.read_text() == "mine\n"


def test_rollout_out_a_file_is_refused_before_work(data, runs, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    t0 = time.perf_counter()
    refused(capsys, ["rollout", "--data", data["d17"], "--run", runs["d17"], "--out", afile, "--steps", "2"],
            "--out", "exists and is not a folder")
    assert time.perf_counter() - t0 < 30 and afile.read_text() == "mine\n"


SIM = ["--samples", "6", "--grid", "12", "--steps", "12", "--every", "4", "--shard-size", "4", "--quiet"]


def test_simulate_rerun_of_a_complete_data_set_writes_nothing(tmp_path, capsys):
    out = tmp_path / "ds"
    assert cli(["simulate", "--out", out, *SIM]) == 0
    before = state(out)
    time.sleep(0.01)
    assert cli(["simulate", "--out", out, *SIM]) == 0
    assert state(out) == before  # not even the manifest is rewritten


def test_simulate_into_a_read_only_folder_or_onto_a_file(tmp_path, readonly_dir, capsys):
    refused(capsys, ["simulate", "--out", readonly_dir / "ds", *SIM], "--out", "ds")
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    refused(capsys, ["simulate", "--out", afile, *SIM], "exists and is not a folder")  # was a bare [Errno 17]
    assert list(readonly_dir.iterdir()) == [] and afile.read_text() == "mine\n"


def test_simulate_without_disk_space_is_refused(tmp_path, capsys, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    refused(capsys, ["simulate", "--out", tmp_path / "ds", *SIM], "not enough disk space", "1000 bytes free")
    assert not (tmp_path / "ds").exists()


def test_second_simulate_into_the_same_folder_stops_at_once(tmp_path, capsys):
    """A simulate writing into --out holds a lock on the folder; a second one is refused, not run twice."""
    out = tmp_path / "ds"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from leanconv.wave.store import _writer_lock\n"
         f"with _writer_lock(Path({str(out)!r})):\n    print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused(capsys, ["simulate", "--out", out, *SIM], "being written by another process")
        assert list(out.iterdir()) == []
    finally:
        holder.communicate("")
    assert cli(["simulate", "--out", out, *SIM]) == 0  # the lock goes with its holder


# ------------------------------------------------------------------ tracebacks instead of one line
@pytest.mark.parametrize("argv,words", [
    (["simulate", "--out", "{tmp}/x", "--device", "foo"], ["argument --device", "'foo'"]),
    (["train", "--data", "{d17}", "--out", "{tmp}/x", "--device", "foo"], ["argument --device", "'foo'"]),
    (["train", "--data", "{d17}", "--out", "{tmp}/x", "--batch-size", "0"], ["argument --batch-size", ">= 1"]),
    (["train", "--data", "{d17}", "--out", "{tmp}/x", "--model", "nosuchmodel"], ["unknown model 'nosuchmodel'"]),
    (["train", "--data", "{d17}", "--out", "{tmp}/x", "--epochs", "-1"], ["argument --epochs", ">= 1, got -1"]),
    (["train", "--data", "{d17}/manifest.json", "--out", "{tmp}/x"], ["is a file, not a data set folder"]),
    (["dataset", "info", "{d17}/manifest.json"], ["is a file, not a data set folder"]),
    (["rollout", "--data", "{d17}", "--run", "{tmp}", "--out", "{tmp}/x", "--max-windows", "0"],
     ["argument --max-windows"]),
    (["train-classifier", "--model-arg", "foo=3", "--out", "{tmp}/x"], ["takes no argument 'foo'"]),
    (["train-classifier", "--model", "wave_unet2d", "--out", "{tmp}/x"], ["not a classifier"]),
    (["bench", "wave", "--grids", "1", "--out", "{tmp}/x"], ["argument --grids", ">= 3"]),
    (["bench", "all", "--grids", "12", "--out", "{tmp}/x"], ["depthwise benchmark refuses", "--grids"]),
    (["demo", "--samples", "0", "--out", "{tmp}/x"], ["argument --samples"]),
    (["demo", "--samples", "2", "--out", "{tmp}/x"], ["samples=2", "too few", "--samples 8"]),
    (["demo", "--epochs", "0", "--out", "{tmp}/x"], ["argument --epochs"]),
])
def test_user_error_is_one_line_and_writes_nothing(data, tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(tmp=tmp_path, d17=data["d17"]) for a in argv]
    refused(capsys, argv, *words)
    assert not (tmp_path / "x").exists() and sorted(os.listdir(tmp_path)) == []


def test_train_on_cuda_without_a_gpu(data, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    refused(capsys, ["train", "--data", data["d17"], "--out", tmp_path / "x", "--device", "cuda"],
            "argument --device", "no GPU is visible")


@pytest.mark.parametrize("content", [b"", b"{}\n", b"not a model\n"], ids=["empty", "json", "text"])
def test_rollout_of_a_file_that_is_no_model(data, tmp_path, capsys, content):
    afile = tmp_path / "afile"
    afile.write_bytes(content)
    refused(capsys, ["rollout", "--data", data["d17"], "--run", f"x={afile}", "--out", tmp_path / "cmp"],
            "--run x", "is not a model or checkpoint written by `leanconv train`")
    assert not (tmp_path / "cmp").exists()


def test_rollout_of_a_classifier_checkpoint(data, tmp_path, capsys):
    from leanconv.classify.train import TrainConfig, train_classifier

    train_classifier(TrainConfig(model="convnext_micro", model_kwargs=dict(depths=(1,), dims=(8,)), image_size=8,
                                 epochs=1, out=str(tmp_path / "clf")), progress=False)
    capsys.readouterr()
    refused(capsys, ["rollout", "--data", data["d17"], "--run", f"c={tmp_path / 'clf' / 'checkpoint.pt'}", "--out",
                     tmp_path / "cmp"], "classifier checkpoint", "not a wave surrogate")
    refused(capsys, ["rollout", "--data", data["d17"], "--run", tmp_path / "clf", "--out", tmp_path / "cmp"],
            "holds no model.pt", "checkpoint.pt")


def test_bad_cpu_isa_variable(monkeypatch, capsys):
    monkeypatch.setenv("LEANCONV_CPU_ISA", "foo")
    refused(capsys, ["info"], "LEANCONV_CPU_ISA='foo'", "generic, avx2, avx512")


def test_debug_shows_the_traceback(data):
    from leanconv.wave import DatasetError

    with pytest.raises(DatasetError, match="is a file"):
        cli(["--debug", "train", "--data", str(data["d17"] / "manifest.json"), "--out", "x"])


def test_a_bug_is_not_hidden(monkeypatch):
    """Only user errors become one line: anything else keeps its traceback."""
    import leanconv.commands.info as info

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(info, "run", broken)
    with pytest.raises(ZeroDivisionError):
        cli(["info"])


# ------------------------------------------------------------------ benchmarks
def test_bench_all_help_prints_help_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(["bench", "all", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: leanconv bench" in out and "every benchmark" in out.lower()
    assert os.listdir(tmp_path) == []


def test_bench_all_passes_its_arguments_on(monkeypatch):
    import importlib

    from leanconv.bench import BENCHMARKS

    seen = {}
    for name, module in BENCHMARKS.items():
        mod = importlib.import_module(f"leanconv.bench.{module}")
        monkeypatch.setattr(mod, "main", lambda argv, name=name: seen.setdefault(name, list(argv)) and 0)
    assert cli(["bench", "all", "--quick", "--threads", "1", "--out", "somewhere"]) == 0
    assert seen == {name: ["--quick", "--threads", "1", "--out", "somewhere"] for name in BENCHMARKS}


def test_bench_results_go_under_the_current_folder(tmp_path, monkeypatch):
    """A plain `leanconv bench wave` writes ./benchmark-results, never the package or the source tree."""
    import leanconv
    from leanconv.bench.common import default_results_dir

    monkeypatch.chdir(tmp_path)
    source = Path(leanconv.__file__).resolve().parents[2]
    committed = state(source / "benchmarks" / "results")
    assert default_results_dir() == tmp_path / "benchmark-results"
    assert cli(["bench", "wave", "--grids", "12", "--batches", "1", "--min-time", "0", "--no-sparse",
                 "--backends", "torch", "--threads", "1"]) == 0
    assert (tmp_path / "benchmark-results" / "wave.json").is_file()
    assert state(source / "benchmarks" / "results") == committed


def test_simulate_rerun_repairs_an_edited_shard_list(tmp_path, capsys):
    out = tmp_path / "ds"
    assert cli(["simulate", "--out", out, *SIM]) == 0
    good = (out / "manifest.json").read_text()
    edit_manifest(out, lambda m: (m["shards"][1].pop("files"), m["shards"].append(dict(m["shards"][0], index=7))))
    assert cli(["dataset", "verify", out]) == 1
    capsys.readouterr()
    assert cli(["simulate", "--out", out, *SIM]) == 0  # the flagged entries are made again, no traceback
    assert cli(["dataset", "verify", out]) == 0
    m, g = json.loads((out / "manifest.json").read_text()), json.loads(good)
    assert m["shards"] == g["shards"]
