"""Structural re-parameterization: DilatedReparamBlock, SLaKBlock, reparameterize_model.

The reference is an independent pure-torch computation of the multi-branch
sum (F.conv2d + the BatchNorm formula) from the blocks' parameters."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leanconv.nn import DILATED_BRANCHES, DepthwiseConv2d, DilatedReparamBlock, SLaKBlock, reparameterize_model
from leanconv.nn.reparam import dilate_kernel


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random conv weights and non-trivial BatchNorm parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.weight[0].numel() ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g))
                m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.2)
                m.weight.copy_(torch.randn(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g))
    return module


def reference_branches(block, x: torch.Tensor, training: bool = False) -> torch.Tensor:
    """sum_i BN_i(conv_i(x)) with F.conv2d and the BatchNorm formula written out."""
    out = 0
    for conv, bn in zip(block.convs, block.bns):
        pad = [d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation)]
        y = F.conv2d(x, conv.weight, None, 1, pad, conv.dilation, groups=conv.groups)
        if training:
            mean, var = y.mean(dim=(0, 2, 3)), y.var(dim=(0, 2, 3), unbiased=False)
        else:
            mean, var = bn.running_mean, bn.running_var
        view = (1, -1, 1, 1)
        normalized = (y - mean.view(view)) / torch.sqrt(var.view(view) + bn.eps)
        out = out + normalized * bn.weight.view(view) + bn.bias.view(view)
    return out


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("backend", ["leanconv", "torch"])
@pytest.mark.parametrize("K", sorted(DILATED_BRANCHES))
def test_dilated_reparam_equal(K, backend):
    C = 6
    block = randomize(DilatedReparamBlock(C, K, backend=backend), seed=K).eval()
    assert block.branch_specs[0] == ((K, K), (1, 1))
    assert block.branch_specs[1:] == tuple(((k, k), (r, r)) for k, r in DILATED_BRANCHES[K])
    torch.manual_seed(K)
    xs = [torch.randn(2, C, K + 8, K + 5), torch.randn(2, C, 5, 7)]  # larger and smaller than the kernel
    refs = [reference_branches(block, x) for x in xs]
    for x, ref in zip(xs, refs):
        assert rel_err(block(x), ref) < 1e-5
    block.reparameterize()
    assert block.is_reparameterized
    merged = block.merged
    assert type(merged) is (DepthwiseConv2d if backend == "leanconv" else nn.Conv2d)
    assert merged.kernel_size == (K, K) and merged.bias is not None
    assert [type(m) for m in block.modules()][1:] == [type(merged)]  # ONE conv left, no BatchNorm
    for x, ref in zip(xs, refs):
        assert rel_err(block(x), ref) < 1e-5


@pytest.mark.parametrize("kernel_size,small,rect", [(51, 5, None), (31, 5, 3), (13, None, 3), (9, 3, None)])
def test_slak_reparam_equal(kernel_size, small, rect):
    C = 4
    block = randomize(SLaKBlock(C, kernel_size, small, rect_width=rect), seed=kernel_size).eval()
    w = rect if rect is not None else small
    expected = [((kernel_size, w), (1, 1)), ((w, kernel_size), (1, 1))]
    if small is not None:
        expected.append(((small, small), (1, 1)))
    assert list(block.branch_specs) == expected
    x = torch.randn(2, C, kernel_size + 9, kernel_size - 2)
    ref = reference_branches(block, x)
    assert rel_err(block(x), ref) < 1e-5
    block.reparameterize()
    assert block.merged.kernel_size == (kernel_size, kernel_size)
    assert rel_err(block(x), ref) < 1e-5
    block.reparameterize()  # idempotent
    assert rel_err(block(x), ref) < 1e-5


def test_training_mode_matches_batch_statistics():
    block = randomize(DilatedReparamBlock(5, 9)).train()
    x = torch.randn(3, 5, 14, 11, requires_grad=True)
    y = block(x)
    ref = reference_branches(block, x, training=True)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gx_ref,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k,r", [(3, 2), (5, 3), (3, 7), (4, 2)])
def test_dilate_kernel(k, r):
    w = torch.randn(3, 1, k, k + 1)
    x = torch.randn(2, 3, 30, 31)
    dense = dilate_kernel(w, (r, r))
    assert dense.shape[-2:] == (r * (k - 1) + 1, r * k + 1)
    torch.testing.assert_close(F.conv2d(x, dense, groups=3), F.conv2d(x, w, dilation=r, groups=3))


def test_reparameterize_model_and_copy():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        randomize(DilatedReparamBlock(8, 7), 1),
        nn.GELU(),
        nn.Sequential(randomize(SLaKBlock(8, 15, 3), 2)),
    ).eval()
    x = torch.randn(2, 3, 20, 20)
    ref = model(x)
    merged = reparameterize_model(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in merged.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # original untouched
    torch.testing.assert_close(merged(x), ref, rtol=1e-5, atol=1e-5)
    same = reparameterize_model(model, inplace=True)
    assert same is model and model[1].is_reparameterized
    with pytest.raises(TypeError, match="nn.Module"):
        reparameterize_model("not a model")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(channels=4, kernel_size=19), "kernel_size must be one of"),
        (dict(channels=4, kernel_size=8), "odd"),
        (dict(channels=0, kernel_size=7), "channels"),
        (dict(channels=4, kernel_size=7, branches=[(5, 2)]), "larger than kernel_size"),
        (dict(channels=4, kernel_size=7, branches=[(4, 1)]), "odd"),
        (dict(channels=4, kernel_size=7, branches=[5]), "pairs"),
        (dict(channels=4, kernel_size=7, backend="cudnn"), "backend"),
    ],
)
def test_dilated_block_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DilatedReparamBlock(**kwargs)


def test_custom_branches():
    block = randomize(DilatedReparamBlock(3, 11, branches=[(3, 5), (5, 1)])).eval()
    x = torch.randn(1, 3, 16, 16)
    ref = reference_branches(block, x)
    block.reparameterize()
    assert rel_err(block(x), ref) < 1e-5


@pytest.mark.parametrize(
    "args,kwargs,match",
    [((4, 50), {}, "odd"), ((4, 7, 7), {}, "smaller"), ((4, 7, 3), dict(rect_width=9), "smaller"),
     ((4, 7, 2), {}, "odd")],
)
def test_slak_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SLaKBlock(*args, **kwargs)
