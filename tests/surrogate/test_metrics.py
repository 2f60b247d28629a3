"""Rollout metrics against values computed by hand."""
import math

import pytest
import torch

from leanconv.surrogate.metrics import frequency_errors, max_error, nrmse, rmse
from leanconv.surrogate.rollout import repeat_last


def test_nrmse_rmse_max_by_hand():
    true = torch.zeros(2, 3, 4, 4)
    true[0, :, 0, 0] = 2.0   # ||true|| = 2 for sample 0
    true[1, :, 1, 1] = 4.0   # ||true|| = 4 for sample 1
    pred = true.clone()
    pred[0, 1, 0, 1] = 1.0   # error norm 1 at step 1 for sample 0
    pred[1, 2, 2, 2] = -3.0  # error norm 3 at step 2 for sample 1
    torch.testing.assert_close(nrmse(pred, true), torch.tensor([0.0, 0.5 / 2, 0.75 / 2]))
    torch.testing.assert_close(rmse(pred, true), torch.tensor([0.0, 1 / 4 / 2, 3 / 4 / 2]))
    torch.testing.assert_close(max_error(pred, true), torch.tensor([0.0, 1.0, 3.0]))


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        nrmse(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize("k, band", [(2, "low"), (5, "mid"), (13, "high")])
def test_frequency_errors_single_mode(k, band):
    """An error A cos(2 pi k x / n) puts |F| = A n^2 / 2 in radial bin k: the band
    holding k reads A / 2 / (bins in band), the others 0."""
    n, amp = 32, 0.7
    x = torch.arange(n, dtype=torch.float64)
    err = amp * torch.cos(2 * math.pi * k * x / n).view(1, -1).expand(n, n)
    true = torch.randn(3, 2, n, n, dtype=torch.float64)
    out = frequency_errors(true + err, true)
    widths = {"low": 4, "mid": 8, "high": n // 2 - 12}
    for name, values in out.items():
        expected = amp / 2 / widths[name] if name == band else 0.0
        torch.testing.assert_close(values, torch.full((2,), expected, dtype=torch.float64), atol=1e-12, rtol=1e-9)


def test_repeat_last_baseline():
    frames = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    out = repeat_last(frames, 4)
    assert out.shape == (2, 4, 2, 2)
    assert torch.equal(out[:, 3], frames[:, -1])
