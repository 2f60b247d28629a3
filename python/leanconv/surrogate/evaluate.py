"""Compare surrogates with the FE reference and the repeat-last-frame baseline.

For every test window: the first ``t_in`` frames (and the velocity) go in,
``steps`` snapshots come out, autoregressively; the stored FE frames are the
truth.  Reported per model: the metrics of :mod:`leanconv.surrogate.metrics`
per step, trainable parameters, model bytes, training time and memory (from
its training run), and the time of one surrogate step against the FE
solver's time for the same physical time span, on the same device and batch.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import metrics as M
from .data import open_data, open_split
from .rollout import repeat_last, rollout

__all__ = ["evaluate", "model_bytes", "time_fe_interval", "time_surrogate_step"]


def model_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers (what a checkpoint of the weights holds)."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_surrogate_step(model: nn.Module, frames: torch.Tensor, velocity: torch.Tensor, repeats: int = 21) -> float:
    """Median seconds of one model call on the batch, divided by the snapshots it
    predicts (``t_out``): the cost of advancing the batch one snapshot interval."""
    sync = torch.cuda.synchronize if frames.is_cuda else (lambda: None)

    @torch.no_grad()
    def call():
        model(frames, velocity)
        sync()

    call()  # warm-up
    return _median_time(call, repeats) / model.t_out


def time_fe_interval(data, indices: list[int], device: str = "cpu", repeats: int = 7, intervals: int = 10) -> float:
    """Median seconds for the FE solver to advance the batch of trajectories
    ``indices`` by one snapshot interval (``every`` solver steps), on the
    solver's own grid (finer than the stored frames when the data set is
    coarsened) and with the data set's settings and velocity models."""
    from ..wave import WaveSolver, solver_velocity

    wd = open_data(data)
    config = wd.config
    c = torch.from_numpy(solver_velocity(config, int(wd.meta["seed"]), indices)).double()
    solver = WaveSolver(c, spacing=config.h, dt=config.dt, boundary=config.boundary,
                        sponge=config.sponge_layer(), device=device, dtype=getattr(torch, config.dtype))
    g = torch.Generator().manual_seed(0)
    u = (torch.randn(c.shape, generator=g, dtype=torch.float64) * 1e-3).to(device=device, dtype=solver.dtype)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)

    def run():
        solver.march(u, u, config.every * intervals)
        sync()

    run()  # warm-up
    return _median_time(run, repeats) / intervals


def _energy(wd, vel: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
    """Energy of each consecutive pair of a (B, S, H, W) sequence: (B, S-1)."""
    from ..wave import snapshot_energy

    out = [snapshot_energy(wd, vel[:, 0].double().cpu(), seq[:, s - 1].double().cpu(), seq[:, s].double().cpu())
           for s in range(1, seq.shape[1])]
    return torch.stack(out, dim=1)


def evaluate(
    models: Mapping[str, tuple[nn.Module, Mapping[str, Any]]],
    data,
    steps: int = 10,
    device: str = "cpu",
    batch: int = 64,
    max_windows: int | None = 256,
    timing_batch: int = 32,
) -> dict[str, Any]:
    """Roll out every model on the test split and compare.

    ``models`` maps a label to ``(model, info)``, where ``info`` may hold
    ``params``, ``train_time_s`` and ``peak_train_memory_bytes`` from training.
    Returns a dict with per-model rows, per-step curves and example arrays
    (``examples``: truth and predictions of the first test window) for plots.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    wd = open_data(data)
    t_in = max(m.t_in for m, _ in models.values())
    windows = open_split(wd, "test", t_in, steps, stride=steps)
    n = len(windows) if max_windows is None else min(len(windows), max_windows)
    items = [windows[k] for k in range(n)]
    frames = torch.stack([it[0] for it in items]).to(device)
    vel = torch.stack([it[1] for it in items]).to(device)
    true = torch.stack([it[2] for it in items]).to(device)

    preds: dict[str, torch.Tensor] = {}
    for name, (model, _) in models.items():
        model.to(device).eval()
        outs = [rollout(model, frames[i:i + batch, -model.t_in:], vel[i:i + batch], steps)
                for i in range(0, n, batch)]
        preds[name] = torch.cat(outs)
    preds["repeat last frame"] = repeat_last(frames, steps)

    e_true = _energy(wd, vel, torch.cat([frames[:, -1:], true], 1))
    curves: dict[str, dict[str, list[float]]] = {}
    rows = []
    tb = min(timing_batch, n)
    traj = sorted({windows.window(k)[0] for k in range(n)})[:tb]
    fe_interval_s = time_fe_interval(wd, traj, device=device)
    fe_per_window = fe_interval_s / len(traj)
    for name, pred in preds.items():
        freq = M.frequency_errors(pred.cpu().double(), true.cpu().double())
        e_pred = _energy(wd, vel, torch.cat([frames[:, -1:], pred], 1))
        drift = ((e_pred - e_true) / e_true.clamp_min(1e-30)).mean(0)
        c = {
            "nrmse": M.nrmse(pred, true).tolist(),
            "rmse": M.rmse(pred, true).tolist(),
            "max_error": M.max_error(pred, true).tolist(),
            "energy_drift": drift.tolist(),
            **{f"freq_{k}": v.tolist() for k, v in freq.items()},
        }
        curves[name] = c
        row: dict[str, Any] = {"model": name}
        for s in sorted({1, min(5, steps), steps}):
            row[f"nrmse@{s}"] = c["nrmse"][s - 1]
        row["rmse@last"] = c["rmse"][-1]
        row["energy_drift@last"] = c["energy_drift"][-1]
        if name in models:
            model, info = models[name]
            step_s = time_surrogate_step(model, frames[:tb, -model.t_in:], vel[:tb])
            row.update({
                "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "model_bytes": model_bytes(model),
                "train_time_s": info.get("train_time_s"),
                "peak_train_memory_MB": (info["peak_train_memory_bytes"] / 2**20
                                         if info.get("peak_train_memory_bytes") else None),
                "step_ms": step_s * 1e3 / tb,
                "speedup_vs_fe": fe_per_window / (step_s / tb),
            })
        rows.append(row)
    rows.append({"model": "FE reference", "params": None, "step_ms": fe_per_window * 1e3, "speedup_vs_fe": 1.0,
                 **{k: 0.0 for k in rows[0] if k.startswith("nrmse@")}})
    return {
        "rows": rows,
        "curves": curves,
        "steps": steps,
        "windows": n,
        "timing_batch": tb,
        "device": str(device),
        "snapshot_dt": wd.snapshot_dt,
        "fe_interval_ms_per_trajectory": fe_per_window * 1e3,
        "examples": {
            "truth": true[0].cpu().numpy(),
            "velocity": vel[0, 0].cpu().numpy(),
            "predictions": {k: v[0].cpu().numpy() for k, v in preds.items()},
        },
    }


def write_outputs(result: dict[str, Any], out: str | Path, plot_steps: list[int] | None = None) -> dict[str, Path]:
    """JSON + markdown summary and the two figures in ``out``; returns their paths."""
    import json

    from .._io import atomic_write_text
    from ..bench.common import markdown_table
    from .plots import plot_nrmse, plot_snapshots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = result["steps"]
    plot_steps = plot_steps or sorted({1, max(1, steps // 2), steps})
    ex = result["examples"]
    paths = {
        "nrmse_png": plot_nrmse({k: v["nrmse"] for k, v in result["curves"].items()}, out / "nrmse.png",
                                title=f"nRMSE over {result['windows']} test windows"),
        "snapshots_png": plot_snapshots(ex["truth"], {k: v for k, v in ex["predictions"].items()
                                                     if k != "repeat last frame"},
                                        plot_steps, out / "snapshots.png", velocity=ex["velocity"]),
    }
    summary = {k: v for k, v in result.items() if k != "examples"}
    atomic_write_text(out / "comparison.json", json.dumps(summary, indent=2) + "\n")
    md = (f"Rollout of {steps} snapshot intervals ({result['snapshot_dt']:.4g} time units each) on "
          f"{result['windows']} test windows; times on {result['device']} for a batch of "
          f"{result['timing_batch']} (per window).\n\n" + markdown_table(result["rows"]))
    atomic_write_text(out / "comparison.md", md)
    paths["json"], paths["md"] = out / "comparison.json", out / "comparison.md"
    return paths
