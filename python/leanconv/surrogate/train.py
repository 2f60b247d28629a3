"""Training of wave surrogates: seeded, resumable, single- or multi-process.

One process: ``leanconv train --data DIR --out RUN``.  Several processes or
nodes: the same command under ``torchrun`` (DistributedDataParallel; gloo on
CPU, NCCL on GPU).  Each rank walks its own slice of one seeded permutation of
the training windows per epoch, so a run is reproducible for a given world
size, and ``--resume`` continues bit-identically from the last checkpoint,
also from one written mid-epoch when the run was interrupted.

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
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .._io import atomic_torch_save, atomic_write_text
from .._preflight import available_memory, check_device, check_free_space, check_output_dir, format_bytes
from .data import data_identity, data_layout, normalization_stats, open_data, open_split, split_sizes
from .memory import training_step_peak_bytes
from .rollout import predict

__all__ = ["TrainConfig", "train", "build_model", "count_parameters", "load_model", "prior_settings", "resolve"]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
HISTORY = "history.json"


@dataclass
class TrainConfig:
    """Settings of one training run (saved in every checkpoint)."""

    data: str
    out: str
    model: str = "wave_unet2d"
    conv: str = "dense"
    rank: int | float | None = None
    width: int = 16
    levels: int = 3
    t_in: int = 2
    t_out: int = 1
    unroll: int = 1
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-5
    grad_clip: float | None = 1.0    # max global gradient norm (None: no clipping)
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    checkpoint_every_s: float = 60.0
    progress: bool = True
    base: str = "last"               # "fe": learn a correction of the coarse FE step (see WaveUNet2d)
    prior: dict | None = None        # the coarse step's settings, read off the data set when None
    # recorded from the data set by resolve(): its manifest digest (a resumed run must use the same
    # data) and its layout (frame grid, snapshot spacing, channels: what rollout checks data against)
    data_digest: str | None = None
    data_layout: dict | None = None

    def validate(self) -> None:
        """Refuse settings no run can use (ValueError naming the setting), before any work."""
        from ..models.registry import model_entry
        from ..models.surrogate import BASES, CONV_KINDS

        for name in ("width", "levels", "t_in", "t_out", "unroll", "epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        for name, lo in (("lr", 0.0), ("checkpoint_every_s", 0.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not v > lo:
                raise ValueError(f"{name} must be a number > 0, got {v!r}")
        if not isinstance(self.weight_decay, (int, float)) or not math.isfinite(self.weight_decay) \
                or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float))
                                               and math.isfinite(self.grad_clip) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be a positive number or None, got {self.grad_clip!r}")
        if self.conv not in CONV_KINDS:
            raise ValueError(f"conv must be one of {', '.join(CONV_KINDS)}, got {self.conv!r}")
        if self.base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}, got {self.base!r}")
        if self.rank is not None and self.conv != "factorized":
            raise ValueError(f"rank ({self.rank!r}) is only used with conv='factorized', this run has conv={self.conv!r}")
        check_device(self.device, "device")
        entry = model_entry(self.model)
        if entry.task != "surrogate":
            raise ValueError(f"model {self.model!r} is a {entry.task} model, not a wave surrogate "
                             "(train classifiers with `leanconv train-classifier`)")
        entry.check_arguments(self.model_kwargs())

    def model_kwargs(self) -> dict[str, Any]:
        kw = dict(t_in=self.t_in, t_out=self.t_out, width=self.width, levels=self.levels, conv=self.conv)
        if self.conv == "factorized":
            kw["rank"] = self.rank
        if self.base != "last":
            kw.update(base=self.base, prior=self.prior)
        return kw


def prior_settings(data: Any) -> dict[str, Any]:
    """Settings of the coarse FE step on a data set's frame grid (``WaveUNet2d(base="fe", prior=...)``):
    the frames' spacing, the snapshot interval, and as many steps per interval as keep the
    data set's Courant number (``every / coarsen``, rounded up)."""
    wd = open_data(data)
    st = wd.settings
    boundary = st["boundary"]
    if boundary not in ("neumann", "dirichlet") or st.get("sponge"):
        raise ValueError(f"base='fe' needs a data set with 'neumann' or 'dirichlet' sides and no sponge, "
                         f"this one has boundary={boundary!r}, sponge={st.get('sponge')}")
    k = int(st.get("coarsen", 1))
    prior = {"spacing": float(st["spacing"]) * k, "snapshot_dt": float(st["snapshot_dt"]),
             "substeps": -(-int(st["every"]) // k), "boundary": boundary}
    if st.get("scheme", "q1") != "q1":  # (q1 priors keep the settings they were saved with)
        prior["scheme"] = st["scheme"]
    return prior


def resolve(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the settings it derives from its data set filled in: the coarse
    step's ``prior`` (for ``base="fe"``), ``data_digest`` and ``data_layout``."""
    changes: dict[str, Any] = {"data_digest": data_identity(cfg.data), "data_layout": data_layout(cfg.data)}
    if cfg.base == "fe" and cfg.prior is None:
        changes["prior"] = prior_settings(cfg.data)
    return dataclasses.replace(cfg, **changes)


def max_levels(frame_shape: tuple[int, int]) -> int:
    """Most U-Net levels for frames of ``frame_shape``: each level halves the grid, and the
    coarsest must keep at least 2 x 2 nodes (``2**(levels-1) <= min(H, W) - 1``)."""
    return 1 + int(math.floor(math.log2(max(min(frame_shape) - 1, 1))))


def _parameters_without_memory(cfg: TrainConfig) -> int | None:
    """Trainable parameters of the model ``cfg`` describes, built on the meta device (no memory
    is allocated); None when the model cannot be built there."""
    try:
        with torch.device("meta"):
            return count_parameters(build_model(cfg.model, **cfg.model_kwargs()))
    except Exception:  # a constructor that computes on its tensors: no estimate
        return None


def check_fits(cfg: TrainConfig) -> None:
    """Refuse a model that does not fit the data set's frames and trajectories (before any work)."""
    wd = open_data(cfg.data)
    h, w = wd.frame_shape
    frames = wd.frames_per_trajectory
    if "levels" in cfg.model_kwargs():
        most = max_levels((h, w))
        if cfg.levels > most:
            raise ValueError(f"levels={cfg.levels} is too many for the data set's {h} x {w} frames: every level "
                             f"halves the grid, so at most {most} fit (levels={most} ends on "
                             f"{-(-h // 2 ** (most - 1))} x {-(-w // 2 ** (most - 1))} nodes)")
    params = _parameters_without_memory(cfg)
    avail = available_memory(cfg.device)
    if params is not None and avail is not None and 16 * params > avail:
        raise ValueError(f"the model ({cfg.model}, width={cfg.width}, levels={cfg.levels}) has {params:,} parameters: "
                         f"training needs at least {format_bytes(16 * params)} for its weights, gradients and "
                         f"optimizer state, more than the {format_bytes(avail)} of memory available on "
                         f"{cfg.device}; use a smaller --width or fewer --levels")
    need = cfg.t_in + cfg.t_out * cfg.unroll
    if need > frames:
        raise ValueError(f"training windows of t_in + t_out * unroll = {cfg.t_in} + {cfg.t_out} * {cfg.unroll} = "
                         f"{need} frames do not fit in a trajectory of {frames} frames (data set {cfg.data})")
    sizes = split_sizes(len(wd))
    if min(sizes["train"], sizes["val"]) < 1:
        least = next(n for n in range(1, 1000) if min(split_sizes(n).values()) >= 1)
        raise ValueError(f"the data set {cfg.data} has {len(wd)} trajectories, too few to split 80/10/10 into "
                         f"training, validation and test trajectories (at least {least} are needed)")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """A surrogate from the model registry."""
    from ..models import create

    return create(name, **kwargs)


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


# settings a resumed run must share with its checkpoint (device, progress, ... may change)
RESUME_KEYS = ("data_digest", "model", "conv", "rank", "width", "levels", "t_in", "t_out", "unroll", "batch_size",
               "seed", "epochs", "lr", "weight_decay", "grad_clip", "base", "prior", "amp", "data_layout")
# settings recorded only since a later version: a checkpoint without them is not refused for them
_RECORDED_LATER = ("data_digest", "data_layout")


def changed_settings(saved: dict[str, Any], cfg: TrainConfig, keys: Any = None) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, cfg's value)`` for every setting in ``keys`` (default:
    all) where the ``config`` stored in a checkpoint differs from ``cfg`` (settings
    an older checkpoint does not record, such as ``data_digest``, are skipped)."""
    mine = dataclasses.asdict(cfg)
    return [(k, saved.get(k), mine[k]) for k in (mine if keys is None else keys)
            if saved.get(k) != mine[k] and not (k in _RECORDED_LATER and k not in saved)]


CLASSIFIER_FORMAT = "leanconv-classifier-checkpoint/1"  # leanconv.models.training.CHECKPOINT_FORMAT


def _load(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint or model file written by :func:`train` (ValueError for any other file)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (train a model with `leanconv train` first)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # not a torch file at all, truncated, ...
        raise ValueError(f"{path} is not a model or checkpoint written by `leanconv train` "
                         f"(torch.load: {type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and state.get("format") == CLASSIFIER_FORMAT:
        model = (state.get("config") or {}).get("model")
        raise ValueError(f"{path} is a classifier checkpoint of `leanconv train-classifier` ({model}), not a wave "
                         "surrogate from `leanconv train`")
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict) or "model" not in state \
            or "data" not in state["config"]:
        raise ValueError(f"{path} is not a model or checkpoint written by `leanconv train`")
    return state


class _Dist:
    """Process-group facts (one process when WORLD_SIZE is unset or 1)."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            dist.init_process_group(backend=backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _epoch_batches(n: int, batch: int, seed: int, epoch: int, rank: int, world: int) -> list[list[int]]:
    """This rank's batches of epoch ``epoch``: a seeded permutation, dealt round-robin,
    trimmed so every rank gets the same number of full batches."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
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


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train a surrogate; returns a summary (also written to ``<out>/history.json``).

    Writes ``checkpoint.pt`` (atomically: every epoch, every
    ``checkpoint_every_s`` seconds and on Ctrl-C) and ``model.pt`` at the end.
    ``resume=True`` continues from ``checkpoint.pt`` with identical results.
    Every check that can be made before training is made first (see the module's doc).
    """
    cfg.validate()
    check_output_dir(cfg.out, "--out", files=(CHECKPOINT, MODEL, HISTORY))
    cfg = resolve(cfg)
    check_fits(cfg)
    out = Path(cfg.out)
    dd = _Dist(cfg.device)
    device = torch.device(cfg.device if not cfg.device.startswith("cuda") or not dd.enabled
                          else f"cuda:{dd.local_rank}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        return _train(cfg, resume, out, dd, device)
    finally:
        dd.close()


def _train(cfg: TrainConfig, resume: bool, out: Path, dd: _Dist, device: torch.device) -> dict[str, Any]:
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
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}")
        state = _load(path, map_location=device)
        changed = changed_settings(state["config"], cfg, RESUME_KEYS)
        if changed:
            raise ValueError(_resume_refusal(state["config"], cfg, changed))
        if state.get("world", 1) != dd.world:
            raise ValueError(f"--resume: checkpoint was written by {state.get('world', 1)} processes, "
                             f"this run has {dd.world}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        start_epoch, start_batch = state["epoch"], state["batch"]
        history, elapsed = state["history"], state["elapsed_s"]
    elif dd.main and path.exists():
        raise FileExistsError(f"{path} exists: pass --resume to continue that run, or choose another --out")
    if dd.main:  # a checkpoint (weights + two Adam moments) written next to the last, and model.pt
        weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        check_free_space(out, 7 * weights + (1 << 20), "--out")

    net = _Unrolled(model)
    if dd.enabled:
        net = nn.parallel.DistributedDataParallel(net)
    scale = model.u_scale.detach()

    def save(epoch: int, batch: int) -> None:
        if dd.main:
            atomic_torch_save({
                "config": dataclasses.asdict(cfg), "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(), "rng": _rng_state(), "epoch": epoch, "batch": batch,
                "history": history, "elapsed_s": elapsed, "world": dd.world, "params": params,
            }, path)

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
            bar = _progress(cfg, dd, len(batches), first, epoch)
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
                if bar is not None:
                    rate = seen * dd.world / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(loss=f"{run_loss:.3g}", samples_s=f"{rate:.0f}")
                    bar.update(1)
                if time.monotonic() - last_save > cfg.checkpoint_every_s:
                    elapsed += time.perf_counter() - t0
                    t0, seen = time.perf_counter(), 0
                    save(*pos)
                    last_save = time.monotonic()
            if bar is not None:
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

    rank_diff = None
    if dd.enabled:  # DDP keeps the replicas equal; check it, and record the largest difference
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(dd.world)]
        dist.all_gather(gathered, flat)
        rank_diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
    summary = {
        "config": dataclasses.asdict(cfg), "params": params, "train_time_s": elapsed,
        "rank_weight_max_diff": rank_diff,
        "history": history, "world": dd.world,
        "peak_train_memory_bytes": peak_bytes,
    }
    if dd.main:
        atomic_torch_save({"config": dataclasses.asdict(cfg), "model": model.state_dict(), "params": params,
                          "train_time_s": elapsed, "history": history,
                          "peak_train_memory_bytes": peak_bytes}, out / MODEL)
        atomic_write_text(out / HISTORY, json.dumps(summary, indent=2, default=str) + "\n")
    dd.barrier()
    return summary


def _resume_refusal(saved: dict[str, Any], cfg: TrainConfig, changed: list[tuple[str, Any, Any]]) -> str:
    """The one-line refusal of a resume whose settings differ from the checkpoint's."""
    keys = [k for k, _, _ in changed]
    if "data_digest" in keys:
        same_path = os.path.abspath(str(saved.get("data"))) == os.path.abspath(cfg.data)
        what = (f"the data set {cfg.data} has changed since this run was trained on it" if same_path else
                f"--data {cfg.data} is not the data set this run was trained on ({saved.get('data')})")
        theirs = str(saved.get("data_digest"))[:12]
        return (f"--resume: {what} (manifest digest {cfg.data_digest[:12]}, the checkpoint's {theirs}); "
                "resume with the same data set, or start a new run in another --out")
    key, theirs, mine = changed[0]
    more = f" (and {', '.join(keys[1:])})" if len(keys) > 1 else ""
    return (f"--resume: {key}={mine!r} differs from the checkpoint's {theirs!r}{more}; "
            "use the same settings or a new --out")


def _progress(cfg: TrainConfig, dd: _Dist, total: int, initial: int, epoch: int):
    if not (cfg.progress and dd.main):
        return None
    from tqdm.auto import tqdm

    # disable=None: no bar when the output is not a terminal (logs stay readable)
    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                leave=False, dynamic_ncols=True, disable=None)


