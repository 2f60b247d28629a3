"""leanconv.models: registry, classifier families, backends, re-parameterization."""
import pytest
import torch
from torch import nn

import leanconv
from leanconv import models, reparameterize_model
from leanconv.models import registry
from leanconv.nn import DepthwiseConv2d, DilatedReparamBlock

from test_reparam import randomize

HAS_FACTORIZED = hasattr(leanconv.nn, "FactorizedConv2d")
needs_factorized = pytest.mark.skipif(
    not HAS_FACTORIZED, reason="leanconv.nn.FactorizedConv2d is not in this version (factorized-conv branch)"
)
SMALL = dict(unireplknet_micro=dict(depths=(1, 1), dims=(8, 16), kernel_sizes=(13, 7)),
             convnext_micro=dict(depths=(1, 1), dims=(8, 16)))


def test_registry_lists_families():
    names = models.list_models()
    for name in ["unireplknet_micro", "unireplknet_a", "convnext_micro", "convnext_atto", "resnet_micro",
                 "resnet_micro_cp"]:
        assert name in names
        assert models.model_entry(name).summary
    assert models.list_models("convnext_*") == ["convnext_atto", "convnext_micro"]
    assert set(models.list_models(task="classification")) >= {"unireplknet_micro", "resnet_micro"}


@pytest.mark.parametrize("name", ["unireplknet_micro", "convnext_micro", "resnet_micro"])
def test_create_state_dict_round_trip(name):
    kwargs = dict(num_classes=7, **SMALL.get(name, {}))
    torch.manual_seed(0)
    a = randomize(models.create(name, **kwargs)).eval()
    torch.manual_seed(1)
    b = models.create(name, **kwargs).eval()
    x = torch.randn(2, 1, 16, 16)
    assert a(x).shape == (2, 7)
    assert not torch.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)


def test_unknown_name_suggests():
    with pytest.raises(KeyError, match="did you mean unireplknet_micro"):
        models.create("unireplknet_mikro")


def test_register_one_liner(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @models.register_model
    def tiny_test_net(width=3):
        """A test network."""
        return nn.Conv2d(1, width, 1)

    @models.register_model("wave_dummy", task="surrogate")
    def _dummy(**kw):
        return nn.Identity()

    assert models.create("tiny_test_net", width=5).out_channels == 5
    assert models.model_entry("tiny_test_net").summary == "A test network."
    assert "wave_dummy" in models.list_models(task="surrogate")
    assert "wave_dummy" not in models.list_models(task="classification")
    with pytest.raises(ValueError, match="already registered"):
        models.register_model("tiny_test_net")(lambda: None)


@pytest.mark.parametrize("name", ["unireplknet_micro", "convnext_micro"])
def test_backends_give_the_same_network(name):
    """backend="leanconv" and backend="torch" build the same net: same state_dict keys,
    same outputs and gradients for the same weights, in training mode."""
    torch.manual_seed(0)
    ref = randomize(models.create(name, backend="torch", **SMALL[name]))
    lean = models.create(name, backend="leanconv", **SMALL[name])
    lean.load_state_dict(ref.state_dict())
    assert any(type(m) is DepthwiseConv2d for m in lean.modules())
    assert not any(type(m) is DepthwiseConv2d for m in ref.modules())
    x = torch.randn(4, 1, 20, 20)
    y_ref, y = ref(x), lean(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    y_ref.square().sum().backward()
    y.square().sum().backward()
    for (n, p_ref), (_, p) in zip(ref.named_parameters(), lean.named_parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-3, atol=1e-5, msg=n)


@pytest.mark.parametrize("name", ["unireplknet_micro", "convnext_micro"])
def test_channels_last_matches(name):
    torch.manual_seed(0)
    m = randomize(models.create(name, **SMALL[name])).eval()
    x = torch.randn(2, 1, 24, 24)
    ref = m(x)
    m_cl = m.to(memory_format=torch.channels_last)
    torch.testing.assert_close(m_cl(x.contiguous(memory_format=torch.channels_last)), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", ["leanconv", "torch"])
def test_unireplknet_reparameterize(backend):
    torch.manual_seed(0)
    m = randomize(models.create("unireplknet_micro", backend=backend, depths=(1, 2), dims=(8, 16),
                                kernel_sizes=(3, (13, 5)))).eval()
    x = torch.randn(2, 1, 28, 28)
    ref = m(x)
    merged = reparameterize_model(m)
    blocks = [b for b in merged.modules() if isinstance(b, models.UniRepLKNetBlock)]
    assert len(blocks) == 3
    for b, k in zip(blocks, (3, 13, 5)):
        assert isinstance(b.norm, nn.Identity) and b.dwconv.kernel_size == (k, k) and b.dwconv.bias is not None
        assert not any(isinstance(mm, (nn.BatchNorm2d, DilatedReparamBlock)) for mm in b.dwconv.modules())
    assert sum(p.numel() for p in merged.parameters()) < sum(p.numel() for p in m.parameters())
    out = merged(x)
    assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-5


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("unireplknet_micro", dict(depths=(1, 1), dims=(8,)), "one entry per stage"),
        ("unireplknet_micro", dict(kernel_sizes=8), "odd"),
        ("unireplknet_micro", dict(kernel_sizes=(3, 5)), "one entry per stage"),
        ("unireplknet_micro", dict(depths=(1, 2), dims=(4, 8), kernel_sizes=(3, (5,))), r"kernel_sizes\[1\]"),
        ("unireplknet_micro", dict(backend="cudnn"), "backend"),
        ("unireplknet_micro", dict(stem_stride=3), "stem_stride"),
        ("unireplknet_micro", dict(num_classes=0), "num_classes"),
        ("unireplknet_micro", dict(ffn_ratio=0), "ffn_ratio"),
        ("convnext_micro", dict(depths=(1, 0, 1)), "depths"),
        ("convnext_micro", dict(in_chans=2.5), "in_chans"),
        ("resnet_micro", dict(rank=0), "rank"),
        ("resnet_micro", dict(rank=1.5), "rank"),
        ("resnet_micro", dict(dims=()), "dims"),
    ],
)
def test_constructors_validate(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.create(name, **kwargs)


@pytest.mark.skipif(HAS_FACTORIZED, reason="FactorizedConv2d exists")
def test_compressed_resnet_without_factorized_layers_says_so():
    with pytest.raises(RuntimeError, match="FactorizedConv2d"):
        models.create("resnet_micro_cp")


@needs_factorized
def test_compressed_resnet():
    torch.manual_seed(0)
    dense = models.create("resnet_micro")
    compressed = models.create("resnet_micro_cp")
    n_fact = sum(1 for m in compressed.modules() if type(m).__name__ == "FactorizedConv2d")
    assert n_fact == 6  # two 3x3 convs in each of the three basic blocks
    assert sum(p.numel() for p in compressed.parameters()) < 0.3 * sum(p.numel() for p in dense.parameters())
    x = torch.randn(3, 1, 32, 32)
    y = compressed(x)
    assert y.shape == (3, 10)
    y.sum().backward()
    assert all(p.grad is not None for p in compressed.parameters())
