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
    assert isinstance(create("wave_unet3d", width=4, levels=2), WaveUNet3d)


@pytest.mark.parametrize("kw, match", [
    ({"conv": "sparse"}, "conv must be one of"),
    ({"conv": "factorized"}, "needs rank"),
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
