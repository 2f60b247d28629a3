"""The compiled op leanconv::wave_step_ against a plain-torch reference (F.pad reflect + F.conv2d)."""
import pytest
import torch
import torch.nn.functional as F

from wave_backends import kernel_available

CUDA = torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])
pytestmark = pytest.mark.skipif(not kernel_available(), reason="leanconv._C not built")


def stencil(r: float) -> torch.Tensor:
    """Q1 stiffness stencil on hx x hy cells, r = hy/hx: r Kx(x)My + (1/r) Mx(x)Ky (independent formula)."""
    a = torch.tensor([-1.0, 2.0, -1.0], dtype=torch.float64)
    m = torch.tensor([1.0, 4.0, 1.0], dtype=torch.float64) / 6
    return r * torch.outer(m, a) + torch.outer(a, m) / r  # rows = y (H), columns = x (W)


def reference_step(prev, now, a_k, r, b=None, negd=None, force=None, a_f=None):
    u = now.double()
    pad = F.pad(u.unsqueeze(1), (1, 1, 1, 1), mode="reflect")
    s = F.conv2d(pad, stencil(r).to(u.device)[None, None]).squeeze(1)
    b = 2.0 if b is None else b.double()
    negd = -1.0 if negd is None else negd.double()
    nxt = negd * prev.double() + b * u - a_k.double() * s
    if force is not None:
        nxt = nxt + a_f.double() * force.double()
    return nxt


def k_of(r: float):
    return (1.5 * (r + 1 / r), 0.5 * (r - 1 / r), (r + 1 / r) / 6)


def sample(B, H, W, dtype, device, coef_batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    def rnd(*shape, lo=0.0):
        return (lo + torch.rand(*shape, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)
    return rnd(B, H, W, lo=-0.5), rnd(B, H, W, lo=-0.5), rnd(coef_batch, H, W) * 0.2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
# widths below, inside and above one and two node vectors (4, 2 float/double lanes on AVX2; 16, 8 on AVX-512)
@pytest.mark.parametrize(
    "B,H,W,coef_batch", [(1, 3, 3, 1), (2, 7, 5, 2), (4, 17, 23, 4), (3, 40, 9, 1), (1, 6, 33, 1), (1, 130, 70, 1)]
)
@pytest.mark.parametrize("r", [1.0, 0.6])
@pytest.mark.parametrize("damped,forced", [(False, False), (True, False), (False, True), (True, True)])
def test_one_step_matches_reference(device, dtype, B, H, W, coef_batch, r, damped, forced):
    from leanconv.ops import wave_step_

    prev, now, a_k = sample(B, H, W, dtype, device, coef_batch)
    extra = {}
    if damped:
        extra["b"] = 2 - torch.rand(coef_batch, H, W, dtype=dtype).to(device) * 0.1
        extra["negd"] = -1 + torch.rand(coef_batch, H, W, dtype=dtype).to(device) * 0.1
    if forced:
        extra["force"] = torch.randn(B, H, W, dtype=dtype).to(device)
        extra["a_f"] = torch.rand(coef_batch, H, W, dtype=dtype).to(device)
    expected = reference_step(prev, now, a_k, r, **extra)
    out = wave_step_(prev.clone(), now.clone(), a_k, k_of(r), 1, **extra)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("steps", [2, 5])
@pytest.mark.parametrize("B", [1, 6])
def test_many_steps_swap_buffers(device, steps, B):
    from leanconv.ops import wave_step_

    prev, now, a_k = sample(B, 19, 21, torch.float64, device, B, seed=1)
    a, b = prev.clone(), now.clone()
    for _ in range(steps):
        a, b = b, reference_step(a, b, a_k, 1.0)
    p2, n2 = prev.clone(), now.clone()
    newest = wave_step_(p2, n2, a_k, k_of(1.0), steps)
    assert newest.data_ptr() == (p2 if steps % 2 else n2).data_ptr()
    torch.testing.assert_close(newest, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close((n2 if steps % 2 else p2), a, rtol=1e-12, atol=1e-12)  # the step before


def test_zero_steps_leaves_buffers():
    from leanconv.ops import wave_step_

    prev, now, a_k = sample(2, 5, 5, torch.float32, "cpu", 1)
    p2, n2 = prev.clone(), now.clone()
    wave_step_(p2, n2, a_k, k_of(1.0), 0)
    assert torch.equal(p2, prev) and torch.equal(n2, now)


def test_bad_arguments_name_themselves():
    from leanconv.ops import wave_step_

    prev, now, a_k = sample(2, 6, 7, torch.float32, "cpu", 1)
    k = k_of(1.0)
    cases = [
        (dict(prev=prev[0]), "prev must have shape \\(B, H, W\\)"),
        (dict(now=now[:, :5]), "now must have the shape of prev"),
        (dict(now=now.double()), "now must have the dtype of prev"),
        (dict(a_k=a_k[:, :5]), "a_k must have shape \\(1, H, W\\) or \\(B, H, W\\)"),
        (dict(a_k=a_k.double()), "a_k must have the dtype of prev"),
        (dict(prev=prev.transpose(1, 2).contiguous().transpose(1, 2)), "must be contiguous"),
        (dict(b=a_k), "b and negd must be given together"),
        (dict(force=now, a_f=a_k, steps=2), "steps must be 1 when force is given"),
        (dict(force=now), "force and a_f must be given together"),
        (dict(prev=prev.long()), "prev must be float32 or float64"),
        (dict(prev=prev, now=prev), "prev and now must be different buffers"),
    ]
    for change, message in cases:
        args = dict(prev=prev.clone(), now=now.clone(), a_k=a_k, steps=1)
        args.update(change)
        kw = {key: args.pop(key) for key in ("b", "negd", "force", "a_f") if key in args}
        with pytest.raises(RuntimeError, match=message):
            wave_step_(args["prev"], args["now"], args["a_k"], k, args["steps"], **kw)


def test_opcheck():
    prev, now, a_k = sample(3, 8, 9, torch.float32, "cpu", 1)
    torch.library.opcheck(torch.ops.leanconv.wave_step_, (prev, now, a_k, None, None, None, None, 3.0, 0.0, 1 / 3, 2),
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("B,coef_batch", [(1, 1), (3, 3), (3, 1)])
def test_large_fields_split_rows_over_threads(threads, B, coef_batch):
    """Fields of >= 131072 nodes: with fewer items than threads the rows of each
    step are split over the threads, otherwise items go to threads whole; both
    give the reference's result over several steps."""
    from leanconv.ops import wave_step_

    prev, now, a_k = sample(B, 370, 360, torch.float64, "cpu", coef_batch, seed=2)
    a, b = prev.clone(), now.clone()
    for _ in range(3):
        a, b = b, reference_step(a, b, a_k, 1.0)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        newest = wave_step_(prev.clone(), now.clone(), a_k, k_of(1.0), 3)
    finally:
        torch.set_num_threads(old)
    torch.testing.assert_close(newest, b, rtol=1e-12, atol=1e-12)
