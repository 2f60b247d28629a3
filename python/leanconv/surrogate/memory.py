"""Peak memory of one training step, on any device.

On CUDA the caching allocator's peak is exact.  On CPU torch keeps no such
counter, so the step runs under ``torch.distributed._tools.mem_tracker.MemTracker``,
which follows every tensor storage created through the dispatcher (parameters,
gradients, optimizer state, activations, temporaries - also those of custom
ops) and reports the peak of the live total.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


def training_step_peak_bytes(
    model: nn.Module,
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    loss_fn: Callable[[nn.Module], torch.Tensor],
) -> int | None:
    """Peak bytes live during one forward + backward + optimizer step of a copy
    of ``model`` (the model itself is not touched).  None when no tracker is available."""
    net = copy.deepcopy(model).train()
    opt = make_optimizer(net)
    device = next(net.parameters()).device

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net).backward()
        opt.step()

    if device.type == "cuda":
        step()  # optimizer state exists from here on, as in a real run
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:
        return None
    step()  # create the optimizer state outside the tracked step
    tracker = MemTracker()
    tracker.track_external(net, opt)
    with tracker:
        step()
    peak = tracker.get_tracker_snapshot("peak")
    return int(sum(stats.get("Total", 0) for stats in peak.values()))
