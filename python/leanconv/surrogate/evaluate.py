"""Compare surrogates with the FE solver at equal accuracy and with the repeat-last-frame baseline.

For every test window: the first ``t_in`` frames (and the velocity) go in,
``steps`` snapshots come out, autoregressively; the stored FE frames are the
truth.  The FE solver is run from the same windows on every grid between the
frames and the data set's own (:mod:`.baselines`) and scored the same way.
Reported per model and FE grid: the metrics of :mod:`leanconv.surrogate.metrics`
per step and the cost of advancing a window one snapshot interval, all timed
in the same interleaved rounds on the same device and batch; per model also
trainable parameters, model bytes, training time and memory (from its
training run) and the speed at equal accuracy.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import metrics as M
from .data import layout_mismatches, open_data, open_split
from .rollout import repeat_last, rollout

__all__ = ["evaluate", "model_bytes", "write_outputs", "comparison_markdown"]


def model_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers (what a checkpoint of the weights holds)."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def _surrogate_call(model: nn.Module, frames: torch.Tensor, velocity: torch.Tensor):
    """One model call on the batch, for timing."""

    @torch.no_grad()
    def call():
        return model(frames, velocity)

    return call


def _fe_reference_call(data, indices: list[int], device: str = "cpu", intervals: int = 10):
    """The FE solver advancing trajectories ``indices`` by ``intervals`` snapshot
    intervals on the data set's own grid (from a small random state), for timing."""
    from ..wave import WaveSolver, solver_velocity

    wd = open_data(data)
    config = wd.config
    c = torch.from_numpy(solver_velocity(config, int(wd.meta["seed"]), indices)).double()
    solver = WaveSolver(c, spacing=config.h, dt=config.dt, boundary=config.boundary,
                        sponge=config.sponge_layer(), device=device, dtype=getattr(torch, config.dtype))
    g = torch.Generator().manual_seed(0)
    u = (torch.randn(c.shape, generator=g, dtype=torch.float64) * 1e-3).to(device=device, dtype=solver.dtype)
    return lambda: solver.march(u, u, config.every * intervals)


def _energy(wd, vel: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
    """Energy of each consecutive pair of a (B, S, H, W) sequence: (B, S-1)."""
    from ..wave import snapshot_energy

    out = [snapshot_energy(wd, vel[:, 0].double().cpu(), seq[:, s - 1].double().cpu(), seq[:, s].double().cpu())
           for s in range(1, seq.shape[1])]
    return torch.stack(out, dim=1)


def _row_metrics(c: dict[str, list[float]], steps: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for s in sorted({1, min(5, steps), steps}):
        row[f"nrmse@{s}"] = c["nrmse"][s - 1]
    row["rmse@last"] = c["rmse"][-1]
    row["energy_drift@last"] = c["energy_drift"][-1]
    return row


def evaluate(
    models: Mapping[str, tuple[nn.Module, Mapping[str, Any]]],
    data,
    steps: int = 10,
    device: str = "cpu",
    batch: int = 64,
    max_windows: int | None = 256,
    timing_batch: int = 32,
    baselines: bool = True,
    min_timing_s: float = 2.0,
    allow_mismatch: bool = False,
) -> dict[str, Any]:
    """Roll out every model on the test split and compare, at equal accuracy too.

    ``models`` maps a label to ``(model, info)``, where ``info`` may hold
    ``params``, ``train_time_s`` and ``peak_train_memory_bytes`` from training.
    Besides the models and the repeat-last-frame baseline, the FE solver is
    run from the same windows on every grid between the frames and the data
    set's own (:class:`leanconv.surrogate.baselines.FEBaselines`; with
    ``baselines=False``, or for a data set with a source term, only the data
    set's own grid is timed and taken as exact).  Every model and every FE grid
    is timed on the first ``timing_batch`` windows in interleaved rounds
    (:func:`leanconv._report.paired_rounds`, at least ``min_timing_s`` seconds
    for the slowest); costs are per window and snapshot interval.  Each
    model's ``speed_at_equal_accuracy`` compares it with the cheapest FE grid
    that is at least as accurate at the last step (see
    :func:`~leanconv.surrogate.baselines.speed_at_equal_accuracy`).
    Returns a dict with per-model rows, per-step curves and example arrays
    (``examples``: truth and predictions of the first test window) for plots.

    A model whose ``info["config"]["data_layout"]`` (recorded by training) differs
    from the data set's frame grid, snapshot spacing or channels is refused
    (ValueError) before any work, or with ``allow_mismatch`` rolled out with the
    difference in ``warnings`` of the result.
    """
    from .._report import paired_rounds
    from .baselines import FEBaselines, speed_at_equal_accuracy

    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if max_windows is not None and (not isinstance(max_windows, int) or max_windows < 1):
        raise ValueError(f"max_windows must be >= 1 or None, got {max_windows!r}")
    if not models:
        raise ValueError("no models to evaluate")
    wd = open_data(data)
    warnings = []
    for name, (_, info) in models.items():
        trained = (info.get("config") or {}).get("data_layout") if isinstance(info, Mapping) else None
        if trained is None and isinstance(info, Mapping) and info.get("config"):
            warnings.append(f"model {name!r} records no layout of its training data (trained by an older "
                            "leanconv): not checked against this data set")
        differences = layout_mismatches(trained, wd)
        if differences:
            what = f"model {name!r} was trained on {'; '.join(differences)}"
            if not allow_mismatch:
                where = wd.root if wd.root is not None else "in memory"
                raise ValueError(f"{what} ({where}): roll it out on data like its training data, or pass "
                                 "--allow-mismatch to compare anyway")
            warnings.append(what)
    t_in = max(m.t_in for m, _ in models.values())
    frames_per = wd.frames_per_trajectory
    if t_in + steps > frames_per:
        raise ValueError(f"steps={steps} (--steps) and t_in={t_in} need {t_in + steps} frames per trajectory; the "
                         f"data set's trajectories have {frames_per}, so at most --steps {frames_per - t_in}")
    windows = open_split(wd, "test", t_in, steps, stride=steps)
    n = len(windows) if max_windows is None else min(len(windows), max_windows)
    items = [windows[k] for k in range(n)]
    frames = torch.stack([it[0] for it in items]).to(device)
    vel = torch.stack([it[1] for it in items]).to(device)
    true = torch.stack([it[2] for it in items]).to(device)
    tb = min(timing_batch, n)

    preds: dict[str, torch.Tensor] = {}
    calls: dict[str, Any] = {}
    per_call: dict[str, int] = {}  # window-intervals advanced by one timed call
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else None
    for name, (model, _) in models.items():
        model.to(device).eval()
        outs = [rollout(model, frames[i:i + batch, -model.t_in:], vel[i:i + batch], steps)
                for i in range(0, n, batch)]
        preds[name] = torch.cat(outs)
        calls[name] = _surrogate_call(model, frames[:tb, -model.t_in:], vel[:tb])
        per_call[name] = tb * model.t_out
    preds["repeat last frame"] = repeat_last(frames, steps)

    fe_note, fe, fe_names, schemes = None, None, [], {}
    if baselines:
        try:
            fe = FEBaselines(wd, [(i, s + t_in - 1) for i, s in (windows.window(k) for k in range(n))], device)
        except ValueError as exc:
            fe_note = f"FE baselines on coarser grids skipped: {exc}"
    if fe is not None:
        for g in fe.grids:
            label = g.label + (" (reference)" if fe.is_reference(g) else "")
            preds[label] = fe.rollout(g, steps).to(true.dtype)
            calls[label] = fe.timed_call(g, steps, tb)
            per_call[label] = tb * steps
            fe_names.append((label, g))
            schemes[label] = g.scheme
    else:
        traj = sorted({windows.window(k)[0] for k in range(n)})[:tb]
        calls["FE reference"] = _fe_reference_call(wd, traj, device, intervals=steps)
        per_call["FE reference"] = len(traj) * steps
    for fn in calls.values():  # warm-up
        fn()
    rounds = paired_rounds(calls, min_timing_s, sync=sync, min_rounds=5)
    cost = {k: float(np.median(v)) / per_call[k] for k, v in rounds.items()}
    fe_ref = next((label for label, g in fe_names if fe.is_reference(g)), "FE reference")

    e_true = _energy(wd, vel, torch.cat([frames[:, -1:], true], 1))
    curves: dict[str, dict[str, list[float]]] = {}
    rows = []
    for name, pred in preds.items():
        freq = M.frequency_errors(pred.cpu().double(), true.cpu().double())
        e_pred = _energy(wd, vel, torch.cat([frames[:, -1:], pred], 1))
        drift = ((e_pred - e_true) / e_true.clamp_min(1e-30)).mean(0)
        curves[name] = {
            "nrmse": M.nrmse(pred, true).tolist(),
            "rmse": M.rmse(pred, true).tolist(),
            "max_error": M.max_error(pred, true).tolist(),
            "energy_drift": drift.tolist(),
            **{f"freq_{k}": v.tolist() for k, v in freq.items()},
        }
        rows.append({"model": name, **_row_metrics(curves[name], steps)})
        if name in schemes:
            rows[-1]["scheme"] = schemes[name]
    if fe is None:
        rows.append({"model": "FE reference", **{k: 0.0 for k in rows[0] if k.startswith("nrmse@")}})
    key = f"nrmse@{steps}"
    fe_table = [(label, curves[label]["nrmse"][-1], cost[label]) for label, _ in fe_names]
    for row in rows:
        name = row["model"]
        if name in models:
            model, info = models[name]
            row.update({
                "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "model_bytes": model_bytes(model),
                "train_time_s": info.get("train_time_s"),
                "peak_train_memory_MB": (info["peak_train_memory_bytes"] / 2**20
                                         if info.get("peak_train_memory_bytes") else None),
            })
        if name in cost:
            row["step_ms"] = cost[name] * 1e3
            row["speedup_vs_fe"] = cost[fe_ref] / cost[name]
        if name in models and fe_table:
            eq = speed_at_equal_accuracy(fe_table, row[key], cost[name])
            row["speed_at_equal_accuracy"] = eq["ratio"]
            row["equal_accuracy_fe"] = (("<= " if eq["bound"] == "upper" else "") + " .. ".join(eq["grids"])) or None
    return {
        "rows": rows,
        "curves": curves,
        "steps": steps,
        "windows": n,
        "timing_batch": tb,
        "timing_rounds": len(next(iter(rounds.values()))),
        "device": str(device),
        "snapshot_dt": wd.snapshot_dt,
        "fe_reference": fe_ref,
        "fe_grids": [label for label, _ in fe_names],
        "fe_note": fe_note,
        "fe_interval_ms_per_trajectory": cost[fe_ref] * 1e3,
        "warnings": warnings,
        "examples": {
            "truth": true[0].cpu().numpy(),
            "velocity": vel[0, 0].cpu().numpy(),
            "predictions": {k: v[0].cpu().numpy() for k, v in preds.items()},
        },
    }


ACCURACY_COLUMNS = ("model", "nrmse@1", "nrmse@5", "nrmse@{steps}", "rmse@last", "energy_drift@last", "step_ms",
                    "speedup_vs_fe", "speed_at_equal_accuracy", "equal_accuracy_fe")
TRAINING_COLUMNS = ("model", "params", "model_bytes", "train_time_s", "peak_train_memory_MB")


def comparison_markdown(result: dict[str, Any]) -> str:
    """The comparison as markdown: accuracy and cost of every model and FE grid, then the models' training figures."""
    from .._report import markdown_table

    steps, rows = result["steps"], result["rows"]
    acc = [c.format(steps=steps) for c in ACCURACY_COLUMNS]
    acc = [c for i, c in enumerate(acc) if c not in acc[:i] and any(c in r for r in rows)]
    trained = [r for r in rows if r.get("params") is not None]
    md = (f"Rollout of {steps} snapshot intervals ({result['snapshot_dt']:.4g} time units each) on "
          f"{result['windows']} test windows; costs (`step_ms`: ms per window and snapshot interval) on "
          f"{result['device']} for a batch of {result['timing_batch']}, median of {result['timing_rounds']} "
          f"interleaved rounds.  `speedup_vs_fe`: against {result['fe_reference']}; "
          f"`speed_at_equal_accuracy`: the cost of the cheapest FE grid at least as accurate at step {steps} "
          "(`equal_accuracy_fe`, log-log interpolated between two grids) over the model's cost.\n\n")
    md += markdown_table(rows, acc)
    if trained:
        md += "\n" + markdown_table(trained, list(TRAINING_COLUMNS))
    if result.get("fe_note"):
        md += f"\n{result['fe_note']}\n"
    return md


def write_outputs(result: dict[str, Any], out: str | Path, plot_steps: list[int] | None = None) -> dict[str, Path]:
    """JSON + markdown summary and the two figures in ``out``; returns their paths."""
    import json

    from .._io import atomic_write_text
    from .plots import plot_nrmse, plot_snapshots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = result["steps"]
    plot_steps = plot_steps or sorted({1, max(1, steps // 2), steps})
    ex = result["examples"]
    fe = set(result.get("fe_grids", []))
    first_fe = result["fe_grids"][0] if len(result.get("fe_grids", [])) > 1 else None
    curves = {k: v["nrmse"] for k, v in result["curves"].items() if k != result["fe_reference"]}
    paths = {
        "nrmse_png": plot_nrmse(curves, out / "nrmse.png", title=f"nRMSE over {result['windows']} test windows",
                                dashed=fe),
        # the models and the FE solver on the frame grid (the coarsest baseline), each with its error
        "snapshots_png": plot_snapshots(ex["truth"], {k: v for k, v in ex["predictions"].items()
                                                     if k != "repeat last frame" and (k not in fe or k == first_fe)},
                                        plot_steps, out / "snapshots.png", velocity=ex["velocity"]),
    }
    summary = {k: v for k, v in result.items() if k != "examples"}
    atomic_write_text(out / "comparison.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "comparison.md", comparison_markdown(result))
    paths["json"], paths["md"] = out / "comparison.json", out / "comparison.md"
    return paths
