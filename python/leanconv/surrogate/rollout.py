"""Autoregressive prediction with a surrogate, and the trivial baseline."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["rollout", "repeat_last", "predict"]


def predict(model: nn.Module, frames: torch.Tensor, velocity: torch.Tensor, steps: int) -> torch.Tensor:
    """The autoregressive loop of :func:`rollout`, differentiable (training on
    several calls teaches the model to correct its own errors)."""
    t_in = frames.shape[1]
    window, outs, produced = frames, [], 0
    while produced < steps:
        pred = model(window, velocity)
        outs.append(pred)
        produced += pred.shape[1]
        window = torch.cat([window, pred], dim=1)[:, -t_in:]
    return torch.cat(outs, dim=1)[:, :steps]


@torch.no_grad()
def rollout(model: nn.Module, frames: torch.Tensor, velocity: torch.Tensor, steps: int) -> torch.Tensor:
    """Predict ``steps`` snapshots after ``frames`` (B, t_in, H, W).

    Each call of the model gives its ``t_out`` next snapshots, which are
    appended to the window; the last ``t_in`` snapshots feed the next call.
    Returns (B, steps, H, W).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t_in = model.t_in
    if frames.dim() != 4 or frames.shape[1] != t_in:
        raise ValueError(f"frames must have shape (B, t_in={t_in}, H, W), got {tuple(frames.shape)}")
    return predict(model, frames, velocity, steps)


def repeat_last(frames: torch.Tensor, steps: int) -> torch.Tensor:
    """The baseline that predicts the last known snapshot forever: (B, steps, H, W)."""
    return frames[:, -1:].expand(-1, steps, -1, -1).clone()
