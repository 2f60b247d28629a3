"""one_way_conv (the fused chain of 1-D filters) and factorized_conv against
PyTorch references: a depthwise F.conv2d/F.conv3d with the outer-product
kernel, and F.conv with the reconstructed CP kernel."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from device_marks import DEVICES, requires_cuda
from leanconv.ops import factorized_conv, one_way_conv, one_way_conv_unfused

TOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 1e-2}


def reference(x, filters, scale, stride, pads, dilation):
    """Depthwise conv with kernel = outer product of the filters (times scale)."""
    n = x.dim() - 2
    if n == 2:
        k = filters[0][:, :, None] * filters[1][:, None, :]
    else:
        k = filters[0][:, :, None, None] * filters[1][:, None, :, None] * filters[2][:, None, None, :]
    if scale is not None:
        k = k * scale.view(-1, *[1] * n)
    xp = F.pad(x, [v for i in reversed(range(n)) for v in (pads[2 * i], pads[2 * i + 1])])
    conv = F.conv2d if n == 2 else F.conv3d
    return conv(xp, k.unsqueeze(1), None, stride, 0, dilation, groups=x.shape[1])


def sample_inputs(device, dtype, dims=2, n=2, c=3, size=(7, 8, 9), ks=(3, 2, 3), scale=True, grad=False):
    g = torch.Generator().manual_seed(1)
    spatial = size[3 - dims:]
    kk = ks[3 - dims:]
    mk = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(device, dtype).requires_grad_(grad)  # noqa: E731
    x = mk(n, c, *spatial)
    filters = [mk(c, k) for k in kk]
    sc = mk(c) if scale else None
    return x, filters, sc


def geometry_strategy(dims):
    return st.tuples(
        st.lists(st.integers(1, 9), min_size=dims, max_size=dims),  # spatial size
        st.lists(st.integers(1, 4), min_size=dims, max_size=dims),  # kernel
        st.lists(st.integers(1, 3), min_size=dims, max_size=dims),  # stride
        st.lists(st.integers(1, 3), min_size=dims, max_size=dims),  # dilation
        st.lists(st.integers(0, 3), min_size=2 * dims, max_size=2 * dims),  # (before, after) pads
        st.booleans(),  # scale
    )


def check_against_reference(device, dtype, dims, geo, n=2, c=3):
    size, ks, stride, dil, pads, with_scale = geo
    if any(d * (k - 1) + 1 > s + pads[2 * i] + pads[2 * i + 1] for i, (s, k, d) in enumerate(zip(size, ks, dil))):
        return  # kernel larger than the padded input: covered by test_bad_geometry
    g = torch.Generator().manual_seed(sum(size) + 7 * sum(ks))
    mk = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(device, dtype).requires_grad_()  # noqa: E731
    x = mk(n, c, *size)
    filters = [mk(c, k) for k in ks]
    scale = mk(c) if with_scale else None
    y = one_way_conv(x, filters, scale, stride, pads, dil)
    yr = reference(x, filters, scale, stride, pads, dil)
    torch.testing.assert_close(y, yr, atol=TOL[dtype], rtol=TOL[dtype])
    gy = torch.randn_like(yr)
    inputs = [x, *filters] + ([scale] if scale is not None else [])
    got = torch.autograd.grad(y, inputs, gy)
    want = torch.autograd.grad(yr, inputs, gy)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=TOL[dtype] * 10, rtol=TOL[dtype])


@given(geometry_strategy(2))
def test_one_way_conv_2d_matches_depthwise_reference(geo):
    check_against_reference("cpu", torch.float64, 2, geo)


@given(geometry_strategy(3))
def test_one_way_conv_3d_matches_depthwise_reference(geo):
    check_against_reference("cpu", torch.float64, 3, geo)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("dims", [2, 3])
def test_one_way_conv_dtypes(device, dtype, dims):
    geo = ([6, 7, 9][3 - dims:], [3, 2, 5][3 - dims:], [1, 2, 1][3 - dims:], [1, 1, 2][3 - dims:],
           [1, 1, 0, 2, 3, 1][6 - 2 * dims:], True)
    check_against_reference(device, dtype, dims, geo)


def test_large_kernel_and_wide_rows_use_several_row_blocks():
    # 31-tap filters on a 3 x 200 x 300 input: rows are processed in several blocks
    geo = ([200, 300], [31, 31], [1, 1], [1, 1], [15, 15, 15, 15], True)
    check_against_reference("cpu", torch.float64, 2, geo, n=1, c=2)
    geo = ([40, 90], [5, 7], [2, 3], [3, 2], [4, 0, 1, 5], False)
    check_against_reference("cpu", torch.float64, 2, geo, n=1, c=2)


def test_gradcheck_float64():
    for dims in (2, 3):
        x, filters, scale = sample_inputs("cpu", torch.float64, dims, n=1, c=2, size=(4, 5, 6), grad=True)

        def fn(x, *fs, dims=dims):
            return one_way_conv(x, fs[:dims], fs[dims], stride=(1, 2, 1)[3 - dims:], padding=1, dilation=(2, 1, 1)[3 - dims:])

        assert torch.autograd.gradcheck(fn, (x, *filters, scale))


def test_unfused_path_matches_fused():
    for dims in (2, 3):
        x, filters, scale = sample_inputs("cpu", torch.float64, dims)
        kw = dict(stride=(1, 2, 1)[3 - dims:], padding=[1, 0, 2, 1, 0, 1][6 - 2 * dims:], dilation=(1, 1, 2)[3 - dims:])
        torch.testing.assert_close(one_way_conv(x, filters, scale, **kw), one_way_conv_unfused(x, filters, scale, **kw))


def test_channels_last_in_channels_last_out():
    x, filters, scale = sample_inputs("cpu", torch.float32)
    xc = x.contiguous(memory_format=torch.channels_last)
    y = one_way_conv(xc, filters, scale, padding=1)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, one_way_conv(x, filters, scale, padding=1))


def test_opcheck():
    for dims in (2, 3):
        x, filters, scale = sample_inputs("cpu", torch.float64, dims, n=1, c=2, size=(4, 5, 6), grad=True)
        fd = filters[0] if dims == 3 else None
        geo = ([1] * dims, [1, 0] * dims, [1] * dims)
        torch.library.opcheck(torch.ops.leanconv.one_way_conv.default, (x, fd, filters[-2], filters[-1], scale, *geo))
        gy = torch.randn_like(one_way_conv(x, filters[:dims], scale, *geo).detach())
        args = (gy, x.detach(), None if fd is None else fd.detach(), filters[-2].detach(), filters[-1].detach(),
                scale.detach(), *geo)
        for mask in ([True, True], [True, False], [False, True]):
            torch.library.opcheck(torch.ops.leanconv.one_way_conv_backward.default, (*args, mask))


def test_backward_mask_returns_only_what_was_asked():
    x, filters, scale = sample_inputs("cpu", torch.float64)
    gy = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    out = torch.ops.leanconv.one_way_conv_backward(gy, x, None, *filters, scale, [1, 1], [0, 0, 0, 0], [1, 1], [False, True])
    assert out[0].numel() == 0 and out[1].numel() == 0  # no grad_input asked; 2-D has no D filter
    assert out[2].shape == filters[0].shape and out[3].shape == filters[1].shape and out[4].shape == scale.shape
    out = torch.ops.leanconv.one_way_conv_backward(gy, x, None, *filters, None, [1, 1], [0, 0, 0, 0], [1, 1], [True, False])
    assert out[0].shape == x.shape and all(o.numel() == 0 for o in out[1:])


def test_double_backward_raises_clearly():
    x, filters, scale = sample_inputs("cpu", torch.float64, grad=True)
    (gx,) = torch.autograd.grad(one_way_conv(x, filters, scale).sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        gx.sum().backward()


def test_compile_fullgraph():
    x, filters, scale = sample_inputs("cpu", torch.float32, grad=True)

    def fn(x, fh, fw, s):
        return one_way_conv(x, [fh, fw], s, stride=2, padding=1).relu().sum()

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    got = torch.autograd.grad(compiled(x, *filters, scale), [x, *filters, scale])
    want = torch.autograd.grad(fn(x, *filters, scale), [x, *filters, scale])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(filters="wrong count"), "one \\(C, k\\) filter per spatial axis"),
        (dict(fh_shape=(4, 3)), "filter_h must have shape \\(C, k\\)"),
        (dict(scale_shape=(2,)), "scale must have shape"),
        (dict(dtype_mismatch=True), "filter_w dtype"),
        (dict(padding=[-1]), "padding must be non-negative"),
        (dict(stride=[0]), "stride must be positive"),
    ],
)
def test_bad_arguments(kwargs, match):
    x, (fh, fw), scale = sample_inputs("cpu", torch.float32)
    if "fh_shape" in kwargs:
        fh = torch.randn(*kwargs["fh_shape"])
    if "scale_shape" in kwargs:
        scale = torch.randn(*kwargs["scale_shape"])
    if "dtype_mismatch" in kwargs:
        fw = fw.double()
    filters = [fh] if kwargs.get("filters") else [fh, fw]
    with pytest.raises((RuntimeError, ValueError), match=match):
        one_way_conv(x, filters, scale, stride=kwargs.get("stride", 1), padding=kwargs.get("padding", 0))


def test_bad_geometry():
    x, filters, scale = sample_inputs("cpu", torch.float32, size=(7, 2, 2), ks=(3, 5, 3))
    with pytest.raises(RuntimeError, match="kernel is larger than the padded input"):
        one_way_conv(x, filters, scale)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("recompute", [False, True])
def test_factorized_conv_matches_reconstructed_kernel(device, recompute):
    g = torch.Generator().manual_seed(3)
    mk = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(device).requires_grad_()  # noqa: E731
    for dims in (2, 3):
        cin, cout, R = 5, 4, 3
        ks = (3, 2, 3)[3 - dims:]
        x = mk(2, cin, *(6, 7, 5)[3 - dims:])
        A, B, lam, bias = mk(cout, R), mk(cin, R), mk(R), mk(cout)
        fs = [mk(k, R) for k in ks]
        letters = "zyx"[3 - dims:]
        W = torch.einsum("r,or,ir," + ",".join(f"{a}r" for a in letters) + "->oi" + letters, lam, A, B, *fs)
        kw = dict(stride=(2, 1, 1)[3 - dims:], dilation=(1, 2, 1)[3 - dims:])
        y = factorized_conv(x, B, fs, A, lam, bias, padding=1, recompute=recompute, **kw)
        conv = F.conv2d if dims == 2 else F.conv3d
        yr = conv(x, W, bias, padding=1, **kw)
        torch.testing.assert_close(y, yr)
        gy = torch.randn_like(yr)
        params = [x, A, B, lam, bias, *fs]
        for a, b in zip(torch.autograd.grad(y, params, gy), torch.autograd.grad(yr, params, gy)):
            torch.testing.assert_close(a, b)


def test_recompute_gradcheck_and_partial_grads():
    """The recomputing backward: float64 gradcheck, and only the gradients asked for."""
    g = torch.Generator().manual_seed(5)
    mk = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_()  # noqa: E731
    x, A, B, lam, bias, fy, fx = mk(2, 3, 6, 5), mk(4, 2), mk(3, 2), mk(2), mk(4), mk(3, 2), mk(2, 2)

    def f(x, A, B, lam, bias, fy, fx):
        return factorized_conv(x, B, [fy, fx], A, lam, bias, stride=(1, 2), padding=(1, 0), recompute=True)

    assert torch.autograd.gradcheck(f, (x, A, B, lam, bias, fy, fx))
    y = f(x, A, B, lam, bias, fy, fx)
    gx, = torch.autograd.grad(y.sum(), [x])  # weights not asked for
    ref = f(x, A, B, lam, bias, fy, fx)
    torch.testing.assert_close(gx, torch.autograd.grad(ref.sum(), [x, A])[0])
    with torch.no_grad():
        torch.testing.assert_close(f(x, A, B, lam, bias, fy, fx), y.detach())


def test_recompute_keeps_only_the_input_for_backward():
    """Saved activations of one recomputing layer: the input alone (the stored path also keeps
    the two R-channel intermediates)."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 4, 16, 16, generator=g, requires_grad=True)
    A, B = torch.randn(4, 6, generator=g, requires_grad=True), torch.randn(4, 6, generator=g, requires_grad=True)
    fs = [torch.randn(3, 6, generator=g, requires_grad=True) for _ in range(2)]

    def saved_activation_elements(recompute):
        sizes = {}

        def pack(t):
            if t.numel() >= 512:  # activations, not the factors
                sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes() // t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            factorized_conv(x, B, fs, A, None, None, padding=1, recompute=recompute)
        return sum(sizes.values())

    assert saved_activation_elements(True) == x.numel()
    assert saved_activation_elements(False) > 2 * x.numel()


@requires_cuda
def test_cuda_matches_cpu():
    for dims in (2, 3):
        geo = ([9, 10, 33][3 - dims:], [3, 5, 4][3 - dims:], [2, 1, 3][3 - dims:], [1, 2, 1][3 - dims:],
               [1, 2, 0, 3, 2, 2][6 - 2 * dims:], True)
        check_against_reference("cuda", torch.float64, dims, geo, n=3, c=5)
        check_against_reference("cuda", torch.float32, dims, geo, n=3, c=5)


@requires_cuda
def test_cuda_long_filters_use_large_shared_memory():
    # a tile's input region needs > 48 KiB of shared memory (~190 KB in float64): the
    # kernel opts in.  float64, so that sums of 61 x 61 taps compare at TOL[float64]
    # (in float32 their rounding alone reaches ~1e-4 on an H200)
    geo = ([150, 170], [61, 61], [1, 1], [2, 2], [60, 60, 60, 60], True)
    check_against_reference("cuda", torch.float64, 2, geo, n=1, c=2)


@requires_cuda
def test_cuda_too_long_filters_fail_clearly():
    x = torch.randn(1, 2, 500, 500, device="cuda")
    f = torch.randn(2, 401, device="cuda")
    with pytest.raises(RuntimeError, match="too long for the fused kernel"):
        one_way_conv(x, [f, f], padding=200)


@requires_cuda
def test_cuda_runs_on_the_current_stream():
    x, filters, scale = sample_inputs("cuda", torch.float32, dims=3, grad=True)
    want = one_way_conv(x, filters, scale, padding=1)
    gwant = torch.autograd.grad(want.sum(), [x, *filters, scale])
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = one_way_conv(x, filters, scale, padding=1)
        ggot = torch.autograd.grad(got.sum(), [x, *filters, scale])
    stream.synchronize()
    torch.testing.assert_close(got, want)
    for a, b in zip(ggot, gwant):
        torch.testing.assert_close(a, b)
