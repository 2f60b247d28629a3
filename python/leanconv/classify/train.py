"""Training of registry classifiers on bundled data (``leanconv train-classifier``).

:func:`train_classifier` trains with AdamW and a warmup + cosine schedule,
writes a checkpoint after every epoch in leanconv's one checkpoint format
(model, optimizer, schedule, random generators, history; see
:mod:`leanconv.training`), resumes from it, and reports the test accuracy -
also after re-parameterization for models with re-parameterizable blocks.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._io import atomic_write_json
from ..models.registry import create, model_entry
from ..nn.reparam import reparameterize_model
from ..training import (check_resume, epoch_generator, progress_bar, read_checkpoint, restore_checkpoint,
                        save_checkpoint, start_or_resume)
from . import data as datasets

__all__ = ["TrainConfig", "train_classifier", "evaluate", "RESUME_KEYS"]

KIND = "classifier"  # the checkpoint kind (leanconv.training.KINDS)
# config fields that must match when resuming (they define the model, the data or the schedule)
RESUME_KEYS = ("model", "model_kwargs", "dataset", "image_size", "seed", "batch_size", "lr", "weight_decay",
               "warmup_epochs", "augment", "label_smoothing", "epochs")
_ORDER_STRIDE = 100_003  # the epoch generator's seed stride (leanconv.training.epoch_generator)


@dataclass
class TrainConfig:
    """Settings of a classifier training run (see ``leanconv train-classifier --help``)."""

    model: str = "unireplknet_micro"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "digits"
    image_size: int = 32
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    augment: float = 0.08
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "cpu"
    channels_last: bool = False
    out: str | None = None

    def validate(self) -> None:
        """Refuse settings no run can use (ValueError or KeyError naming the setting), before any work."""
        from .._preflight import check_device

        entry = model_entry(self.model)  # UnknownModelError (a KeyError and ValueError) naming close matches
        if entry.task != "classification":
            raise ValueError(f"model {self.model!r} is a {entry.task} model, not a classifier "
                             "(wave surrogates train with `leanconv train`)")
        if not isinstance(self.model_kwargs, dict):
            raise ValueError(f"model_kwargs must be a dict, got {self.model_kwargs!r}")
        fixed = sorted({"in_chans", "num_classes"} & set(self.model_kwargs))
        if fixed:
            raise ValueError(f"model argument {', '.join(fixed)} is set by the data set ({self.dataset}: 1 channel, "
                             "10 classes), not by model_kwargs (--model-arg)")
        entry.check_arguments({"in_chans": 1, "num_classes": 10, **self.model_kwargs})
        check_device(self.device, "device")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if self.dataset != "digits":
            raise ValueError(f"dataset must be 'digits' (the only bundled one), got {self.dataset!r}")
        for name in ("epochs", "batch_size", "image_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0 or self.warmup_epochs < 0 or self.label_smoothing < 0:
            raise ValueError("weight_decay, warmup_epochs and label_smoothing must be >= 0")
        if not 0 <= self.augment < 0.5:
            raise ValueError(
                f"augment (max shift as a fraction of the image) must be in [0, 0.5), got {self.augment!r}"
            )


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> tuple[float, torch.Tensor]:
    """(accuracy, logits) of ``model`` in eval mode on ``x``, ``y``."""
    was_training = model.training
    model.eval()
    logits = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return (logits.argmax(1) == y).float().mean().item(), logits


def _schedule(cfg: TrainConfig, steps_per_epoch: int):
    total = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _has_reparam(model: nn.Module) -> bool:
    return any(callable(getattr(m, "reparameterize", None)) for m in model.modules())


def train_classifier(cfg: TrainConfig, *, resume: bool = False, force: bool = False, progress: bool = True,
                     log=print) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.dataset`` and return the results.

    With ``cfg.out`` set, writes ``checkpoint.pt`` (after every epoch) and
    ``metrics.json`` (at the end) there, atomically.  ``resume=True``
    continues from the checkpoint (the run-defining settings must match; with
    no checkpoint it starts a new run, saying so through ``log``); an existing
    checkpoint is otherwise an error unless ``force=True`` (start over), see
    :func:`leanconv.training.start_or_resume`.

    Returns a dict with ``test_accuracy``, ``train_time_s`` (this process'
    training time plus that of the resumed run), ``params``, the per-epoch
    ``history`` and, when the model has re-parameterizable blocks,
    ``reparam_test_accuracy`` and ``reparam_max_logit_diff``.
    """
    cfg.validate()
    if cfg.out:
        from .._preflight import check_output_dir

        check_output_dir(cfg.out, "--out", files=("checkpoint.pt", "metrics.json"))
    ckpt_path = Path(cfg.out) / "checkpoint.pt" if cfg.out else None
    state = None
    if start_or_resume(ckpt_path, resume=resume, force=force, log=log):
        state = read_checkpoint(ckpt_path, kind=KIND)
        check_resume(state["config"], asdict(cfg), RESUME_KEYS)

    split = datasets.digits(cfg.image_size, seed=cfg.seed)
    device = torch.device(cfg.device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    torch.manual_seed(cfg.seed)
    kwargs = {"in_chans": split.in_chans, "num_classes": split.num_classes, **cfg.model_kwargs}
    try:
        model = create(cfg.model, **kwargs)
    except (TypeError, ValueError) as exc:  # a value its constructor cannot use
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.model_kwargs.items())
        raise ValueError(f"cannot build {cfg.model}({args}): {exc}") from exc
    model = model.to(device=device, memory_format=memory_format)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    steps_per_epoch = math.ceil(len(split.y_train) / cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg, steps_per_epoch))
    start_epoch, history, past_time = 0, [], 0.0
    if state is not None:
        restore_checkpoint(state, model=model, optimizer=optimizer, scheduler=scheduler)
        start_epoch, history, past_time = state["epoch"], state["history"], state["train_time_s"]
        log(f"resumed {ckpt_path} at epoch {start_epoch}/{cfg.epochs}")

    x_test = split.x_test.to(device).contiguous(memory_format=memory_format)
    y_test = split.y_test.to(device)
    params = sum(p.numel() for p in model.parameters())
    bar = progress_bar((cfg.epochs - start_epoch) * steps_per_epoch, enabled=progress, desc=f"{cfg.model}",
                       unit="step", leave=True)
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        gen = epoch_generator(cfg.seed, epoch, stride=_ORDER_STRIDE)  # same order and shifts on resume
        order = torch.randperm(len(split.y_train), generator=gen)
        total_loss = correct = 0.0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb = datasets.random_shift(split.x_train[idx], cfg.augment, gen)
            xb = xb.to(device).contiguous(memory_format=memory_format)
            yb = split.y_train[idx].to(device)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        test_acc, _ = evaluate(model, x_test, y_test)
        n = len(order)
        history.append(dict(epoch=epoch + 1, loss=total_loss / n, train_accuracy=correct / n, test_accuracy=test_acc))
        bar.set_postfix(epoch=epoch + 1, loss=f"{total_loss / n:.3f}", test_acc=f"{test_acc:.3f}")
        if ckpt_path is not None:
            save_checkpoint(ckpt_path, kind=KIND, config=asdict(cfg), model=model, optimizer=optimizer,
                            scheduler=scheduler, epoch=epoch + 1, history=history,
                            train_time_s=past_time + time.perf_counter() - t0)
    bar.close()
    train_time = past_time + time.perf_counter() - t0

    test_acc, logits = evaluate(model, x_test, y_test)
    result: dict[str, Any] = dict(
        model=cfg.model, model_kwargs=cfg.model_kwargs, params=params, epochs=cfg.epochs,
        train_images=len(split.y_train), test_images=len(split.y_test), image_size=cfg.image_size,
        test_accuracy=test_acc, train_time_s=train_time, threads=torch.get_num_threads(), device=str(device),
        history=history,
    )
    if _has_reparam(model):
        merged = reparameterize_model(model)
        acc2, logits2 = evaluate(merged, x_test, y_test)
        result["reparam_test_accuracy"] = acc2
        result["reparam_max_logit_diff"] = (logits2 - logits).abs().max().item()
        result["reparam_params"] = sum(p.numel() for p in merged.parameters())
    if cfg.out:
        atomic_write_json(result, Path(cfg.out) / "metrics.json")
    return result
