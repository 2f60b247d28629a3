"""The surrogate U-Nets: shapes, the conv factory, the registry, bad arguments."""
import pytest
import torch
from torch import nn

from leanconv.models import WaveUNet2d, WaveUNet3d, create, make_conv
from leanconv.nn import DepthwiseConv2d, FactorizedConv2d


@pytest.mark.parametrize("conv, kw", [("dense", {}), ("factorized", {"rank": 0.2}), ("large_kernel", {})])
@pytest.mark.parametrize("size", [16, 17, 33])
def test_unet2d_shapes(conv, kw, size):
    torch.manual_seed(0)
    m = WaveUNet2d(t_in=2, t_out=3, width=4, levels=3, conv=conv, **kw)
    y = m(torch.randn(2, 2, size, size), torch.rand(2, 1, size, size) + 1)
    assert y.shape == (2, 3, size, size)


def test_factory_kinds():
    assert isinstance(make_conv("dense", 4, 8), nn.Conv2d)
    assert isinstance(make_conv("factorized", 4, 8, rank=3), FactorizedConv2d)
    lk = make_conv("large_kernel", 4, 8, large_kernel=7)
    assert isinstance(lk[0], DepthwiseConv2d) and lk[0].kernel_size == (7, 7)


def test_factorized_has_fewer_parameters_same_architecture():
    dense = WaveUNet2d(width=16, conv="dense")
    fact = WaveUNet2d(width=16, conv="factorized", rank=0.2)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(fact) * 4 < n(dense)
    assert [type(m).__name__ for m in dense.modules() if isinstance(m, nn.Conv2d)].count("Conv2d") > 0
    assert sum(isinstance(m, FactorizedConv2d) for m in fact.modules()) == sum(
        isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in dense.modules())


def test_residual_identity_at_zero_head():
    m = WaveUNet2d(t_in=2, t_out=2, width=4, levels=2)
    nn.init.zeros_(m.head.weight)
    nn.init.zeros_(m.head.bias)
    frames = torch.randn(1, 2, 8, 8)
    out = m(frames, torch.ones(1, 1, 8, 8))
    torch.testing.assert_close(out, frames[:, -1:].expand(1, 2, 8, 8))


@pytest.mark.parametrize("conv, kw", [("dense", {}), ("factorized", {"rank": 0.3})])
def test_unet3d_shapes(conv, kw):
    m = WaveUNet3d(t_in=4, t_out=2, width=4, levels=2, conv=conv, **kw)
    y = m(torch.randn(2, 4, 9, 9), torch.rand(2, 1, 9, 9) + 1)
    assert y.shape == (2, 2, 9, 9)


def test_registry_round_trip():
    m = create("wave_unet2d", conv="factorized", rank=0.25, width=4, levels=2)
    assert isinstance(m, WaveUNet2d) and m.config["conv"] == "factorized"
    default = create("wave_unet2d", conv="factorized", width=4, levels=2)  # FactorizedConv2d's default rank
    assert default.down[0].conv2.rank == FactorizedConv2d(4, 4, 3, rank=0.1).rank
    assert isinstance(create("wave_unet3d", width=4, levels=2), WaveUNet3d)


@pytest.mark.parametrize("kw, match", [
    ({"conv": "sparse"}, "conv must be one of"),
    ({"conv": "factorized", "rank": 0}, "rank must be >= 1"),
    ({"t_in": 0}, "t_in must be a positive int"),
    ({"width": 2.5}, "width must be a positive int"),
])
def test_bad_constructor_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        WaveUNet2d(**kw)


def test_bad_forward_shapes():
    m = WaveUNet2d(t_in=2, width=4, levels=2)
    with pytest.raises(ValueError, match="frames must have shape"):
        m(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="velocity must have shape"):
        m(torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 8, 7))


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 2, 4, 3)])
def test_upsample_cat_equals_interpolate_then_cat(shape):
    from leanconv.models.surrogate import _upsample2_cat

    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    skip = torch.randn(shape[0], 2, *shape[2:-2], 2 * shape[-2], 2 * shape[-1], generator=g,
                       dtype=torch.float64, requires_grad=True)
    scale = (2.0, 2.0) if len(shape) == 4 else (1.0, 2.0, 2.0)
    want = torch.cat([torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest"), skip], 1)
    got = _upsample2_cat(x, skip)
    assert torch.equal(got, want)
    w = torch.randn(want.shape, generator=g, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad((got * w).sum(), [x, skip]), torch.autograd.grad((want * w).sum(), [x, skip])):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)  # sums of 4 in another order
    with pytest.raises(ValueError, match="skip must have shape"):
        _upsample2_cat(x, skip[..., :-1])


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (2, 3, 2, 4, 6)])
def test_avg_pool_equals_torch(shape):
    from leanconv.models.surrogate import _avg_pool2

    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    want = (torch.nn.functional.avg_pool2d(x, 2) if len(shape) == 4
            else torch.nn.functional.avg_pool3d(x, (1, 2, 2)))
    got = _avg_pool2(x)
    torch.testing.assert_close(got, want, rtol=1e-15, atol=1e-15)
    w = torch.randn(want.shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad((got * w).sum(), x)[0], torch.autograd.grad((want * w).sum(), x)[0])
    with pytest.raises(ValueError, match="even sizes"):
        _avg_pool2(x[..., :-1])
