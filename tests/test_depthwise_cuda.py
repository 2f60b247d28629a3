"""CUDA depthwise convolution kernels.

* On a GPU: outputs and all gradients against ``F.conv2d``/``F.conv3d``
  (``groups=C``, evaluated in float64) for float32/float16/bfloat16, NCHW and
  channels_last, common and odd geometries; float64 gradcheck; opcheck;
  torch.compile; the current-stream contract; indices past 2^31.  These skip
  when no GPU is visible.
* Everywhere (needs only a C++ compiler): a CPU replay of the CUDA kernels'
  tiling code (tests/cpp/depthwise_cuda_replay.cpp runs the functions of
  csrc/cuda/depthwise_cuda_plan.h block by block against a naive convolution).
"""
from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from depthwise_reference import CUDA_CASES
from device_marks import requires_cuda

import leanconv.ops  # noqa: F401  (registers fake kernels and autograd)
from leanconv.ops import depthwise_conv
from leanconv.ops._geometry import ntuple, padding_pairs

ROOT = Path(__file__).resolve().parents[1]

# rtol for each dtype; atol is rtol times the reference's largest magnitude
# (outputs are rounded to the dtype; accumulation is float32 or float64).
RTOL = {torch.float32: 2e-5, torch.float64: 1e-10, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def case_id(case) -> str:
    n, c, spatial, kernel, stride, padding, dilation = case
    return f"{'x'.join(map(str, spatial))}-k{'x'.join(map(str, kernel))}-s{stride}-p{padding}-d{dilation}".replace(
        " ", ""
    )


def reference(x, w, b, stride, padding, dilation):
    """F.conv2d / F.conv3d with groups=C in float64; padding pairs through F.pad."""
    n = x.dim() - 2
    pads = padding_pairs(padding, n)
    fpad = []
    for i in reversed(range(n)):  # F.pad wants the last axis first
        fpad += [pads[2 * i], pads[2 * i + 1]]
    conv = F.conv2d if n == 2 else F.conv3d
    return conv(
        F.pad(x.double(), fpad),
        w.double(),
        None if b is None else b.double(),
        ntuple(stride, n, "stride"),
        0,
        ntuple(dilation, n, "dilation"),
        groups=x.shape[1],
    )


def make_inputs(case, dtype, device, channels_last=False, bias=True, seed=0):
    n, c, spatial, kernel, stride, padding, dilation = case
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, *spatial, generator=g).to(device=device, dtype=dtype)
    w = torch.randn(c, 1, *kernel, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(c, generator=g).to(device=device, dtype=dtype) if bias else None
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
    return x, w, b


def assert_close_scaled(got, want, dtype, what):
    rtol = RTOL[dtype]
    scale = max(1.0, want.abs().max().item()) if want.numel() else 1.0
    torch.testing.assert_close(got.double(), want, rtol=rtol, atol=rtol * scale, msg=lambda m: f"{what}: {m}")


def check_case(case, dtype, device, channels_last):
    """Forward and all gradients of leanconv vs the float64 reference."""
    _, _, spatial, kernel, stride, padding, dilation = case
    x, w, b = make_inputs(case, dtype, device, channels_last)
    x.requires_grad_(True), w.requires_grad_(True), b.requires_grad_(True)
    y = depthwise_conv(x, w, b, stride, padding, dilation)
    xr, wr, br = (t.detach().double().requires_grad_(True) for t in (x, w, b))
    yr = reference(xr, wr, br, stride, padding, dilation)
    assert y.shape == yr.shape and y.dtype == dtype and y.device == x.device
    if channels_last:
        fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        assert y.is_contiguous(memory_format=fmt), "channels_last input must give a channels_last output"
    assert_close_scaled(y, yr, dtype, "output")
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)
    gx, gw, gb = torch.autograd.grad(y, (x, w, b), gy)
    gxr, gwr, gbr = torch.autograd.grad(yr, (xr, wr, br), gy.double())
    assert_close_scaled(gx, gxr, dtype, "grad_input")
    assert_close_scaled(gw, gwr, dtype, "grad_weight")
    assert_close_scaled(gb, gbr, dtype, "grad_bias")
    assert gx.shape == x.shape and gw.shape == w.shape


@requires_cuda
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CUDA_CASES, ids=case_id)
def test_matches_torch_on_cuda(case, dtype, channels_last):
    check_case(case, dtype, "cuda", channels_last)


@requires_cuda
@pytest.mark.parametrize("case", CUDA_CASES[:3] + CUDA_CASES[-6:], ids=case_id)
def test_float64_matches_torch_on_cuda(case):
    check_case(case, torch.float64, "cuda", channels_last=False)


GRADCHECK_CASES = [
    (2, 3, (7, 8), (3, 3), 1, 1, 1),
    (1, 2, (9, 7), (3, 2), 2, (1, 0, 1, 1), 2),
    (1, 2, (6, 11), (1, 5), 1, (0, 2), 1),
    (1, 2, (5, 6, 7), (3, 3, 2), (1, 2, 1), 1, 1),
]


@requires_cuda
@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=case_id)
def test_gradcheck_float64_cuda(case):
    _, _, _, _, stride, padding, dilation = case
    x, w, b = (t.requires_grad_(True) for t in make_inputs(case, torch.float64, "cuda"))
    fn = lambda x, w, b: depthwise_conv(x, w, b, stride, padding, dilation)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


@requires_cuda
def test_noncontiguous_inputs_cuda():
    base = torch.randn(2, 6, 40, 50, device="cuda")
    x = base[:, ::2, 3:, ::2]  # no layout the kernels read directly
    w = torch.randn(6, 1, 5, 5, device="cuda").transpose(2, 3)[:3]
    b = torch.randn(6, device="cuda")[::2]
    y = depthwise_conv(x, w, b, 1, 2, 1)
    assert_close_scaled(y, reference(x, w, b, 1, 2, 1), torch.float32, "output")


@requires_cuda
def test_empty_batch_cuda():
    x = torch.randn(0, 4, 9, 9, device="cuda", requires_grad=True)
    w = torch.randn(4, 1, 3, 3, device="cuda", requires_grad=True)
    y = depthwise_conv(x, w, None, 1, 1, 1)
    assert y.shape == (0, 4, 9, 9)
    gx, gw = torch.autograd.grad(y.sum(), (x, w))
    assert gx.shape == x.shape
    assert torch.equal(gw, torch.zeros_like(w))


@requires_cuda
def test_weight_gradient_is_deterministic_cuda():
    tiled, generic = (2, 8, (56, 56), (7, 7), 1, 3, 1), (3, 5, (17, 19), (3, 3), 2, 1, 1)
    for case in (tiled, generic):  # the two weight-gradient kernels
        x, w, _ = make_inputs(case, torch.float32, "cuda", bias=False)
        _, _, _, kernel, stride, padding, dilation = case
        n = len(kernel)
        gy = torch.randn_like(depthwise_conv(x, w, None, stride, padding, dilation))
        args = (list(kernel), ntuple(stride, n, "s"), padding_pairs(padding, n), ntuple(dilation, n, "d"))
        first = torch.ops.leanconv.depthwise_conv_backward_weight(gy, x, *args)
        again = torch.ops.leanconv.depthwise_conv_backward_weight(gy, x, *args)
        assert torch.equal(first, again)


@requires_cuda
def test_errors_name_the_argument_cuda():
    x = torch.randn(1, 2, 8, 8, device="cuda")
    with pytest.raises(RuntimeError, match="weight is on"):
        depthwise_conv(x, torch.randn(2, 1, 3, 3), None, 1, 1, 1)
    with pytest.raises(RuntimeError, match="weight dtype"):
        depthwise_conv(x, torch.randn(2, 1, 3, 3, device="cuda", dtype=torch.float16), None, 1, 1, 1)


@requires_cuda
def test_runs_on_the_current_stream():
    """The kernels must run on the caller's stream and must not synchronize."""
    case = (2, 4, (32, 32), (7, 7), 1, 3, 1)
    x_host, w, b = make_inputs(case, torch.float32, "cpu")
    w, b = w.cuda(), b.cuda()
    x = torch.zeros_like(x_host, device="cuda")
    src = x_host.cuda()
    gy = torch.randn(2, 4, 32, 32, device="cuda")
    geometry = ([1, 1], [3, 3, 3, 3], [1, 1])

    def run_ops():
        y = depthwise_conv(x, w, b, 1, 3, 1)
        gx = torch.ops.leanconv.depthwise_conv_backward_input(gy, w, list(x.shape), *geometry)
        gw = torch.ops.leanconv.depthwise_conv_backward_weight(gy, x, [7, 7], *geometry)
        return y, gx, gw

    run_ops()  # loads the kernels (lazy module loading may wait for busy streams)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)  # keeps `side` busy for about 0.1 s
        x.copy_(src)  # queued behind the sleep
        y, gx, gw = run_ops()
        pending = not side.query()
    side.synchronize()
    assert pending, "the ops waited for the stream (a synchronization inside the op?)"
    xr, wr = x_host.double().cuda().requires_grad_(True), w.double().requires_grad_(True)
    yr = reference(xr, wr, b, 1, 3, 1)
    gxr, gwr = torch.autograd.grad(yr, (xr, wr), gy.double())
    assert_close_scaled(y, yr, torch.float32, "output on a side stream")
    assert_close_scaled(gx, gxr, torch.float32, "grad_input on a side stream")
    assert_close_scaled(gw, gwr, torch.float32, "grad_weight on a side stream")


@requires_cuda
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_opcheck_cuda(channels_last):
    x, w, b = make_inputs((2, 3, (9, 10), (3, 5), 1, 1, 1), torch.float32, "cuda", channels_last)
    x.requires_grad_(True), w.requires_grad_(True), b.requires_grad_(True)
    geometry = ([1, 2], [1, 1, 2, 2], [1, 1])
    torch.library.opcheck(torch.ops.leanconv.depthwise_conv.default, (x, w, b, *geometry))
    y = torch.ops.leanconv.depthwise_conv(x, w, b, *geometry)
    gy = torch.randn_like(y)
    torch.library.opcheck(
        torch.ops.leanconv.depthwise_conv_backward_input.default, (gy, w, list(x.shape), *geometry)
    )
    torch.library.opcheck(
        torch.ops.leanconv.depthwise_conv_backward_weight.default, (gy, x, [3, 5], *geometry)
    )


@requires_cuda
def test_torch_compile_cuda():
    torch._dynamo.reset()
    x, w, b = make_inputs((2, 4, (24, 24), (7, 7), 1, 3, 1), torch.float32, "cuda")

    def loss(x, w, b):
        return depthwise_conv(x, w, b, 1, 3, 1).sin().sum()

    compiled = torch.compile(loss, fullgraph=True)
    leaves = [t.clone().requires_grad_(True) for t in (x, w, b)]
    got = compiled(*leaves)
    got_grads = torch.autograd.grad(got, leaves)
    ref_leaves = [t.double().requires_grad_(True) for t in (x, w, b)]
    want = reference(*ref_leaves, 1, 3, 1).sin().sum()
    want_grads = torch.autograd.grad(want, ref_leaves)
    assert_close_scaled(got, want, torch.float32, "loss")
    for g, r, name in zip(got_grads, want_grads, ("x", "w", "b")):
        assert_close_scaled(g, r, torch.float32, f"grad {name}")


def _free_gpu_bytes() -> int:
    free, _ = torch.cuda.mem_get_info()
    return free


@requires_cuda
def test_more_than_2_31_elements_across_planes():
    """int64 offsets: the last channels of a > 2^31-element tensor (channels are independent)."""
    shape, kernel, pad = (2, 8200, 512, 256), (7, 7), 3
    numel = shape[0] * shape[1] * shape[2] * shape[3]
    assert numel > 2**31
    if _free_gpu_bytes() < 6 * numel * 2:
        pytest.skip("not enough free GPU memory")
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(shape, device="cuda", dtype=torch.float16, generator=g)
    w = torch.randn(shape[1], 1, *kernel, device="cuda", dtype=torch.float16, generator=g)
    y = depthwise_conv(x, w, None, 1, pad, 1)
    gy = torch.randn(y.shape, device="cuda", dtype=torch.float16, generator=g)
    geometry = ([1, 1], [pad] * 4, [1, 1])
    gx = torch.ops.leanconv.depthwise_conv_backward_input(gy, w, list(shape), *geometry)
    gw = torch.ops.leanconv.depthwise_conv_backward_weight(gy, x, list(kernel), *geometry)
    tail = slice(shape[1] - 3, shape[1])
    xr = x[:, tail].double().requires_grad_(True)
    wr = w[tail].double().requires_grad_(True)
    yr = reference(xr, wr, None, 1, pad, 1)
    gxr, gwr = torch.autograd.grad(yr, (xr, wr), gy[:, tail].double())
    assert_close_scaled(y[:, tail], yr, torch.float16, "output (last channels)")
    assert_close_scaled(gx[:, tail], gxr, torch.float16, "grad_input (last channels)")
    assert_close_scaled(gw[tail], gwr, torch.float16, "grad_weight (last channels)")


@requires_cuda
def test_more_than_2_31_elements_in_one_plane():
    """int64 offsets inside one plane: the bottom-right corner of a 46341 x 46341 image."""
    side, k, pad = 46341, 3, 1
    if _free_gpu_bytes() < 4 * side * side * 2:
        pytest.skip("not enough free GPU memory")
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(1, 1, side, side, device="cuda", dtype=torch.float16, generator=g)
    w = torch.randn(1, 1, k, k, device="cuda", dtype=torch.float16, generator=g)
    y = depthwise_conv(x, w, None, 1, pad, 1)
    corner = 40  # outputs [side-corner, side) in both axes read inputs [side-corner-1, side)
    crop = F.pad(x[..., -corner - 1 :, -corner - 1 :].double(), (0, pad, 0, pad))
    want = F.conv2d(crop, w.double())
    assert_close_scaled(y[..., -corner:, -corner:], want, torch.float16, "output corner")
    del y
    gy = torch.randn(1, 1, side, side, device="cuda", dtype=torch.float16, generator=g)
    gx = torch.ops.leanconv.depthwise_conv_backward_input(gy, w, [1, 1, side, side], [1, 1], [pad] * 4, [1, 1])
    # grad_input = correlation of gy with the flipped kernel, same geometry
    gcrop = F.pad(gy[..., -corner - 1 :, -corner - 1 :].double(), (0, pad, 0, pad))
    want_gx = F.conv2d(gcrop, w.double().flip(2, 3))
    assert_close_scaled(gx[..., -corner:, -corner:], want_gx, torch.float16, "grad_input corner")


# ---------------------------------------------------------------- CPU replay

REPLAY_SRC = ROOT / "tests" / "cpp" / "depthwise_cuda_replay.cpp"
SMEM_DEFAULT, SMEM_H100 = 48 * 1024, 227 * 1024


def replay_line(dims, n, c, size, kernel, stride, pads, dilation, smem=SMEM_H100, target=16) -> str:
    """One case for the replay program (2-D cases get depth 1)."""
    if dims == 2:
        size, kernel, stride, dilation, pads = (1, *size), (1, *kernel), (1, *stride), (1, *dilation), (0, 0, *pads)
    fields = [dims, n, c, *size, *kernel, *stride, *dilation, *pads, smem, target]
    return " ".join(map(str, fields))


def fits(size, kernel, stride, pads, dilation) -> bool:
    return all(
        dilation[i] * (kernel[i] - 1) + 1 <= size[i] + pads[2 * i] + pads[2 * i + 1] for i in range(len(size))
    )


def replay_cases() -> list[str]:
    lines = []
    for n, c, spatial, kernel, stride, padding, dilation in CUDA_CASES:
        d = len(spatial)
        lines.append(
            replay_line(
                d, n, min(c, 2), spatial, kernel, ntuple(stride, d, "s"), padding_pairs(padding, d),
                ntuple(dilation, d, "d"),
            )
        )
    # shared-memory limits: 48 KB (opt-in refused) and tiny (tiled paths refused)
    lines.append(replay_line(2, 1, 1, (40, 40), (31, 31), (1, 1), (15, 15, 15, 15), (2, 1), smem=SMEM_DEFAULT))
    lines.append(replay_line(2, 1, 1, (20, 20), (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), smem=2048))
    # big tiles that need the opt-in (dilation along H makes the halo tall)
    lines.append(replay_line(2, 1, 1, (200, 70), (63, 7), (1, 1), (93, 93, 3, 3), (3, 1), smem=SMEM_H100, target=3))
    # stride / dilation along H with several row tiles (tile origins scale with the stride)
    lines.append(replay_line(2, 1, 1, (300, 20), (3, 5), (2, 1), (1, 1, 2, 2), (1, 1)))
    lines.append(replay_line(2, 1, 2, (260, 40), (5, 3), (3, 1), (4, 3, 1, 1), (2, 1)))
    lines.append(replay_line(3, 1, 1, (5, 90, 12), (2, 3, 3), (2, 2, 1), (1, 0, 1, 1, 1, 1), (1, 2, 1)))
    # many chunks per channel in both weight-gradient kernels
    lines.append(replay_line(2, 3, 2, (70, 90), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), target=200))
    lines.append(replay_line(3, 2, 2, (9, 40, 20), (3, 3, 3), (1, 1, 1), (1, 1, 1, 1, 1, 1), (1, 1, 1), target=100))
    # random geometries
    rng = random.Random(1234)
    while len(lines) < 120:
        dims = rng.choice((2, 2, 2, 3))
        kernel = [rng.choice((1, 1, 2, 3, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31)) for _ in range(dims)]
        if dims == 3:
            kernel = [min(k, 7) for k in kernel]
        stride = [rng.choice((1, 1, 1, 2, 3)) for _ in range(dims)]
        dilation = [rng.choice((1, 1, 1, 2, 3)) for _ in range(dims)]
        size = [rng.randint(1, 48 if dims == 2 else 12) for _ in range(dims)]
        if rng.random() < 0.3:
            size[-1] = rng.randint(60, 150)  # several column tiles
        pads = []
        for k, d in zip(kernel, dilation):
            pads += [rng.randint(0, d * (k - 1)), rng.randint(0, d * (k - 1))]
        if not fits(size, kernel, stride, pads, dilation):
            continue
        n, c = rng.randint(1, 3), rng.randint(1, 3)
        lines.append(
            replay_line(dims, n, c, size, kernel, stride, pads, dilation, target=rng.choice((1, 5, 40, 500)))
        )
    return lines


def _compile_replay(out: Path) -> Path:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the replay")
    base = [cxx, "-std=c++20", "-O1", f"-I{ROOT / 'csrc'}", str(REPLAY_SRC), "-o", str(out)]
    sanitized = base[:2] + ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"] + base[2:]
    for cmd in (sanitized, base):  # sanitizers when the toolchain has them
        if subprocess.run(cmd, capture_output=True, text=True).returncode == 0:
            return out
    res = subprocess.run(base, capture_output=True, text=True)
    pytest.fail(f"replay did not compile:\n{res.stderr[-4000:]}")


def test_cuda_tiling_replay_on_cpu(tmp_path):
    """The CUDA kernels' index code, run on the CPU, equals a naive convolution on every path."""
    exe = _compile_replay(tmp_path / "replay")
    lines = replay_cases()
    res = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert f"{len(lines)} cases, 0 failed" in out, out[-3000:]
    # every kernel was exercised, including the compiled kernel widths
    for path in ("fwd=fast(tw=16", "fwd=fast(tw=8", "fwd=direct", "+flipped:fast", "gw=fast", "gw=generic"):
        assert path in out, f"no case took path {path}"
    smem = [int(v) for v in re.findall(r"smem=(\d+)", out)]
    assert max(smem) > SMEM_DEFAULT, "no case needed the shared-memory opt-in"

