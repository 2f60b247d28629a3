"""The drop-in modules accept what the torch modules they replace accept, with the same results:
unbatched input, numpy integers, autocast, empty batches, torch.fx tracing, torch.func transforms,
and NaN propagation no wider than F.conv2d's."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from leanconv.nn import DepthwiseConv2d, DepthwiseConv3d, FactorizedConv2d, FactorizedConv3d


def pairs(dims):
    """(leanconv module, the torch module it replaces with the same weights) for each family."""
    torch.manual_seed(dims)
    out = []
    dw = (DepthwiseConv2d if dims == 2 else DepthwiseConv3d)(4, 4, 3, padding=1)
    ref = (nn.Conv2d if dims == 2 else nn.Conv3d)(4, 4, 3, padding=1, groups=4)
    ref.load_state_dict(dw.state_dict())
    out.append((dw, ref))
    fc = (FactorizedConv2d if dims == 2 else FactorizedConv3d)(4, 5, 3, padding=1, rank=3)
    out.append((fc, fc.to_dense()))
    fr = (FactorizedConv2d if dims == 2 else FactorizedConv3d)(4, 5, 3, padding=1, rank=3, recompute=True)
    out.append((fr, fr.to_dense()))
    return out


CASES = [(dims, i) for dims in (2, 3) for i in range(3)]


def case(dims, i):
    m, ref = pairs(dims)[i]
    return m, ref, (6, 7) if dims == 2 else (5, 6, 4)


@pytest.mark.parametrize("dims, i", CASES)
def test_unbatched_input(dims, i):
    m, ref, size = case(dims, i)
    x = torch.randn(4, *size, requires_grad=True)
    y = m(x)
    assert y.shape == ref(x).shape
    torch.testing.assert_close(y, ref(x), atol=1e-5, rtol=1e-4)
    gx, = torch.autograd.grad(y.sum(), [x])
    torch.testing.assert_close(gx, torch.autograd.grad(ref(x).sum(), [x])[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dims, i", CASES)
def test_empty_batch(dims, i):
    m, ref, size = case(dims, i)
    x = torch.zeros(0, 4, *size, requires_grad=True)
    y = m(x)
    assert y.shape == ref(x).shape
    assert torch.autograd.grad(y.sum(), [x])[0].shape == x.shape


@pytest.mark.parametrize("dims, i", CASES)
def test_autocast_runs_in_the_autocast_dtype(dims, i):
    m, ref, size = case(dims, i)
    x = torch.randn(2, 4, *size)
    seq = nn.Sequential((nn.Conv2d if dims == 2 else nn.Conv3d)(4, 4, 1), m)
    seq_ref = nn.Sequential(seq[0], ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, y_ref = seq(x), seq_ref(x)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), y_ref.float(), atol=0.1, rtol=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = seq(x).float().square().sum()
    loss.backward()  # gradients reach the float32 parameters
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in m.parameters())


@pytest.mark.parametrize("dims, i", CASES)
def test_symbolic_trace(dims, i):
    m, ref, size = case(dims, i)
    traced = torch.fx.symbolic_trace(nn.Sequential(m, nn.ReLU()))
    x = torch.randn(2, 4, *size)
    torch.testing.assert_close(traced(x), torch.relu(ref(x)), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dims, i", CASES)
def test_torch_func_grad_and_vmap(dims, i):
    m, ref, size = case(dims, i)
    x = torch.randn(2, 4, *size)
    params = dict(m.named_parameters())

    def loss(p, inp):
        return torch.func.functional_call(m, p, (inp,)).square().sum()

    grads = torch.func.grad(loss)(params, x)
    want = torch.autograd.grad(loss(params, x), list(params.values()))
    for g, w in zip(grads.values(), want):
        torch.testing.assert_close(g, w)
    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, x.unsqueeze(1))
    total = sum(per_sample[k] for k in ("weight",) if k in per_sample)
    if "weight" in per_sample:
        torch.testing.assert_close(total.sum(0), grads["weight"], atol=1e-4, rtol=1e-4)


def test_numpy_integers_and_bad_numbers():
    x = torch.randn(1, 4, 6, 7)
    ref = nn.Conv2d(4, 4, 3, stride=np.int64(2), padding=np.int64(1), groups=4)
    m = DepthwiseConv2d(4, 4, np.int64(3), stride=np.int64(2), padding=np.int64(1))
    m.load_state_dict(ref.state_dict())
    torch.testing.assert_close(m(x), ref(x))
    f = FactorizedConv2d(4, 4, np.int64(3), stride=np.int64(2), padding=(np.int32(1), 1), rank=np.int64(2))
    assert f(x).shape == ref(x).shape and f.stride == (2, 2) and type(f.stride[0]) is int
    with pytest.raises(ValueError, match=r"DepthwiseConv2d: padding must hold ints, got 1.0"):
        DepthwiseConv2d(4, 4, 3, padding=1.0)
    with pytest.raises(ValueError, match="FactorizedConv2d: padding"):
        FactorizedConv2d(4, 4, 3, padding=1.5, rank=2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [(float("nan"), float("inf")), (0.5, -float("inf"))])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_nan_weight_spreads_no_wider_than_torch(layout, bad, dtype):
    m = DepthwiseConv2d(3, 3, 3, padding=(1, 2), stride=(1, 2), dtype=dtype)
    ref = nn.Conv2d(3, 3, 3, padding=(1, 2), stride=(1, 2), groups=3, dtype=dtype)
    with torch.no_grad():
        m.weight[1, 0, 0, 0] = bad[0]
        m.weight[2, 0, 2, 1] = bad[1]
    ref.load_state_dict(m.state_dict())
    x = torch.randn(2, 3, 7, 8, dtype=dtype).contiguous(memory_format=layout).requires_grad_()
    g = torch.randn_like(ref(x))
    gx, = torch.autograd.grad(m(x), [x], g)
    gx_ref, = torch.autograd.grad(ref(x), [x], g)
    assert torch.equal(gx.isnan(), gx_ref.isnan()) and torch.equal(gx.isinf(), gx_ref.isinf())
    assert 0 < int((~gx.isfinite()).sum()) < gx.numel() // 3
    assert (int(gx.isnan().sum()) > 0) == any(math.isnan(v) for v in bad)  # a NaN tap spreads NaNs
    torch.testing.assert_close(gx.nan_to_num(), gx_ref.nan_to_num())
    assert torch.equal(m(x).isnan(), ref(x).isnan()) and torch.equal(m(x).isinf(), ref(x).isinf())


def test_extra_repr_of_a_larger_than_dense_layer():
    with pytest.warns(UserWarning):
        m = FactorizedConv2d(2, 2, 3, rank=8)
    assert "more weights than dense" in repr(m) and "fewer" not in repr(m)
