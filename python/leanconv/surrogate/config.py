"""Settings of a surrogate training run and the checks made on them before any work.

:class:`TrainConfig` (saved in every checkpoint), :func:`resolve` (the
settings read off the data set: its digest, layout and the coarse step's
``prior``), :func:`check_fits` (the model fits the data set's frames,
trajectories and the machine's memory), and :data:`RESUME_KEYS`, the
settings a resumed run must share with its checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._preflight import available_memory, check_device, format_bytes
from .data import data_identity, data_layout, open_data, split_sizes

__all__ = ["TrainConfig", "RESUME_KEYS", "RECORDED_LATER", "prior_settings", "resolve", "max_levels", "check_fits",
           "count_parameters", "build_model"]

# settings a resumed run must share with its checkpoint (device, progress, ... may change)
RESUME_KEYS = ("data_digest", "model", "conv", "rank", "width", "levels", "t_in", "t_out", "unroll", "batch_size",
               "seed", "epochs", "lr", "weight_decay", "grad_clip", "base", "prior", "amp", "data_layout")
# settings recorded only since a later version: a checkpoint without them is not refused for them
RECORDED_LATER = ("data_digest", "data_layout")


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
        """The registry arguments of the model these settings describe."""
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

