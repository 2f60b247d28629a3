"""Rollout comparison, the CLI commands and a miniature demo."""
import dataclasses
import json

import pytest
import torch

from leanconv.cli import main
from leanconv.surrogate.data import open_split
from leanconv.surrogate.demo import DemoConfig, check_targets, run_demo
from leanconv.surrogate.evaluate import evaluate, write_outputs
from leanconv.surrogate.metrics import nrmse
from leanconv.surrogate.rollout import repeat_last, rollout
from leanconv.surrogate.train import load_model, train


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    from leanconv.surrogate.train import TrainConfig

    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for conv, rank in (("dense", None), ("factorized", 0.3)):
        cfg = TrainConfig(data=str(tiny_data), out=str(out / conv), conv=conv, rank=rank, width=4, levels=2,
                          epochs=2, batch_size=4, progress=False)
        train(cfg)
        runs[conv] = out / conv
    return runs


def test_rollout_shapes_and_autoregression(trained):
    model, _ = load_model(trained["dense"] / "model.pt")
    frames, vel = torch.randn(3, 2, 17, 17), torch.ones(3, 1, 17, 17)
    out = rollout(model, frames, vel, 5)
    assert out.shape == (3, 5, 17, 17)
    with torch.no_grad():
        first = model(frames, vel)
        second = model(torch.cat([frames[:, 1:], first], 1), vel)
    torch.testing.assert_close(out[:, :2], torch.cat([first, second], 1))


def test_evaluate_compares_models_fe_and_baseline(tiny_data, trained, tmp_path):
    models = {k: load_model(v / "model.pt") for k, v in trained.items()}
    res = evaluate(models, tiny_data, steps=4, timing_batch=2, min_timing_s=0.0)
    names = [r["model"] for r in res["rows"]]
    assert names == ["dense", "factorized", "repeat last frame", "FE 17x17 (reference)"]
    for name in ("dense", "factorized", "repeat last frame"):
        c = res["curves"][name]
        assert len(c["nrmse"]) == 4 and len(c["freq_low"]) == 4 and len(c["energy_drift"]) == 4
    # the baseline's curve equals the metric computed here independently
    w = open_split(tiny_data, "test", 2, 4, stride=4)
    frames = torch.stack([w[k][0] for k in range(len(w))])
    true = torch.stack([w[k][2] for k in range(len(w))])
    torch.testing.assert_close(torch.tensor(res["curves"]["repeat last frame"]["nrmse"]),
                               nrmse(repeat_last(frames, 4), true))
    rows = {r["model"]: r for r in res["rows"]}
    assert rows["factorized"]["params"] < rows["dense"]["params"]
    fe = rows["FE 17x17 (reference)"]
    assert rows["dense"]["step_ms"] > 0 and fe["step_ms"] > 0 and fe["nrmse@4"] < 1e-5  # regenerated exactly
    # the only grid is the reference itself, more accurate than the models: an upper bound
    assert rows["dense"]["speed_at_equal_accuracy"] == pytest.approx(fe["step_ms"] / rows["dense"]["step_ms"])
    assert rows["dense"]["equal_accuracy_fe"] == "<= FE 17x17 (reference)"
    paths = write_outputs(res, tmp_path / "cmp")
    for key in ("nrmse_png", "snapshots_png", "json", "md"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    assert json.loads(paths["json"].read_text())["steps"] == 4
    md = paths["md"].read_text()
    assert "| FE 17x17 (reference) |" in md and "speed_at_equal_accuracy" in md and "peak_train_memory_MB" in md


def test_evaluate_on_coarsened_data_has_a_row_per_grid(tmp_path):
    from leanconv.models import create
    from leanconv.wave import make_dataset

    data = make_dataset(tmp_path / "d", samples=10, seed=2, grid=33, steps=64, every=4, coarsen=4,
                        pulse_width=(6.0, 8.0), scheme="q1")
    model = create("wave_unet2d", width=4, levels=2, t_in=2, t_out=2)
    res = evaluate({"m": (model, {})}, data, steps=3, timing_batch=2, min_timing_s=0.0)
    rows = {r["model"]: r for r in res["rows"]}
    assert res["fe_grids"] == ["FE 9x9", "FE 17x17", "FE 33x33 (reference)", "FD4 9x9", "FD4 17x17"]
    errors = [rows[k]["nrmse@3"] for k in res["fe_grids"]]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-5
    # (the fourth-order rows are scored against the Q1 reference, which on a grid this coarse is itself
    # far from the exact solution: no ordering between the schemes is asserted here)
    assert all(0 < e < 1 for e in errors[3:])
    assert rows["m"]["speed_at_equal_accuracy"] > 0


def test_cli_train_and_rollout(tiny_data, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "r"), "--width", "4", "--levels", "2",
                 "--epochs", "1", "--batch-size", "4", "--quiet"]) == 0
    assert main(["rollout", "--data", str(tiny_data), "--run", f"mine={tmp_path / 'r'}", "--steps", "3",
                 "--out", str(tmp_path / "cmp")]) == 0
    assert "| mine |" in capsys.readouterr().out
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["rollout", "--data", str(tiny_data), "--run", str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "c2")]) == 2


def test_check_targets_reads_rows():
    rows = [
        {"model": "dense", "params": 1000, "nrmse@1": 0.01, "nrmse@10": 0.1, "step_ms": 2.0,
         "peak_train_memory_MB": 50.0, "speed_at_equal_accuracy": 0.5, "equal_accuracy_fe": "FE 9x9 .. FE 17x17"},
        {"model": "factorized", "params": 150, "nrmse@1": 0.03, "nrmse@10": 0.11, "step_ms": 0.7,
         "peak_train_memory_MB": 49.0, "speed_at_equal_accuracy": 1.5, "equal_accuracy_fe": "FE 9x9 .. FE 17x17"},
        {"model": "repeat last frame", "nrmse@1": 0.2, "nrmse@10": 1.0},
        {"model": "FE 9x9", "nrmse@1": 0.02, "nrmse@10": 0.105, "step_ms": 0.1, "scheme": "q1"},
        {"model": "FE 17x17 (reference)", "nrmse@1": 0.0, "nrmse@10": 0.0, "step_ms": 1.0, "scheme": "q1"},
        {"model": "FD4 9x9", "nrmse@1": 0.001, "nrmse@10": 0.005, "step_ms": 0.2, "scheme": "fd4"},
    ]
    met = {t: m for t, m, _ in check_targets(rows, 10)}
    assert met["factorized has >= 5x fewer trainable parameters than dense"]
    assert met["factorized nrmse@10 within 1.2x of dense"]
    assert met["factorized peak training memory at or below dense"]
    assert met["dense beats repeat-last-frame nrmse@10 by >= 5x"]
    assert met["dense at least as accurate as FE 9x9 (its own frame grid) over the rollout"]
    assert not met["factorized at least as accurate as FE 9x9 (its own frame grid) over the rollout"]
    assert not met["dense faster than the FE solver at equal accuracy (moonshot)"]
    assert met["factorized faster than the FE solver at equal accuracy (moonshot)"]
    curves = {"dense": {"nrmse": [0.03] + [0.1] * 9}, "FE 9x9": {"nrmse": [0.02] + [0.105] * 9}}
    met = {t: m for t, m, _ in check_targets(rows, 10, curves)}  # whole curves: step 1 is worse
    assert not met["dense at least as accurate as FE 9x9 (its own frame grid) over the rollout"]


def test_miniature_demo_runs_and_resumes(tmp_path):
    cfg = DemoConfig(out=str(tmp_path / "demo"), samples=12, grid=33, coarsen=2, steps=64, every=4,
                     pulse_width=(3.0, 5.0), width=4, levels=2, t_out=2, epochs=1, batch_size=4,
                     steps_eval=4, progress=False)
    res = run_demo(cfg)
    assert {r["model"] for r in res["result"]["rows"]} >= {"dense", "factorized", "FD4 17x17", "FD4 33x33 (reference)",
                                                         "FE 17x17"}  # the demo makes its data with fd4
    assert (tmp_path / "demo" / "demo.json").is_file()
    assert (tmp_path / "demo" / "comparison" / "snapshots.png").is_file()
    again = run_demo(cfg)  # finished stages are reused
    assert again["timings"]["train_dense_s"] < res["timings"]["train_dense_s"]
    changed = dataclasses.replace(cfg, epochs=2)
    with pytest.raises(ValueError, match="other settings.*epochs"):
        run_demo(changed)  # a finished stage made with other settings is never reused silently
