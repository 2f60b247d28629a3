"""leanconv.convert(): swapping the convolutions of existing models."""
import pytest
import torch
from torch import nn

import leanconv
from leanconv import convert
from leanconv.nn import DepthwiseConv2d, DepthwiseConv3d

HAS_FACTORIZED = hasattr(leanconv.nn, "FactorizedConv2d")
needs_factorized = pytest.mark.skipif(
    not HAS_FACTORIZED, reason="leanconv.nn.FactorizedConv2d is not in this version (factorized-conv branch)"
)


class SameConv(nn.Conv2d):
    """A subclass of nn.Conv2d with its own forward, which convert() must leave alone."""

    def forward(self, x):
        return super().forward(x) * 2


def zoo() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),                                   # dense 3x3
        nn.Conv2d(8, 8, 7, padding=3, groups=8),                         # depthwise
        nn.Sequential(
            nn.Conv2d(8, 8, (5, 3), stride=2, padding=(2, 1), groups=8, bias=False),  # rectangular, stride 2
            nn.Conv2d(8, 8, 3, padding="same", dilation=2, groups=8),              # "same", dilated
            nn.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="reflect"),        # reflect padding
        ),
        nn.Conv2d(8, 16, 3, padding=1, groups=8),                        # channel multiplier 2: not depthwise
        SameConv(16, 16, 3, padding=1, groups=16),                       # subclass: left alone
        nn.Conv2d(16, 16, 1),                                            # pointwise
    )


def test_depthwise_swap_outputs_equal():
    model = zoo().eval()
    x = torch.randn(2, 3, 17, 19)
    ref = model(x)
    converted, report = convert(model)
    assert converted is not model and type(model[1]) is nn.Conv2d  # original untouched
    assert [name for name, _, _ in report.swapped] == ["1", "2.0", "2.1", "2.2"]
    assert report.count("DepthwiseConv2d") == 4
    skipped = dict(report.skipped)
    assert "channel multiplier 2" in skipped["3"] and "subclass" in skipped["4"]
    assert report.params_before == report.params_after == sum(p.numel() for p in model.parameters())
    assert type(converted[2][1]) is DepthwiseConv2d and type(converted[0]) is nn.Conv2d
    assert type(converted[4]) is SameConv
    torch.testing.assert_close(converted(x), ref, rtol=1e-5, atol=1e-5)
    # gradients through the converted model equal those of the original
    x.requires_grad_(True)
    g = torch.randn_like(ref)
    (gx_ref,) = torch.autograd.grad(model(x), x, g)
    (gx,) = torch.autograd.grad(converted(x), x, g)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-4, atol=1e-5)
    assert "swapped 4 layers" in str(report)


def test_inplace_keeps_parameters_and_state_dict():
    model = zoo()
    keys = list(model.state_dict())
    w = model[1].weight
    converted, report = convert(model, inplace=True)
    assert converted is model and model[1].weight is w and type(model[1]) is DepthwiseConv2d
    assert list(model.state_dict()) == keys
    assert model[1].training


def test_depthwise_false_and_bare_conv():
    model = zoo()
    same, report = convert(model, depthwise=False)
    assert report.swapped == [] and report.skipped == []
    conv = nn.Conv3d(4, 4, 3, padding=1, groups=4).eval()
    x = torch.randn(1, 4, 6, 7, 8)
    new, report = convert(conv)
    assert type(new) is DepthwiseConv3d and report.swapped == [("", "Conv3d", "DepthwiseConv3d")]
    torch.testing.assert_close(new(x), conv(x), rtol=1e-5, atol=1e-5)


def test_convert_torch_built_unireplknet_equals_leanconv_built():
    from leanconv.models import create

    torch.manual_seed(0)
    ref_model = create("unireplknet_micro", backend="torch", depths=(1, 1), dims=(8, 16), kernel_sizes=(13, 7)).eval()
    x = torch.randn(2, 1, 24, 24)
    ref = ref_model(x)
    converted, report = convert(ref_model)
    # 6 branches for K=13 + 4 for K=7
    assert report.count("DepthwiseConv2d") == 10
    torch.testing.assert_close(converted(x), ref, rtol=1e-5, atol=1e-5)
    native = create("unireplknet_micro", backend="leanconv", depths=(1, 1), dims=(8, 16), kernel_sizes=(13, 7))
    native.load_state_dict(ref_model.state_dict())
    assert {type(m) for m in native.modules()} == {type(m) for m in converted.modules()}
    torch.testing.assert_close(native.eval()(x), ref, rtol=1e-5, atol=1e-5)


def test_reparameterize_after_convert_keeps_leanconv_kernels():
    """A torch-built net passed through convert() and then re-parameterized must
    merge into leanconv's DepthwiseConv2d, not back into nn.Conv2d."""
    from leanconv import reparameterize_model
    from leanconv.models import create

    torch.manual_seed(0)
    ref_model = create("unireplknet_micro", backend="torch", depths=(1, 1), dims=(8, 16), kernel_sizes=(13, 7))
    with torch.no_grad():  # non-trivial BN statistics, so the folding is exercised
        for m in ref_model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    ref_model.eval()
    x = torch.randn(2, 1, 24, 24)
    ref = ref_model(x)
    merged = reparameterize_model(convert(ref_model)[0].eval())
    large = [m for m in merged.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1]
    assert len(large) == 2 and all(type(m) is DepthwiseConv2d for m in large)
    assert [m.kernel_size for m in large] == [(13, 13), (7, 7)]
    torch.testing.assert_close(merged(x), ref, rtol=1e-4, atol=1e-5)


def test_timm_convnext():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=7).eval()
    n_dw = sum(1 for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1)
    x = torch.randn(2, 3, 64, 64)
    ref = model(x)
    converted, report = convert(model)
    assert report.count("DepthwiseConv2d") == n_dw == 12
    assert report.params_before == report.params_after
    torch.testing.assert_close(converted(x), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -3, 0.0, 1.5, True, "half"])
def test_bad_factorize(bad):
    with pytest.raises(ValueError, match="factorize"):
        convert(zoo(), factorize=bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="depthwise"):
        convert(zoo(), depthwise="yes")
    with pytest.raises(TypeError, match="nn.Module"):
        convert(lambda x: x)


@pytest.mark.skipif(HAS_FACTORIZED, reason="FactorizedConv2d exists")
def test_factorize_without_factorized_layers_says_so():
    with pytest.raises(RuntimeError, match="FactorizedConv2d"):
        convert(zoo(), factorize=0.5)


@needs_factorized
def test_factorize_swaps_dense_convs():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 5, padding=2, groups=32),
        nn.Conv2d(32, 32, 3, padding=1), nn.Conv2d(32, 16, 1),
    ).eval()
    converted, report = convert(model, factorize=0.1)
    assert report.count("FactorizedConv2d") == 2 and report.count("DepthwiseConv2d") == 1
    assert type(converted[0]).__name__ == "FactorizedConv2d" and type(converted[4]) is nn.Conv2d
    assert report.params_after < report.params_before
    dense_params = sum(model[i].weight.numel() for i in (0, 3))
    fact_params = sum(p.numel() for i in (0, 3) for n, p in converted[i].named_parameters() if n != "bias")
    assert fact_params <= 0.15 * dense_params
    x = torch.randn(1, 16, 12, 12)
    assert converted(x).shape == model(x).shape


@needs_factorized
def test_factorize_exact_low_rank_kernel_keeps_outputs():
    """A conv whose kernel is exactly CP rank 2 is reproduced by a rank-2 factorization."""
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1)
    a, b, c, d = (torch.randn(n, 2) for n in (5, 6, 3, 3))
    with torch.no_grad():
        conv.weight.copy_(torch.einsum("or,ir,hr,wr->oihw", a, b, c, d))
    model = nn.Sequential(conv).eval()
    x = torch.randn(2, 6, 9, 9)
    converted, report = convert(model, factorize=2)
    assert report.count("FactorizedConv2d") == 1
    torch.testing.assert_close(converted(x), model(x), rtol=1e-3, atol=1e-3)
