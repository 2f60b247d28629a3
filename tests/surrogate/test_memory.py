"""Peak training memory of the surrogates (MemTracker on CPU), in a test-sized run."""
import pytest
import torch
import torch.nn.functional as F

from leanconv.models import create
from leanconv.surrogate.memory import training_step_peak_bytes


def _peak(conv, recompute=None):
    torch.manual_seed(0)
    x, v, y = torch.randn(4, 2, 17, 17), torch.rand(4, 1, 17, 17) + 1, torch.randn(4, 3, 17, 17)
    net = create("wave_unet2d", conv=conv, rank=0.2 if conv == "factorized" else None, width=8, levels=2,
                 t_in=2, t_out=3)
    for m in net.modules():
        if recompute is not None and hasattr(m, "recompute"):
            m.recompute = recompute
    peak = training_step_peak_bytes(net, lambda n: torch.optim.AdamW(n.parameters()),
                                    lambda n: F.mse_loss(n(x, v), y))
    if peak is None:
        pytest.skip("torch has no MemTracker")
    return peak


def test_factorized_surrogate_trains_in_no_more_memory_than_dense():
    dense = _peak("dense")
    assert _peak("factorized") <= dense  # the surrogate's factorized convs recompute their intermediates
    assert _peak("factorized", recompute=False) > 1.15 * dense  # storing them is what cost memory
