"""leanconv.ops.depthwise_conv2d/3d against F.conv2d/F.conv3d(groups=C).

Outputs and all three gradients are compared with the float64 reference over
a hand-picked grid (large, rectangular and one-way kernels, strides,
dilations, asymmetric padding, layouts) and over hypothesis-generated shapes;
then gradcheck/gradgradcheck, opcheck, torch.compile, dtypes, bad input.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import leanconv.ops as lops
from device_marks import DEVICES
from depthwise_reference import (
    LAYOUTS,
    assert_close_to,
    reference,
    reference_with_grads,
    with_layout,
)

ops = torch.ops.leanconv


def run_and_compare(device, dtype, shape, kernel, stride=1, padding=0, dilation=1, bias=True,
                    layout="contiguous", seed=0):
    """leanconv output and gradients (input, weight, bias) against the reference."""
    gen = torch.Generator().manual_seed(seed)
    dims = len(shape) - 2
    C = shape[1]
    x = torch.randn(shape, generator=gen).to(device=device, dtype=dtype).requires_grad_()
    w = torch.randn((C, 1, *kernel), generator=gen).to(device=device, dtype=dtype).requires_grad_()
    b = torch.randn(C, generator=gen).to(device=device, dtype=dtype).requires_grad_() if bias else None
    x_in = with_layout(x, layout)
    y = lops.depthwise_conv(x_in, w, b, stride, padding, dilation)
    gy = torch.randn(y.shape, generator=gen).to(device=device, dtype=dtype)
    y_ref, grads_ref = reference_with_grads(x, w, b, gy, stride, padding, dilation)
    assert y.dtype == dtype and y.device.type == torch.device(device).type
    assert_close_to(y, y_ref, dtype, "output")
    if layout == "channels_last" and not x_in.is_contiguous():  # (else the layout is ambiguous)
        fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
        assert y.is_contiguous(memory_format=fmt), "channels_last input, output not channels_last"
    leaves = [x, w] + ([b] if bias else [])
    grads = torch.autograd.grad(y, leaves, with_layout(gy, layout))
    for name, g, g_ref in zip(["grad_input", "grad_weight", "grad_bias"], grads, grads_ref):
        assert g.dtype == dtype
        assert_close_to(g, g_ref, dtype, name)


# (shape, kernel, stride, padding, dilation): padding as torch's per-axis ints,
# or (before, after) pairs per axis in (D,) H, W order.
GRID_2D = [
    ((2, 5, 9, 11), (3, 3), 1, 1, 1),
    ((2, 64, 56, 56), (7, 7), 1, 3, 1),
    ((2, 16, 28, 28), (13, 13), 1, 6, 1),
    ((1, 8, 40, 40), (31, 31), 1, 15, 1),
    ((1, 3, 70, 66), (63, 63), 1, 31, 1),
    ((1, 9, 60, 17), (51, 5), 1, (25, 2), 1),
    ((1, 9, 17, 60), (5, 51), 1, (2, 25), 1),
    ((2, 10, 12, 40), (1, 31), 1, (0, 15), 1),
    ((2, 10, 40, 12), (31, 1), 1, (15, 0), 1),
    ((3, 7, 23, 19), (5, 5), 2, 2, 1),
    ((2, 12, 25, 31), (7, 7), 3, 3, 1),
    ((2, 6, 20, 21), (3, 3), 1, 2, 2),
    ((2, 6, 30, 27), (5, 5), 1, 6, 3),
    ((2, 11, 26, 24), (7, 3), (2, 3), (3, 1), (3, 2)),
    ((2, 8, 15, 16), (4, 6), 1, (1, 2, 3, 2), 1),
    ((2, 4, 13, 14), (3, 3), 1, 0, 1),
    ((2, 4, 1, 1), (3, 3), 1, 1, 1),
    ((1, 4, 1, 9), (1, 5), 1, (0, 0, 2, 2), 1),
    ((4, 17, 9, 9), (9, 9), 1, 0, 1),
    ((2, 24, 33, 35), (11, 11), 2, (5, 4, 3, 6), 2),
    # small kernels on channels_last inputs run straight from the input (no
    # tile): interiors and row ends; with C not a multiple of the vector width
    # (the grid's odd C above too) the last channel block is masked
    ((2, 16, 20, 23), (3, 3), 1, 1, 1),
    ((2, 16, 12, 8), (5, 5), 1, (2, 2, 0, 4), 1),
    ((1, 32, 9, 1), (3, 1), 1, (1, 1, 0, 0), 1),
    ((2, 16, 17, 30), (5, 3), (2, 1), (2, 6), (2, 1)),
    ((2, 8, 14, 40), (1, 5), 1, 0, 1),
    # tall, narrow kernels on channels_last run straight from the input too
    ((1, 16, 48, 40), (51, 5), 1, (25, 2), 1),
    ((1, 32, 30, 36), (21, 3), 1, (10, 1), 1),
    # and up to 9x9 on rows of 48 outputs or more
    ((1, 32, 12, 52), (9, 9), 1, 4, 1),
    ((2, 40, 9, 56), (7, 7), 1, 3, 1),
    ((1, 20, 11, 13), (3, 3), 1, 1, 1),
    # 3x3, 5x5 and 7x7 on NCHW inputs run plane by plane, vectors along W, four
    # output rows at a time (then one): masked vectors at the row ends (17 wide:
    # only those), whole vectors (64), blocks of four inside (112), asymmetric
    # and large padding, no padding, dilation along W only
    ((2, 5, 23, 17), (3, 3), 1, 1, 1),
    ((1, 3, 10, 64), (5, 5), 1, 2, 1),
    ((1, 3, 9, 112), (7, 7), 1, 3, 1),
    ((2, 4, 14, 40), (7, 7), 1, (3, 1, 6, 0), 1),
    ((1, 3, 8, 30), (3, 3), 1, 2, 1),
    ((1, 4, 9, 37), (3, 3), 1, 0, 1),
    ((2, 4, 12, 50), (5, 5), 1, (2, 4), (1, 2)),
    # 3x3 grad_weight on channels_last reads x and grad_output in place: strides,
    # asymmetric padding with dilation, a masked last channel block (C = 20)
    ((2, 20, 17, 30), (3, 3), 2, 1, 1),
    ((2, 20, 12, 19), (3, 3), (1, 2), (0, 2, 3, 1), (1, 2)),
    # larger kernels on channels_last write whole channel blocks in place, the
    # masked rest (C = 20, 33) through the row buffer; rows of 45 and 20 outputs
    # end in partial blocks; dilation along W; grad_input of stride 2 too
    ((2, 20, 14, 45), (9, 9), 1, (4, 8), (1, 2)),
    ((1, 33, 20, 37), (13, 13), 2, 6, 1),
    # ConvNeXt's last stages: rows of 7 and 14 outputs (NCHW: the row's last
    # pixels packed and unpacked with masked loads and stores; the blocks of
    # outputs run past the row's end, into the zeros kept after it)
    ((2, 20, 7, 7), (7, 7), 1, 3, 1),
    ((1, 18, 14, 14), (7, 7), 1, 3, 1),
    ((1, 5, 9, 3), (3, 3), 1, 1, 1),
]

GRID_3D = [
    ((2, 5, 7, 8, 9), (3, 3, 3), 1, 1, 1),
    ((1, 16, 12, 14, 13), (7, 7, 7), 1, 3, 1),
    ((2, 6, 9, 10, 11), (7, 1, 1), 1, (3, 0, 0), 1),
    ((2, 6, 9, 10, 11), (1, 1, 9), 1, (0, 0, 4), 1),
    ((2, 6, 10, 9, 12), (1, 5, 1), 1, (0, 2, 0), 1),
    ((1, 9, 11, 12, 10), (3, 5, 3), (2, 1, 3), (1, 2, 3), (2, 1, 1)),
    ((2, 4, 8, 9, 10), (3, 4, 2), 1, (0, 2, 1, 2, 1, 0), (1, 2, 3)),
    ((1, 3, 1, 1, 1), (3, 3, 3), 1, 1, 1),
    ((1, 16, 6, 7, 30), (3, 1, 5), 1, (1, 0, 2), 1),
    # channels_last straight from the input: 3x3x3 (27 taps) and a tall 7x7x3
    ((1, 16, 8, 9, 20), (3, 3, 3), 1, 1, 1),
    ((1, 16, 10, 10, 24), (7, 7, 3), 1, (3, 3, 1), 1),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("case", GRID_2D + GRID_3D, ids=lambda c: "x".join(map(str, c[1])) + f"-{c[0]}")
def test_grid_float32(device, layout, case):
    shape, kernel, stride, padding, dilation = case
    run_and_compare(device, torch.float32, shape, kernel, stride, padding, dilation, layout=layout)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "case",
    [GRID_2D[0], GRID_2D[7], GRID_2D[9], GRID_2D[13], GRID_2D[14], GRID_2D[-9], GRID_2D[-3], GRID_2D[-1], GRID_3D[5],
     GRID_3D[6]],
    ids=lambda c: "x".join(map(str, c[1])),
)
def test_float64_all_layouts(device, layout, case):
    shape, kernel, stride, padding, dilation = case
    run_and_compare(device, torch.float64, shape, kernel, stride, padding, dilation, layout=layout)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("case", [GRID_2D[2], GRID_2D[5], GRID_2D[10], GRID_3D[1]], ids=lambda c: "x".join(map(str, c[1])))
def test_bfloat16(device, layout, case):
    shape, kernel, stride, padding, dilation = case
    run_and_compare(device, torch.bfloat16, shape, kernel, stride, padding, dilation, layout=layout)


@pytest.mark.parametrize("device", DEVICES)
def test_float16(device):
    run_and_compare(device, torch.float16, (2, 8, 20, 20), (7, 7), 1, 3, 1)


@pytest.mark.parametrize("device", DEVICES)
def test_no_bias_and_mixed_gradient_layouts(device):
    # channels_last input with a contiguous grad_output and the reverse
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 12, 15, 17, generator=gen).to(device).requires_grad_()
    w = torch.randn(12, 1, 5, 3, generator=gen).to(device).requires_grad_()
    for layout_x, layout_g in [("channels_last", "contiguous"), ("contiguous", "channels_last"),
                               ("hw_swapped", "strided")]:
        y = lops.depthwise_conv2d(with_layout(x, layout_x), w, None, 1, (2, 1))
        gy = torch.randn(y.shape, generator=gen).to(device)
        y_ref, (gx_ref, gw_ref, _) = reference_with_grads(x, w, None, gy, 1, (2, 1), 1)
        gx, gw = torch.autograd.grad(y, [x, w], with_layout(gy, layout_g))
        assert_close_to(y, y_ref, torch.float32, f"output {layout_x}")
        assert_close_to(gx, gx_ref, torch.float32, f"grad_input {layout_x}/{layout_g}")
        assert_close_to(gw, gw_ref, torch.float32, f"grad_weight {layout_x}/{layout_g}")


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_weight_and_bias(device):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 6, 14, 13, generator=gen).to(device)
    w = torch.randn(6, 1, 5, 5, generator=gen).to(device).transpose(2, 3)
    b = torch.randn(12, generator=gen).to(device)[::2]
    assert not w.is_contiguous() and not b.is_contiguous()
    y = lops.depthwise_conv2d(x, w, b, 1, 2)
    assert_close_to(y, reference(x, w, b, 1, 2, 1), torch.float32, "output")


# ---------------------------------------------------------------- hypothesis


@st.composite
def conv_cases(draw, max_kernel=7):
    """Random small problems: odd sizes, 1-pixel planes, strides and dilations up
    to 3, rectangular and one-way kernels, asymmetric padding, all layouts."""
    dims = draw(st.sampled_from([2, 2, 2, 3]))
    kmax = max_kernel if dims == 2 else 4
    kernel = [draw(st.integers(1, kmax)) for _ in range(dims)]
    stride = [draw(st.integers(1, 3)) for _ in range(dims)]
    dilation = [draw(st.integers(1, 3)) for _ in range(dims)]
    pads, sizes = [], []
    for i in range(dims):
        lo, hi = draw(st.integers(0, 4)), draw(st.integers(0, 4))
        extent = dilation[i] * (kernel[i] - 1) + 1
        smallest = max(1, extent - lo - hi)
        sizes.append(draw(st.integers(smallest, smallest + (14 if dims == 2 else 5))))
        pads += [lo, hi]
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 19))
    layout = draw(st.sampled_from(LAYOUTS))
    bias = draw(st.booleans())
    return (n, c, *sizes), kernel, stride, pads, dilation, layout, bias


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=80)
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_random_shapes_float64(device, case, seed):
    shape, kernel, stride, pads, dilation, layout, bias = case
    run_and_compare(device, torch.float64, shape, kernel, stride, pads, dilation, bias, layout, seed)


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=30)
@given(case=conv_cases(max_kernel=17), seed=st.integers(0, 2**16))
def test_random_shapes_float32(device, case, seed):
    shape, kernel, stride, pads, dilation, layout, bias = case
    run_and_compare(device, torch.float32, shape, kernel, stride, pads, dilation, bias, layout, seed)


# ---------------------------------------------------------------- autograd checks


GRADCHECK_CASES = [
    ((2, 3, 7, 6), (3, 2), (2, 1), (1, 0, 2, 1), (1, 2), "contiguous"),
    ((1, 4, 6, 7), (3, 3), 1, 1, 1, "channels_last"),
    ((1, 2, 5, 4, 6), (2, 3, 3), (1, 2, 1), (1, 1, 0, 2, 1, 1), (2, 1, 1), "contiguous"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: "x".join(map(str, c[1])))
def test_gradcheck_and_gradgradcheck(device, case):
    shape, kernel, stride, padding, dilation, layout = case
    gen = torch.Generator().manual_seed(5)
    C = shape[1]
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    w = torch.randn((C, 1, *kernel), generator=gen, dtype=torch.float64).to(device).requires_grad_()
    b = torch.randn(C, generator=gen, dtype=torch.float64).to(device).requires_grad_()

    def f(x, w, b):
        return lops.depthwise_conv(with_layout(x, layout), w, b, stride, padding, dilation)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


def op_samples(device):
    """Arguments for each of the four ops (float64 and float32, both layouts, 2-D and 3-D)."""
    gen = torch.Generator().manual_seed(6)

    def r(*s, dtype=torch.float64):
        return torch.randn(s, generator=gen, dtype=dtype).to(device)

    cl = torch.channels_last
    samples = []
    for x, w, b, st_, pad, dil in [
        (r(2, 3, 9, 8).contiguous(memory_format=cl), r(3, 1, 5, 2), r(3), [2, 1], [2, 1, 0, 1], [1, 2]),
        (r(1, 4, 6, 7, 5, dtype=torch.float32), r(4, 1, 3, 1, 3, dtype=torch.float32), None, [1, 1, 2], [1], [1, 1, 1]),
    ]:
        y = ops.depthwise_conv(x, w, b, st_, pad, dil)
        gy = torch.randn(y.shape, generator=gen, dtype=x.dtype).to(device)
        ksize = list(w.shape[2:])
        samples.append((ops.depthwise_conv.default, (x, w, b, st_, pad, dil)))
        samples.append((ops.depthwise_conv_backward_input.default, (gy, w, list(x.shape), st_, pad, dil)))
        if x.dim() == 4:  # the 3-D sample checks the forward op only (opcheck is slow)
            samples.append((ops.depthwise_conv_backward_weight.default, (gy, x, ksize, st_, pad, dil)))
            samples.append((ops.depthwise_conv_backward_bias.default, (gy,)))
    return samples


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for op, args in op_samples(device):
        args = tuple(a.requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                     for a in args)
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 8, 16, 15, generator=gen).to(device).requires_grad_()
    w = torch.randn(8, 1, 7, 5, generator=gen).to(device).requires_grad_()
    b = torch.randn(8, generator=gen).to(device).requires_grad_()

    def f(x, w, b):
        y = lops.depthwise_conv2d(x, w, b, stride=(1, 2), padding=(3, 2), dilation=1)
        return torch.relu(y).square().sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    grads = torch.autograd.grad(compiled(x, w, b), [x, w, b])
    xr, wr, br = (t.detach().double().requires_grad_() for t in (x, w, b))
    ref = torch.relu(reference(xr, wr, br, (1, 2), (3, 2), 1)).square().sum()
    grads_ref = torch.autograd.grad(ref, [xr, wr, br])
    for g, g_ref, name in zip(grads, grads_ref, ["input", "weight", "bias"]):
        assert_close_to(g, g_ref, torch.float32, f"compiled grad_{name}")


# ---------------------------------------------------------------- edge cases and errors


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_empty_batch(device, layout):
    x = with_layout(torch.zeros(0, 4, 9, 8, device=device), layout).requires_grad_()
    w = torch.randn(4, 1, 3, 3, device=device, requires_grad=True)
    b = torch.randn(4, device=device, requires_grad=True)
    y = lops.depthwise_conv2d(x, w, b, 2, 1)
    assert y.shape == (0, 4, 5, 4)
    gx, gw, gb = torch.autograd.grad(y.sum(), [x, w, b])
    assert gx.shape == x.shape
    assert torch.equal(gw, torch.zeros_like(w)) and torch.equal(gb, torch.zeros_like(b))
    y3 = lops.depthwise_conv3d(torch.zeros(0, 2, 4, 4, 4, device=device), torch.ones(2, 1, 3, 3, 3, device=device))
    assert y3.shape == (0, 2, 2, 2, 2)


def _raises(match, fn, exc=(ValueError, RuntimeError)):
    with pytest.raises(exc, match=match):
        fn()


@pytest.mark.parametrize("device", DEVICES)
def test_bad_input_errors_name_the_argument(device):
    x = torch.randn(2, 4, 10, 10, device=device)
    w = torch.randn(4, 1, 3, 3, device=device)
    conv = lops.depthwise_conv2d
    _raises(r"input must be \(N, C, H, W\) or \(C, H, W\)", lambda: conv(x[0, 0], w))
    _raises(r"weight must have shape \(C, 1, kD, kH, kW\)", lambda: lops.depthwise_conv3d(x, w))
    _raises(r"weight must have shape \(C, 1, kH, kW\)", lambda: conv(x, torch.randn(4, 1, 3, 3, 3, device=device)))
    _raises("input must be 4-D", lambda: ops.depthwise_conv(x[0], w, None, [1], [0], [1]))
    _raises(r"weight must have shape \(C, 1", lambda: conv(x, torch.randn(4, 2, 3, 3, device=device)))
    _raises("input channels = 4", lambda: conv(x, torch.randn(5, 1, 3, 3, device=device)))
    _raises(r"weight must have shape \(C, 1", lambda: conv(x, torch.randn(4, 1, 3, device=device)))
    _raises("weight dtype", lambda: conv(x, w.double()))
    _raises("bias must have shape", lambda: conv(x, w, torch.randn(3, device=device)))
    _raises("bias dtype", lambda: conv(x, w, torch.randn(4, device=device, dtype=torch.float64)))
    _raises("input must be a floating-point", lambda: conv(x.long(), w.long()))
    _raises("stride must be positive", lambda: conv(x, w, stride=0))
    _raises("stride must be positive", lambda: conv(x, w, stride=(1, -1)))
    _raises("dilation must be positive", lambda: conv(x, w, dilation=0))
    _raises("padding must be non-negative", lambda: conv(x, w, padding=-1))
    _raises("padding must be non-negative", lambda: conv(x, w, padding=(0, 1, -2, 0)))
    _raises("stride must be an int or a sequence of 2", lambda: conv(x, w, stride=(1, 1, 1)))
    _raises("padding must be an int, 2 ints", lambda: conv(x, w, padding=(1, 1, 1)))
    _raises("kernel is larger than the padded input along axis W",
            lambda: conv(torch.randn(1, 4, 10, 4, device=device), torch.randn(4, 1, 3, 7, device=device), padding=1))
    _raises("kernel is larger than the padded input along axis D",
            lambda: lops.depthwise_conv3d(torch.randn(1, 2, 2, 9, 9, device=device),
                                          torch.randn(2, 1, 3, 3, 3, device=device)))
    _raises(r"dilated kernel extent 9",
            lambda: conv(torch.randn(1, 4, 8, 10, device=device), w, dilation=4, padding=0))


@pytest.mark.parametrize("device", DEVICES)
def test_bad_backward_arguments(device):
    x = torch.randn(2, 4, 10, 10, device=device)
    w = torch.randn(4, 1, 3, 3, device=device)
    gy = torch.randn(2, 4, 8, 8, device=device)
    _raises("grad_output must have shape", lambda: ops.depthwise_conv_backward_input(gy, w, [2, 4, 11, 10], [1], [0], [1]))
    _raises("grad_output must have shape", lambda: ops.depthwise_conv_backward_weight(gy, x, [5, 3], [1], [0], [1]))
    _raises("kernel_size must have 2", lambda: ops.depthwise_conv_backward_weight(gy, x, [3], [1], [0], [1]))
    _raises("input_size must have 4", lambda: ops.depthwise_conv_backward_input(gy, w, [4, 10, 10], [1], [0], [1]))
    _raises("dtype", lambda: ops.depthwise_conv_backward_weight(gy, x.double(), [3, 3], [1], [0], [1]))
    _raises("weight dtype", lambda: ops.depthwise_conv_backward_input(gy, w.double(), [2, 4, 10, 10], [1], [0], [1]))


def test_device_mismatch_is_an_error():
    other = "cuda" if torch.cuda.is_available() else "meta"
    x = torch.randn(2, 4, 10, 10)
    w = torch.randn(4, 1, 3, 3)
    _raises("weight is on", lambda: lops.depthwise_conv2d(x, w.to(other)))
    _raises("bias is on", lambda: lops.depthwise_conv2d(x, w, torch.randn(4).to(other)))
    _raises("weight is on", lambda: lops.depthwise_conv2d(x.to(other), w))


def test_padding_pairs_follow_axis_order():
    # (before, after) pairs go D, H, W: (1, 0) on H and (0, 2) on W
    x = torch.randn(1, 2, 6, 5)
    w = torch.randn(2, 1, 2, 3)
    y = lops.depthwise_conv2d(x, w, padding=(1, 0, 0, 2))
    assert y.shape == (1, 2, 6, 5)
    assert_close_to(y, reference(x, w, None, 1, (1, 0, 0, 2), 1), torch.float32, "output")
    y_torch = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 2, 1, 0)), w, groups=2)
    torch.testing.assert_close(y, y_torch)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize(
    "shape, kernel, padding",
    [((1, 3, 70, 64), (7, 7), 3),         # one channel block: the rows are split into bands
     ((1, 8, 90, 100), (31, 31), 15),
     ((1, 2, 6, 6, 80), (3, 3, 5), (1, 1, 2))],
)
def test_thread_counts_and_bands(layout, shape, kernel, padding):
    # Few (image, channel block) items are cut into bands of rows: the result
    # matches the reference for 1 and 2 threads.
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(shape, generator=gen)
    w = torch.randn((shape[1], 1, *kernel), generator=gen)
    b = torch.randn(shape[1], generator=gen)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            run_and_compare("cpu", torch.float32, shape, kernel, 1, padding, 1, True, layout, seed=n)
            y = lops.depthwise_conv(with_layout(x, layout), w, b, 1, padding)
            assert_close_to(y, reference(x, w, b, 1, padding, 1), torch.float32, f"output, {n} threads")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("stream_min_bytes", ["4194304", None])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel, padding", [((3, 3), 1), ((5, 5), (1, 3)), ((1, 5), 0)])
def test_large_channels_last_outputs_stream_past_the_cache(dtype, kernel, padding, stream_min_bytes, monkeypatch):
    # Small kernels on channels_last tensors run straight from the input; an
    # output of LEANCONV_STREAM_MIN_BYTES or more (by default the last-level
    # cache's size, at least 32 MiB) is written with non-temporal stores
    # (forward, and grad_input, which runs as a forward job): these outputs
    # (4.4 and 8.8 MiB) with and without them, same values as the reference.
    if stream_min_bytes is None:
        monkeypatch.delenv("LEANCONV_STREAM_MIN_BYTES", raising=False)
    else:
        monkeypatch.setenv("LEANCONV_STREAM_MIN_BYTES", stream_min_bytes)
    run_and_compare("cpu", dtype, (3, 64, 72, 80), kernel, 1, padding, 1, True, "channels_last", seed=3)
