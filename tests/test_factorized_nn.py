"""FactorizedConv2d/3d against F.conv2d/F.conv3d with the module's reconstructed
kernel (module.weight), nn.Conv2d/3d (to_dense, init variance) and
tensorly-torch's FactorizedConv (same CP factors)."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from device_marks import DEVICES, requires_cuda
from leanconv.nn import FactorizedConv2d, FactorizedConv3d

CLASSES = {2: FactorizedConv2d, 3: FactorizedConv3d}
DENSE = {2: F.conv2d, 3: F.conv3d}


def reference_forward(m, x):
    """What the module must compute: the dense convolution with m.weight."""
    padding = m.padding
    if isinstance(padding, str) or any(k % 2 == 0 for k in m.kernel_size):
        warnings.filterwarnings("ignore", message="Using padding='same'")
    if m.padding_mode != "zeros":  # as nn.ConvNd does it
        x = F.pad(x, [p for p in reversed(padding) for _ in range(2)], mode=m.padding_mode)
        padding = 0
    return DENSE[x.dim() - 2](x, m.weight, m.bias, m.stride, padding, m.dilation)


def assert_module_matches_reference(m, x, atol=1e-9, rtol=1e-7):
    params = [x] + list(m.parameters())
    y = m(x)
    yr = reference_forward(m, x)
    torch.testing.assert_close(y, yr, atol=atol, rtol=rtol)
    gy = torch.randn_like(yr)
    for a, b, name in zip(torch.autograd.grad(y, params, gy), torch.autograd.grad(yr, params, gy),
                          ["input"] + [n for n, _ in m.named_parameters()]):
        torch.testing.assert_close(a, b, atol=atol * 10, rtol=rtol, msg=lambda s, name=name: f"grad of {name}: {s}")


@st.composite
def layers(draw, dims):
    ks = draw(st.lists(st.integers(1, 4), min_size=dims, max_size=dims))
    stride = draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims))
    dilation = draw(st.lists(st.integers(1, 2), min_size=dims, max_size=dims))
    kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    if kind == "same":
        stride = [1] * dims
        padding = "same"
    elif kind == "valid":
        padding = "valid"
    elif kind == "int":
        padding = draw(st.integers(0, 2))
    else:
        padding = tuple(draw(st.lists(st.integers(0, 2), min_size=dims, max_size=dims)))
    rank = draw(st.one_of(st.integers(1, 6), st.floats(0.05, 1.0)))
    return dict(
        in_channels=draw(st.integers(1, 5)), out_channels=draw(st.integers(1, 5)), kernel_size=tuple(ks),
        stride=tuple(stride), padding=padding, dilation=tuple(dilation), bias=draw(st.booleans()), rank=rank,
        factorization=draw(st.sampled_from(["cp", "cp", "spatial"])),
    )


def input_for(kw, dims, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = [max(d * (k - 1) + 1, 1) + extra for d, k, extra in zip(kw["dilation"], kw["kernel_size"], (3, 1, 4)[:dims])]
    return torch.randn(n, kw["in_channels"], *sizes, generator=g, dtype=torch.float64, requires_grad=True)


def build(dims, kw, device="cpu"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny random layers often have more weights than dense
        return CLASSES[dims](**kw).double().to(device)


@given(layers(2))
def test_conv2d_equals_dense_with_reconstructed_weight(kw):
    assert_module_matches_reference(build(2, kw), input_for(kw, 2))


@given(layers(3))
def test_conv3d_equals_dense_with_reconstructed_weight(kw):
    assert_module_matches_reference(build(3, kw), input_for(kw, 3))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dims", [2, 3])
def test_float32_and_device(device, dims):
    kw = dict(in_channels=6, out_channels=5, kernel_size=3, stride=2, padding=1, dilation=1, bias=True, rank=4)
    m = CLASSES[dims](**kw).to(device)
    x = torch.randn(2, 6, *(9, 10, 11)[3 - dims:], device=device, requires_grad=True)
    assert_module_matches_reference(m, x, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_nn_conv(mode):
    m = FactorizedConv2d(3, 4, 3, padding=(1, 2), padding_mode=mode, rank=3).double()
    x = torch.randn(2, 3, 8, 9, dtype=torch.float64, requires_grad=True)
    assert_module_matches_reference(m, x)
    torch.testing.assert_close(m(x), m.to_dense()(x))


def test_channels_last_input_gives_channels_last_output():
    m = FactorizedConv2d(4, 6, 3, padding=1, rank=3)
    x = torch.randn(2, 4, 7, 8)
    y = m(x.contiguous(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, m(x))


def test_gradcheck_float64():
    for dims, fac in [(2, "cp"), (3, "cp"), (2, "spatial")]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # more weights than dense: fine for a gradient check
            m = CLASSES[dims](3, 2, (3, 2, 3)[3 - dims:], stride=(2, 1, 1)[3 - dims:], padding=1, rank=2,
                              factorization=fac).double()
        x = torch.randn(1, 3, *(5, 4, 6)[3 - dims:], dtype=torch.float64, requires_grad=True)
        params = dict(m.named_parameters())

        def fn(x, *ps, m=m, names=tuple(params)):
            return torch.func.functional_call(m, dict(zip(names, ps)), (x,))

        assert torch.autograd.gradcheck(fn, (x, *params.values()))


def test_compile_fullgraph_forward_backward():
    m = FactorizedConv2d(4, 5, 3, padding="same", rank=3)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    y1, y2 = compiled(x), m(x)
    torch.testing.assert_close(y1, y2)
    g1 = torch.autograd.grad(y1.square().sum(), [x, *m.parameters()])
    g2 = torch.autograd.grad(y2.square().sum(), [x, *m.parameters()])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


# ------------------------------------------------------------------ init
@pytest.mark.parametrize("dims, factorization, tol", [(2, "cp", 0.15), (3, "cp", 0.12), (2, "spatial", 0.05)])
def test_init_variance_matches_nn_conv_default(dims, factorization, tol):
    """The reconstructed kernel has nn.ConvNd's default-init variance 1/(3 fan_in)."""
    ratios, means, dense = [], [], []
    for seed in range(48):
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = CLASSES[dims](32, 48, 3, rank=0.2 if factorization == "cp" else 1, factorization=factorization)
        fan_in = 32 * 3**dims
        w = m.weight.detach()
        ratios.append(w.var().item() * 3 * fan_in)
        means.append(w.mean().item() * math.sqrt(3 * fan_in))
        dense.append((nn.Conv2d if dims == 2 else nn.Conv3d)(32, 48, 3).weight.detach().var().item() * 3 * fan_in)
    assert abs(sum(dense) / len(dense) - 1) < 0.02  # the target itself
    assert abs(sum(ratios) / len(ratios) - 1) < tol, sum(ratios) / len(ratios)
    assert abs(sum(means) / len(means)) < 0.05
    bound = 1 / math.sqrt(32 * 3**dims)
    assert m.bias.abs().max() <= bound


def test_init_is_not_left_uninitialized():
    m = FactorizedConv2d(16, 16, 3, rank=4)
    for p in m.parameters():
        assert torch.isfinite(p).all() and p.abs().sum() > 0


# ------------------------------------------------------------------ rank
def test_rank_ratio_gives_at_most_that_fraction():
    for ratio in (0.05, 0.1, 0.2, 0.5):
        m = FactorizedConv2d(64, 128, 3, rank=ratio)
        assert m.param_count <= ratio * m.dense_param_count
        assert (m.rank + 1) * (64 + 128 + 6 + 1) > ratio * m.dense_param_count
    assert FactorizedConv2d(64, 64, 3, rank=7).rank == 7


@pytest.mark.parametrize("rank, match", [(0, ">= 1"), (-2, ">= 1"), (0.0, "\\(0, 1\\]"), (1.5, "\\(0, 1\\]"),
                                         (float("nan"), "\\(0, 1\\]"), (True, "rank must be"), ("4", "rank must be")])
def test_bad_rank(rank, match):
    with pytest.raises(ValueError, match=match):
        FactorizedConv2d(4, 4, 3, rank=rank)


def test_warns_when_factorized_has_more_weights_than_dense():
    with pytest.warns(UserWarning, match="more than the 36 of the dense"):
        FactorizedConv2d(2, 2, 3, rank=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FactorizedConv2d(64, 64, 3, rank=0.1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(groups=2), "groups must be 1"),
        (dict(padding="same", stride=2), "padding='same' is not supported for strided"),
        (dict(padding="full"), "padding must be 'same', 'valid'"),
        (dict(padding_mode="mirror"), "padding_mode must be one of"),
        (dict(factorization="tucker"), "factorization must be one of"),
        (dict(kernel_size=(3, 3, 3)), "kernel_size must be an int or a sequence of 2 ints"),
        (dict(stride=0), "stride must be >= 1"),
        (dict(in_channels=0), "in_channels must be a positive int"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    args = dict(in_channels=4, out_channels=4, kernel_size=3, rank=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FactorizedConv2d(**args)


def test_bad_input_and_read_only_weight():
    m = FactorizedConv2d(4, 4, 3, rank=2)
    with pytest.raises(ValueError, match="in_channels = 4"):
        m(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"must be \(N, C, H, W\) or \(C, H, W\)"):
        m(torch.randn(1, 4, 8, 8, 8))
    with pytest.raises(AttributeError, match="read-only"):
        m.weight = nn.Parameter(torch.randn(4, 4, 3, 3))


# ------------------------------------------------------------------ conversions
def exact_rank_conv(dims, cout, cin, ks, rank, seed=0):
    g = torch.Generator().manual_seed(seed)
    factors = [torch.randn(s, rank, generator=g) for s in (cout, cin, *ks)]
    letters = "zyx"[3 - dims:]
    w = torch.einsum(",".join(f"{a}r" for a in "oi" + letters) + "->oi" + letters, *factors)
    conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(cin, cout, ks, padding=1)
    with torch.no_grad():
        conv.weight.copy_(w)
    return conv


@pytest.mark.parametrize("dims", [2, 3])
def test_from_conv_recovers_exact_rank_kernel(dims):
    conv = exact_rank_conv(dims, 10, 7, (3, 2, 3)[3 - dims:], 4)
    m = CLASSES[dims].from_conv(conv, 4, n_iter_max=400, tol=1e-12)
    assert m.rank == 4 and m.padding == conv.padding and m.stride == conv.stride
    rel = ((m.weight - conv.weight).norm() / conv.weight.norm()).item()
    assert rel < 5e-4, rel
    x = torch.randn(2, 7, *(6, 7, 5)[3 - dims:])
    torch.testing.assert_close(m(x), conv(x), atol=5e-3 * conv(x).abs().max().item(), rtol=0)
    torch.testing.assert_close(m.bias, conv.bias)


def test_from_conv_spatial_recovers_per_kernel_rank():
    for dims in (2, 3):
        cout, cin, ks, R = 3, 4, (3, 3, 3)[3 - dims:], 1
        fs = [torch.randn(cout, cin, k, R) for k in ks]
        letters = "zyx"[3 - dims:]
        w = torch.einsum(",".join(f"oi{a}r" for a in letters) + "->oi" + letters, *fs)
        conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(cin, cout, ks)
        with torch.no_grad():
            conv.weight.copy_(w)
        m = CLASSES[dims].from_conv(conv, R, factorization="spatial")
        assert ((m.weight - w).norm() / w.norm()).item() < 1e-4


def test_from_conv_low_rank_approximation_improves_with_rank():
    conv = nn.Conv2d(16, 16, 3)
    errors = [((FactorizedConv2d.from_conv(conv, r, n_iter_max=30).weight - conv.weight).norm()).item() for r in (2, 8, 32)]
    assert errors[0] > errors[1] > errors[2]


def test_to_dense_round_trip():
    for dims in (2, 3):
        m = CLASSES[dims](5, 6, 3, stride=(2, 1, 1)[3 - dims:], padding=1, dilation=(1, 2, 1)[3 - dims:], rank=3)
        dense = m.to_dense()
        assert isinstance(dense, nn.Conv2d if dims == 2 else nn.Conv3d)
        x = torch.randn(2, 5, *(9, 8, 10)[3 - dims:])
        torch.testing.assert_close(dense(x), m(x), atol=1e-5, rtol=1e-4)
        back = CLASSES[dims].from_conv(dense, 3, n_iter_max=400, tol=1e-12)
        rel = ((back.weight - m.weight).norm() / m.weight.norm()).item()
        assert rel < 5e-4, rel


def test_from_conv_bad_input():
    with pytest.raises(TypeError, match="must be a Conv2d"):
        FactorizedConv2d.from_conv(nn.Conv3d(2, 2, 3), 2)
    with pytest.raises(ValueError, match="groups must be 1"):
        FactorizedConv2d.from_conv(nn.Conv2d(4, 4, 3, groups=2), 2)


def test_state_dict_round_trip():
    m = FactorizedConv3d(3, 4, 3, padding=1, rank=5)
    m2 = FactorizedConv3d(3, 4, 3, padding=1, rank=5)
    m2.load_state_dict(m.state_dict())
    x = torch.randn(1, 3, 5, 5, 5)
    torch.testing.assert_close(m(x), m2(x))
    assert set(m.state_dict()) == {"out_factor", "in_factor", "cp_weights", "bias", "spatial_factors.0",
                                   "spatial_factors.1", "spatial_factors.2"}


# ------------------------------------------------------------------ tensorly-torch
@pytest.mark.parametrize("implementation", ["factorized", "reconstructed"])
@pytest.mark.parametrize("dims", [2, 3])
def test_same_factors_in_tltorch_give_same_output(implementation, dims):
    tltorch = pytest.importorskip("tltorch")
    m = CLASSES[dims](6, 5, (3, 2, 3)[3 - dims:], stride=(2, 1, 1)[3 - dims:], padding=(1, 0, 1)[3 - dims:], rank=4).double()
    ref = tltorch.FactorizedConv(6, 5, m.kernel_size, order=dims, stride=list(m.stride), padding=list(m.padding),
                                 bias=True, factorization="cp", rank=4, implementation=implementation).double()
    weights, factors = m.cp_tensor()
    with torch.no_grad():
        ref.weight.weights.copy_(weights)
        for dst, src in zip(ref.weight.factors, factors):
            dst.copy_(src)
        ref.bias.copy_(m.bias)
    x = torch.randn(2, 6, *(7, 8, 9)[3 - dims:], dtype=torch.float64)
    torch.testing.assert_close(m(x), ref(x))


@requires_cuda
def test_cuda_module_matches_cpu():
    for dims in (2, 3):
        m = CLASSES[dims](6, 5, 3, stride=(2, 1, 1)[3 - dims:], padding="valid", rank=4)
        x = torch.randn(2, 6, *(9, 10, 11)[3 - dims:])
        y = m(x)
        mc = m.cuda()
        torch.testing.assert_close(mc(x.cuda()).cpu(), y, atol=1e-5, rtol=1e-4)
