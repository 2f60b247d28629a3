"""Training of wave surrogates: seeded, resumable, single- or multi-process.

One process: ``leanconv train --data DIR --out RUN``.  Several processes or
nodes: the same command under ``torchrun`` (DistributedDataParallel; gloo on
CPU, NCCL on GPU).  Each rank walks its own slice of one seeded permutation of
the training windows per epoch, so a run is reproducible for a given world
size, and ``--resume`` continues bit-identically from the last checkpoint,
also from one written mid-epoch when the run was interrupted.  Checkpoints,
``--resume`` and ``--force`` behave as for every trainer of leanconv (see
:mod:`leanconv.training`).

Before any work :func:`train` checks the settings (:meth:`TrainConfig.validate`),
that ``out`` can be written, the data set (verified, see
:func:`leanconv.surrogate.data.open_data`), that the model fits its frames and
trajectories, that a resumed run has the same settings and data set (its
manifest digest, recorded in every checkpoint with the frame grid, snapshot
spacing and channels the model is trained for), and the free disk space for
the checkpoints.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._io import atomic_write_text
from .._preflight import check_free_space, check_output_dir
from ..training import (Distributed, epoch_generator, progress_bar, read_checkpoint, restore_checkpoint,
                        resume_refusal, save_checkpoint, start_or_resume)
from ..training import changed_settings as _changed_settings
from .config import (RECORDED_LATER, RESUME_KEYS, TrainConfig, build_model, check_fits, count_parameters, max_levels,
                     prior_settings, resolve)
from .data import normalization_stats, open_split
from .memory import training_step_peak_bytes
from .rollout import predict

__all__ = ["TrainConfig", "train", "build_model", "count_parameters", "load_model", "prior_settings", "resolve",
           "max_levels", "changed_settings", "RESUME_KEYS"]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
HISTORY = "history.json"
KIND = "surrogate"  # the checkpoint kind (leanconv.training.KINDS)
_WHAT = "a model or checkpoint written by `leanconv train`"


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load ``model.pt`` (or a checkpoint) written by :func:`train`; returns (model, info).
    A file that is not one raises ValueError saying what it is."""
    state = _load(path, map_location=device)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        cfg = TrainConfig(**{k: v for k, v in state["config"].items() if k in known})
        model = build_model(cfg.model, **cfg.model_kwargs())
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise ValueError(f"{path}: its weights and settings do not make a model leanconv can build "
                         f"({type(exc).__name__}: {exc})") from exc
    return model.to(device).eval(), state


def changed_settings(saved: dict[str, Any], cfg: TrainConfig, keys: Any = None) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, cfg's value)`` for every setting in ``keys`` (default:
    all) where the ``config`` stored in a checkpoint differs from ``cfg`` (settings
    an older checkpoint does not record, such as ``data_digest``, are skipped)."""
    return _changed_settings(saved, dataclasses.asdict(cfg), keys, optional=RECORDED_LATER)


def _untagged_surrogate(state: dict[str, Any]) -> bool:
    """A model file or checkpoint of an earlier version (no format tag): settings naming a data set, and weights."""
    return isinstance(state.get("config"), dict) and "model" in state and "data" in state["config"]


def _load(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A model or checkpoint file written by :func:`train`, also by an earlier version, to read
    its weights and settings (ValueError for any other file)."""
    return read_checkpoint(path, kind=KIND, what=_WHAT, map_location=map_location,
                           accept_untagged=_untagged_surrogate)


def _epoch_batches(n: int, batch: int, seed: int, epoch: int, rank: int, world: int) -> list[list[int]]:
    """This rank's batches of epoch ``epoch``: a seeded permutation, dealt round-robin,
    trimmed so every rank gets the same number of full batches."""
    perm = torch.randperm(n, generator=epoch_generator(seed, epoch)).tolist()
    per_rank = n // world
    mine = perm[rank::world][:per_rank]
    nb = per_rank // batch
    if nb == 0:
        raise ValueError(
            f"batch_size={batch} (--batch-size) is larger than the {per_rank} training windows per process; lower it"
        )
    return [mine[i * batch : (i + 1) * batch] for i in range(nb)]


def _collate(ds, idx: list[int], device: torch.device):
    items = [ds[i] for i in idx]
    return tuple(torch.stack([it[k] for it in items]).to(device) for k in range(3))


class _Unrolled(nn.Module):
    """The model applied autoregressively: one module call per training step, as
    DistributedDataParallel and the memory tracker expect."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, vel: torch.Tensor, horizon: int) -> torch.Tensor:
        return predict(self.model, frames, vel, horizon)


def _loss(net: nn.Module, batch, scale: torch.Tensor) -> torch.Tensor:
    """MSE of the scaled prediction; ``net`` is an :class:`_Unrolled` (maybe inside DDP)."""
    frames, vel, target = batch
    pred = net(frames, vel, target.shape[1])
    return F.mse_loss(pred / scale, target / scale)


@torch.no_grad()
def _validate(model: nn.Module, ds, device: torch.device, scale: torch.Tensor, batch: int) -> dict[str, float]:
    model.eval()
    tot, tot_nrmse, n = 0.0, 0.0, 0
    for start in range(0, len(ds), batch):
        frames, vel, target = _collate(ds, list(range(start, min(start + batch, len(ds)))), device)
        pred = predict(model, frames, vel, target.shape[1])
        tot += F.mse_loss(pred / scale, target / scale, reduction="sum").item() / pred[0].numel()
        err = torch.linalg.vector_norm((pred - target).flatten(1), dim=1)
        ref = torch.linalg.vector_norm(target.flatten(1), dim=1).clamp_min(1e-12)
        tot_nrmse += (err / ref).sum().item()
        n += pred.shape[0]
    model.train()
    return {"val_loss": tot / max(n, 1), "val_nrmse": tot_nrmse / max(n, 1)}


def train(cfg: TrainConfig, resume: bool = False, force: bool = False, log=print) -> dict[str, Any]:
    """Train a surrogate; returns a summary (also written to ``<out>/history.json``).

    Writes ``checkpoint.pt`` (atomically: every epoch, every
    ``checkpoint_every_s`` seconds and on Ctrl-C) and ``model.pt`` at the end.
    ``resume=True`` continues from ``checkpoint.pt`` with identical results (and starts a
    new run, saying so through ``log``, when there is none); ``force=True`` starts over
    where a checkpoint exists, which is otherwise an error
    (:func:`leanconv.training.start_or_resume`).
    Every check that can be made before training is made first (see the module's doc).
    """
    cfg.validate()
    check_output_dir(cfg.out, "--out", files=(CHECKPOINT, MODEL, HISTORY))
    cfg = resolve(cfg)
    check_fits(cfg)
    out = Path(cfg.out)
    dd = Distributed(cfg.device)
    try:
        resuming = start_or_resume(out / CHECKPOINT, resume=resume, force=force,
                                   log=log if dd.main else (lambda *_: None))
        return _train(cfg, resuming, out, dd, dd.device(cfg.device))
    finally:
        dd.close()


def _train(cfg: TrainConfig, resume: bool, out: Path, dd: Distributed, device: torch.device) -> dict[str, Any]:
    horizon = cfg.t_out * cfg.unroll
    train_ds = open_split(cfg.data, "train", cfg.t_in, horizon)
    val_ds = open_split(cfg.data, "val", cfg.t_in, horizon)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, **cfg.model_kwargs())
    stats = normalization_stats(cfg.data)
    model.set_normalization(stats["u_scale"], stats["c_mean"], stats["c_scale"])
    model.to(device)
    frames, vel, _ = train_ds[0]
    try:
        with torch.no_grad():
            model.eval()(frames[None].to(device), vel[None].to(device))
            model.train()
    except ValueError as exc:
        raise ValueError(f"model {cfg.model!r} does not fit the data set {cfg.data} "
                         f"(windows of shape {tuple(frames.shape)}): {exc}") from exc
    params = count_parameters(model)

    def make_opt(m: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(m.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    opt = make_opt(model)
    batches_per_epoch = len(_epoch_batches(len(train_ds), cfg.batch_size, cfg.seed, 0, dd.rank, dd.world))
    total_steps = batches_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.15)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    history: list[dict[str, Any]] = []
    start_epoch, start_batch, elapsed = 0, 0, 0.0

    path = out / CHECKPOINT
    if resume:
        state = read_checkpoint(path, kind=KIND, map_location=device)
        changed = changed_settings(state["config"], cfg, RESUME_KEYS)
        if changed:
            raise ValueError(_resume_refusal(state["config"], cfg, changed))
        if state.get("world", 1) != dd.world:
            raise ValueError(f"--resume: checkpoint was written by {state.get('world', 1)} processes, "
                             f"this run has {dd.world}")
        restore_checkpoint(state, model=model, optimizer=opt, scheduler=sched)
        scaler.load_state_dict(state["scaler"])
        start_epoch, start_batch = state["epoch"], state["batch"]
        history, elapsed = state["history"], state["elapsed_s"]
    if dd.main:  # a checkpoint (weights + two Adam moments) written next to the last, and model.pt
        weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        check_free_space(out, 7 * weights + (1 << 20), "--out")

    net = dd.wrap(_Unrolled(model))
    scale = model.u_scale.detach()

    def save(epoch: int, batch: int) -> None:
        if dd.main:
            save_checkpoint(path, kind=KIND, config=dataclasses.asdict(cfg), model=model, optimizer=opt,
                            scheduler=sched, scaler=scaler.state_dict(), epoch=epoch, batch=batch, history=history,
                            elapsed_s=elapsed, world=dd.world, params=params)

    probe = _collate(train_ds, list(range(min(cfg.batch_size, len(train_ds)))), device)
    peak_bytes = training_step_peak_bytes(_Unrolled(model), make_opt, lambda m: _loss(m, probe, scale))
    del probe
    last_save = time.monotonic()
    # pos: the next (epoch, batch) to run; the in-memory state always matches
    # it except while an optimizer update is under way (updating=True).
    pos, updating = (start_epoch, start_batch), False
    try:
        for epoch in range(start_epoch, cfg.epochs):
            batches = _epoch_batches(len(train_ds), cfg.batch_size, cfg.seed, epoch, dd.rank, dd.world)
            first = start_batch if epoch == start_epoch else 0
            bar = progress_bar(len(batches), enabled=cfg.progress and dd.main, initial=first,
                               desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch")
            t0, seen, run_loss = time.perf_counter(), 0, 0.0
            for b in range(first, len(batches)):
                batch = _collate(train_ds, batches[b], device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
                    loss = _loss(net, batch, scale)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                updating = True
                if cfg.grad_clip is not None:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
                sched.step()
                updating, pos = False, (epoch, b + 1)
                seen += len(batches[b])
                run_loss = loss.item() if seen == len(batches[b]) else 0.9 * run_loss + 0.1 * loss.item()
                rate = seen * dd.world / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{run_loss:.3g}", samples_s=f"{rate:.0f}")
                bar.update(1)
                if time.monotonic() - last_save > cfg.checkpoint_every_s:
                    elapsed += time.perf_counter() - t0
                    t0, seen = time.perf_counter(), 0
                    save(*pos)
                    last_save = time.monotonic()
            bar.close()
            elapsed += time.perf_counter() - t0
            record = {"epoch": epoch + 1, "train_loss": run_loss, "lr": sched.get_last_lr()[0],
                      "elapsed_s": elapsed}
            if dd.main:
                record.update(_validate(model, val_ds, device, scale, cfg.batch_size))
                if cfg.progress:
                    print(f"epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(
                        f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float)), flush=True)
            history.append(record)
            pos = (epoch + 1, 0)
            save(*pos)
            last_save = time.monotonic()
            dd.barrier()
    except KeyboardInterrupt:
        if not updating:  # else keep the last checkpoint: the weights are half-updated
            save(*pos)
        raise

    rank_diff = dd.max_weight_difference(model)  # DDP keeps the replicas equal; check it
    summary = {
        "config": dataclasses.asdict(cfg), "params": params, "train_time_s": elapsed,
        "rank_weight_max_diff": rank_diff,
        "history": history, "world": dd.world,
        "peak_train_memory_bytes": peak_bytes,
    }
    if dd.main:
        save_checkpoint(out / MODEL, kind=KIND, config=dataclasses.asdict(cfg), model=model, rng=False,
                        params=params, train_time_s=elapsed, history=history, peak_train_memory_bytes=peak_bytes)
        atomic_write_text(out / HISTORY, json.dumps(summary, indent=2, default=str) + "\n")
    dd.barrier()
    return summary


def _resume_refusal(saved: dict[str, Any], cfg: TrainConfig, changed: list[tuple[str, Any, Any]]) -> str:
    """The one-line refusal of a resume whose settings differ from the checkpoint's: another data
    set said in words, other settings named with both values."""
    keys = [k for k, _, _ in changed]
    if "data_digest" in keys:
        same_path = os.path.abspath(str(saved.get("data"))) == os.path.abspath(cfg.data)
        what = (f"the data set {cfg.data} has changed since this run was trained on it" if same_path else
                f"--data {cfg.data} is not the data set this run was trained on ({saved.get('data')})")
        theirs = str(saved.get("data_digest"))[:12]
        return (f"--resume: {what} (manifest digest {cfg.data_digest[:12]}, the checkpoint's {theirs}); "
                "resume with the same data set, or start a new run in another --out")
    return resume_refusal(changed)
