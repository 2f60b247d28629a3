"""leanconv.nn.DepthwiseConv2d/3d as drop-ins for nn.Conv2d/nn.Conv3d(C, C, k, groups=C)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from device_marks import DEVICES
from depthwise_reference import assert_close_to
from leanconv.nn import DepthwiseConv2d, DepthwiseConv3d

MODULE_CASES = [
    # (dims, C, kernel, stride, padding, dilation, bias, padding_mode)
    (2, 6, 7, 1, 3, 1, True, "zeros"),
    (2, 6, (5, 3), (2, 1), (2, 1), 1, False, "zeros"),
    (2, 5, 4, 1, "same", 1, True, "zeros"),
    (2, 5, (3, 6), 1, "same", (2, 1), True, "zeros"),
    (2, 4, 5, 2, "valid", 1, True, "zeros"),
    (2, 4, 5, 1, 2, 1, True, "reflect"),
    (2, 4, (3, 5), 1, (1, 2), 1, True, "replicate"),
    (2, 4, 3, 2, 1, 1, True, "circular"),
    (2, 4, 6, 1, "same", 1, True, "reflect"),
    (3, 3, 3, 1, 1, 1, True, "zeros"),
    (3, 3, (3, 1, 5), 1, "same", 1, True, "zeros"),
    (3, 3, 3, (1, 2, 1), 2, 2, False, "replicate"),
    (3, 3, 2, 1, "same", 1, True, "circular"),
]


def _pair(dims, C, kernel, stride, padding, dilation, bias, padding_mode, device):
    torch_cls, ours_cls = (nn.Conv2d, DepthwiseConv2d) if dims == 2 else (nn.Conv3d, DepthwiseConv3d)
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, bias=bias,
              padding_mode=padding_mode, device=device, dtype=torch.float64)
    ref = torch_cls(C, C, groups=C, **kw)
    ours = ours_cls(C, **kw)
    return ref, ours


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", MODULE_CASES, ids=lambda c: f"{c[0]}d-k{c[2]}-p{c[4]}-{c[7]}")
def test_module_matches_torch_after_state_dict_swap(device, case):
    ref, ours = _pair(*case, device)
    # a checkpoint of the torch module loads into ours (strict: same keys and shapes)...
    ours.load_state_dict(ref.state_dict())
    assert set(ours.state_dict()) == set(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert ours.state_dict()[k].shape == v.shape
    dims, C = case[0], case[1]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((2, C) + (11,) * dims if dims == 2 else (2, C, 7, 8, 9), generator=gen, dtype=torch.float64)
    x = x.to(device)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y = ref(x1), ours(x2)
    assert_close_to(y, y_ref.detach().cpu(), torch.float64, "output")
    gy = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(device)
    y_ref.backward(gy)
    y.backward(gy)
    assert_close_to(x2.grad, x1.grad.cpu(), torch.float64, "grad_input")
    assert_close_to(ours.weight.grad, ref.weight.grad.cpu(), torch.float64, "grad_weight")
    if ref.bias is not None:
        assert_close_to(ours.bias.grad, ref.bias.grad.cpu(), torch.float64, "grad_bias")
    # ...and the other way round
    ours2, ref2 = _pair(*case, device)[::-1]
    ref2.load_state_dict(ours.state_dict())
    assert_close_to(ref2(x), ours(x).detach().cpu(), torch.float64, "output after loading ours into torch")


def test_module_defaults_and_repr():
    m = DepthwiseConv2d(8, kernel_size=31, padding=15)
    assert m.out_channels == 8 and m.groups == 8
    assert m.weight.shape == (8, 1, 31, 31) and m.bias.shape == (8,)
    assert "kernel_size=(31, 31)" in repr(m) and "DepthwiseConv2d" in repr(m)
    m3 = DepthwiseConv3d(4, 4, (7, 1, 1), groups=4, bias=False)
    assert m3.weight.shape == (4, 1, 7, 1, 1) and m3.bias is None


def test_module_rejects_non_depthwise_arguments():
    with pytest.raises(ValueError, match="out_channels must equal in_channels"):
        DepthwiseConv2d(4, 8, 3)
    with pytest.raises(ValueError, match="groups must equal in_channels"):
        DepthwiseConv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match="groups must equal in_channels"):
        DepthwiseConv3d(4, 4, 3, groups=1)


def test_module_channels_last_and_large_kernel():
    gen = torch.Generator().manual_seed(2)
    ref = nn.Conv2d(16, 16, (51, 5), padding="same", groups=16)
    ours = DepthwiseConv2d(16, kernel_size=(51, 5), padding="same")
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 16, 60, 20, generator=gen).contiguous(memory_format=torch.channels_last)
    y = ours(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = nn.functional.conv2d(x.double(), ref.weight.double(), ref.bias.double(), padding="same", groups=16)
    assert_close_to(y, expected, torch.float32, "output")
