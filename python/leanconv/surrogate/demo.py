"""The main job: data set -> dense and factorized surrogates -> rollout comparison.

``leanconv demo`` runs it on built-in defaults sized for a 2-core laptop CPU
(a few minutes): it simulates a small data set with the FE solver, trains a
dense U-Net surrogate and the same U-Net with one-way factorized (CP)
convolutions, rolls both out against the FE reference and the
repeat-last-frame baseline, prints the comparison and writes the figures.
Every stage is resumable: rerunning the command reuses what is finished.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoConfig", "run_demo", "check_targets"]


@dataclass
class DemoConfig:
    """Settings of ``leanconv demo`` (the defaults are the documented main job)."""

    out: str = "runs/demo"
    samples: int = 160
    seed: int = 0
    scheme: str = "fd4"              # the solver's scheme: fourth order is 3.8x cheaper than Q1 at this accuracy
    grid: int = 129                  # solver nodes per side (h = 1/128)
    coarsen: int = 4                 # frames stored on a 33 x 33 grid (every 4th node)
    steps: int = 160                 # solver steps per trajectory
    every: int = 4                   # solver steps per snapshot (41 frames per trajectory, 1/64 time units apart)
    courant: float = 0.9428090415820634  # sqrt(8)/3 of fd4's limit: dt = 1/256 exactly
    pulse_width: tuple[float, float] = (8.0, 14.0)  # in solver cells (2 to 3.5 frame cells)
    media: tuple[str, ...] = ("constant", "layered", "inclusions", "random")
    width: int = 16
    levels: int = 3
    t_in: int = 2
    t_out: int = 5
    unroll: int = 1
    base: str = "fe"                 # learn a correction of the coarse FE step ("last": of the last frame)
    epochs: int = 4
    batch_size: int = 32
    lr: float = 3e-3                 # dense peak learning rate
    lr_factorized: float = 5e-3      # factorized: products of factors need a larger step
    rank: float = 0.2                # factorized: fraction of the dense parameters kept
    steps_eval: int = 10
    device: str = "cpu"
    progress: bool = True
    models: tuple[str, ...] = ("dense", "factorized")
    extra: dict[str, Any] = field(default_factory=dict)

    def dataset_config(self):
        """The :class:`leanconv.wave.DatasetConfig` of the demo's data set."""
        from ..wave import DatasetConfig

        return DatasetConfig(grid=self.grid, steps=self.steps, every=self.every, coarsen=self.coarsen,
                             pulse_width=self.pulse_width, media=self.media, scheme=self.scheme,
                             courant=self.courant)

    def min_samples(self) -> int:
        """Fewest trajectories the demo can use: training, validation and test splits none empty,
        and at least one training batch of windows."""
        from .data import split_sizes

        windows = self.dataset_config().frames - (self.t_in + self.t_out * self.unroll) + 1
        for n in range(1, 100_000):
            sizes = split_sizes(n)
            if min(sizes.values()) >= 1 and sizes["train"] * max(windows, 0) >= self.batch_size:
                return n
        return 100_000

    def validate(self) -> None:
        """Refuse settings the demo cannot run with (ValueError naming the setting), before anything is written."""
        from .._preflight import check_device
        from ..models.surrogate import CONV_KINDS
        from .train import max_levels

        for name in ("samples", "epochs", "width", "levels", "t_in", "t_out", "unroll", "batch_size", "steps_eval",
                     "grid", "steps", "every", "coarsen"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        for name in ("lr", "lr_factorized"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not self.models or any(m not in CONV_KINDS for m in self.models):
            raise ValueError(f"models must be some of {', '.join(CONV_KINDS)}, got {self.models!r}")
        check_device(self.device, "device")
        config = self.dataset_config()
        frames, n = config.frames, config.frame_grid
        need = self.t_in + self.t_out * self.unroll
        if need > frames or self.t_in + self.steps_eval > frames:
            raise ValueError(f"trajectories of {frames} frames are too short for t_in + t_out * unroll = {need} "
                             f"and t_in + steps_eval = {self.t_in + self.steps_eval} frames")
        if self.levels > max_levels((n, n)):
            raise ValueError(f"levels={self.levels} is too many for {n} x {n} frames (at most {max_levels((n, n))})")
        least = self.min_samples()
        if self.samples < least:
            raise ValueError(f"samples={self.samples} (--samples) is too few: the demo splits the trajectories 80/10/10 "
                             f"into training, validation and test sets and needs at least one of each and "
                             f"{self.batch_size} training windows (a batch); use --samples {least} or more")


def _data(cfg: DemoConfig) -> Path:
    from ..wave import DatasetError, write_dataset

    root = Path(cfg.out) / "data"
    try:
        return write_dataset(root, cfg.dataset_config(), cfg.samples, cfg.seed, device=cfg.device,
                             progress=cfg.progress)
    except DatasetError as exc:
        if "other settings" not in str(exc):
            raise
        raise DatasetError(f"{root} holds a data set made with other settings (seed, samples or config differ); "
                           "pass a new --out (or delete the folder) to start over") from None


def _train(cfg: DemoConfig, data: Path, conv: str) -> dict[str, Any]:
    from .train import TrainConfig, train

    run = Path(cfg.out) / conv
    tc = TrainConfig(data=str(data), out=str(run), conv=conv, rank=cfg.rank if conv == "factorized" else None,
                     width=cfg.width, levels=cfg.levels, t_in=cfg.t_in, t_out=cfg.t_out, unroll=cfg.unroll,
                     epochs=cfg.epochs, batch_size=cfg.batch_size,
                     lr=cfg.lr_factorized if conv == "factorized" else cfg.lr, seed=cfg.seed,
                     device=cfg.device, progress=cfg.progress, base=cfg.base)
    _check_same_run(run, tc)
    if (run / "model.pt").is_file():
        return {"reused": str(run / "model.pt")}
    return train(tc, resume=(run / "checkpoint.pt").is_file())


def _check_same_run(run: Path, tc: Any) -> None:
    """Refuse to reuse or resume a stage that was started with other settings."""
    from .train import _load, changed_settings, resolve

    tc = resolve(tc)

    for name in ("model.pt", "checkpoint.pt"):
        path = run / name
        if not path.is_file():
            continue
        diff = [d for d in changed_settings(_load(path).get("config", {}), tc) if d[0] != "progress"]
        if diff:
            raise ValueError(
                f"{path} was made with other settings ({', '.join(f'{k}: {a!r} -> {b!r}' for k, a, b in diff)}); "
                "pass a new --out (or delete the folder) to start over")
        return


def check_targets(rows: list[dict[str, Any]], steps: int,
                  curves: dict[str, dict[str, list[float]]] | None = None) -> list[tuple[str, bool, str]]:
    """The main job's targets, each as (statement, met, figures).

    ``rows`` and ``curves`` are :func:`~leanconv.surrogate.evaluate.evaluate`'s;
    the FE row on the frame grid is the coarsest ``FE ...`` row (the first
    listed).  "As accurate over the whole rollout" compares the nRMSE at every
    step when ``curves`` are given, else at the steps the rows report.
    """
    by = {r["model"]: r for r in rows}
    key = f"nrmse@{steps}"
    out = []
    d, f, b = by.get("dense"), by.get("factorized"), by.get("repeat last frame")
    # the solver restarted on coarser grids: the data set's scheme first, its coarsest grid the frames'
    fe_rows = [r for r in rows if r.get("scheme") and "reference" not in r["model"]]
    if d and f:
        ratio = d["params"] / f["params"]
        out.append(("factorized has >= 5x fewer trainable parameters than dense", ratio >= 5,
                    f"{d['params']} / {f['params']} = {ratio:.2f}x"))
        rel = f[key] / d[key]
        out.append((f"factorized {key} within 1.2x of dense", rel <= 1.2,
                    f"{f[key]:.4g} vs {d[key]:.4g} ({rel:.2f}x)"))
        dm, fm = d.get("peak_train_memory_MB"), f.get("peak_train_memory_MB")
        if dm and fm:
            out.append(("factorized peak training memory at or below dense", fm <= dm,
                        f"{fm:.1f} MB vs {dm:.1f} MB"))
    names = [n for n in ("dense", "factorized") if n in by]
    if b:
        for name in names:
            gain = b[key] / by[name][key]
            out.append((f"{name} beats repeat-last-frame {key} by >= 5x", gain >= 5,
                        f"{b[key]:.4g} / {by[name][key]:.4g} = {gain:.1f}x"))
    if fe_rows:
        coarse = fe_rows[0]
        for name in names:
            if curves and name in curves and coarse["model"] in curves:
                mine, theirs = curves[name]["nrmse"], curves[coarse["model"]]["nrmse"]
                worst = max(a / max(c, 1e-300) for a, c in zip(mine, theirs))
            else:
                worst = max(by[name][k] / coarse[k] for k in by[name] if k.startswith("nrmse@"))
            out.append((f"{name} at least as accurate as {coarse['model']} (its own frame grid) over the rollout",
                        worst <= 1, f"{key} {by[name][key]:.4g} vs {coarse[key]:.4g}; worst step ratio {worst:.2f}x"))
    for name in names:
        eq = by[name].get("speed_at_equal_accuracy")
        if eq is not None:
            grids = by[name].get("equal_accuracy_fe") or ""
            out.append((f"{name} faster than the FE solver at equal accuracy (moonshot)", eq > 1,
                        f"{eq:.3g}x (FE at the same {key}: {grids}; {by[name]['step_ms']:.3g} ms per window and "
                        "interval)"))
    return out


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run (or finish) the demo in ``cfg.out``; returns the comparison and the target checks.
    The settings and ``cfg.out`` are checked before anything is written."""
    from .._io import atomic_write_text
    from .._preflight import check_output_dir
    from .evaluate import evaluate, write_outputs
    from .train import load_model

    cfg.validate()
    out = check_output_dir(cfg.out, "--out", files=("demo.json",))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data = _data(cfg)
    timings["simulate_s"] = time.perf_counter() - t0
    for conv in cfg.models:
        t0 = time.perf_counter()
        _train(cfg, data, conv)
        timings[f"train_{conv}_s"] = time.perf_counter() - t0
    models = {conv: load_model(out / conv / "model.pt", device=cfg.device) for conv in cfg.models}
    t0 = time.perf_counter()
    result = evaluate(models, data, steps=cfg.steps_eval, device=cfg.device)
    paths = write_outputs(result, out / "comparison")
    timings["evaluate_s"] = time.perf_counter() - t0
    targets = check_targets(result["rows"], cfg.steps_eval, result["curves"])
    report = {"config": dataclasses.asdict(cfg), "timings": timings,
              "targets": [{"target": t, "met": m, "figures": f} for t, m, f in targets]}
    atomic_write_text(out / "demo.json", json.dumps(report, indent=2, default=str) + "\n")
    return {"result": result, "targets": targets, "paths": paths, "timings": timings}
