"""Per-shape backend choice of the drop-in modules (backend="auto"), on forced timings."""
import json

import pytest
import torch

from leanconv.nn import DepthwiseConv2d, DepthwiseConv3d, FactorizedConv2d
from leanconv.nn import _select

from device_marks import requires_cuda


@pytest.fixture
def timings(monkeypatch):
    """Forced timings: ``timings["torch"] = 1.0`` makes PyTorch's path look that slow.
    Every timed call is counted in ``timings["calls"]``."""
    state = {"leanconv": 1.0, "torch": 2.0, "calls": 0, "numbers": []}

    def fake(name, fn, device, number=1):
        fn()
        state["calls"] += 1
        state["numbers"].append(number)
        return state[name]

    monkeypatch.setattr(_select, "_time_call", fake)
    monkeypatch.delenv(_select.ENV, raising=False)
    _select.clear_backend_choices()
    yield state
    _select.clear_backend_choices()


def spy(monkeypatch, module):
    """Which path each call took: patch both implementations to record their name."""
    taken = []
    for name, attr in (("leanconv", "_leanconv_forward" if hasattr(module, "_leanconv_forward") else "_cp_forward"),
                       ("torch", "_conv_forward" if hasattr(module, "_leanconv_forward") else "_dense_forward")):
        original = getattr(module, attr)

        def wrapped(*a, _orig=original, _name=name, **k):
            taken.append(_name)
            return _orig(*a, **k)

        monkeypatch.setattr(module, attr, wrapped)
    return taken


@pytest.mark.parametrize("make", [lambda b: DepthwiseConv2d(4, 4, 3, padding=1, backend=b),
                                  lambda b: FactorizedConv2d(4, 6, 3, padding=1, rank=3, backend=b)])
def test_picks_each_backend_on_forced_timings_with_the_same_results(timings, monkeypatch, make):
    m = make("auto")
    x = torch.randn(2, 4, 9, 8)
    y_lean = m(x)
    assert _select.backend_choices()[-1]["backend"] == "leanconv"
    timings.update(leanconv=3.0, torch=1.0)
    x2 = torch.randn(2, 4, 9, 7)  # a new signature is measured again
    taken = spy(monkeypatch, m)
    m(x2)
    assert _select.backend_choices()[-1]["backend"] == "torch" and taken[-1] == "torch"
    forced = make("leanconv")
    forced.load_state_dict(m.state_dict())
    torch.testing.assert_close(m(x2), forced(x2), atol=1e-5, rtol=1e-4)  # both exact
    as_torch = make("torch")
    as_torch.load_state_dict(m.state_dict())
    torch.testing.assert_close(as_torch(x), y_lean, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("torch_time, timings_each", [
    (10.0, 1),    # 9x slower in a first call of 1 s or more: decided there
    (4.0, 3),     # 3x slower after the two warm-up calls and the first round
    (1.5, 5),     # apart: two warm-up calls + ROUNDS rounds
    (1.04, 8),    # within 5 %: two warm-up calls + MAX_ROUNDS rounds
])
def test_measures_longer_only_when_the_two_are_close(timings, torch_time, timings_each):
    timings.update(leanconv=1.0, torch=torch_time)
    DepthwiseConv2d(4, 4, 3, padding=1)(torch.randn(1, 4, 6, 6))
    assert timings["calls"] == 2 * timings_each
    # leanconv's path only when it is more than 5 % faster
    assert _select.backend_choices()[-1]["backend"] == ("torch" if torch_time <= 1.05 else "leanconv")


@pytest.mark.parametrize("lean, torch_time, chosen", [(1.0, 1.04, "torch"), (1.0, 1.06, "leanconv"),
                                                     (1.0, 0.99, "torch")])
def test_near_ties_go_to_the_replaced_module(timings, lean, torch_time, chosen):
    timings.update(leanconv=lean, torch=torch_time)
    FactorizedConv2d(4, 6, 3, padding=1, rank=3)(torch.randn(1, 4, 6, 6))
    assert _select.backend_choices()[-1]["backend"] == chosen


@pytest.mark.parametrize("slow_first, first_s", [("torch", 0.01), ("leanconv", 0.3)])
def test_a_slow_first_call_of_a_fast_layer_is_warm_up_not_a_verdict(timings, monkeypatch, slow_first,
                                                                     first_s):
    """oneDNN generates its kernel on the first call of a shape (10 ms), and a process's
    first leanconv fwd+bwd initialises for about 0.3 s: a first call 10-20x slower than the
    other candidate's, but under SLOW_CALL_S, must not decide."""
    first = {slow_first: True}
    steady = {"leanconv": 1.0e-3, "torch": 0.5e-3} if slow_first == "torch" else {"leanconv": 0.5e-3,
                                                                                 "torch": 15e-3}

    def fake(name, fn, device, number=1):
        fn()
        timings["calls"] += 1
        if first.pop(name, False):
            return first_s  # initialisation
        return steady[name]

    monkeypatch.setattr(_select, "_time_call", fake)
    DepthwiseConv2d(4, 4, 3, padding=1)(torch.randn(1, 4, 6, 6))
    assert _select.backend_choices()[-1]["backend"] == min(steady, key=steady.get)


@pytest.mark.parametrize("device, chosen, recheck", [("cpu", "leanconv", False), ("cuda", "torch", True)])
def test_on_cuda_a_first_call_of_seconds_is_cudnn_compiling_not_a_verdict(monkeypatch, device, chosen, recheck):
    """cuDNN compiles some kernels (bfloat16 channels_last depthwise) on the first call of a
    shape, 1-1.6 s on an H200: on CUDA that first call must not decide as it does on CPU
    (where a call of seconds is the kernel's own speed), and every CUDA choice, even a clear
    one, is measured once more after RECHECK_AFTER calls.  choose() only, with a fake clock
    (no GPU needed)."""
    calls = {"torch": 0, "leanconv": 0}

    def fake(name, fn, dev, number=1):
        calls[name] += 1
        if name == "torch" and calls[name] == 1:
            return 1.3  # compiling
        return {"torch": 20e-6, "leanconv": 60e-6}[name]

    monkeypatch.setattr(_select, "_time_call", fake)
    _select.clear_backend_choices()
    key = ("DepthwiseConv2d", torch.device(device), torch.bfloat16, "channels_last", (8, 64, 56, 56), (5, 5),
           (1, 1), (2, 2), (1, 1), False, False, 0)
    got = _select.choose(key, {"torch": lambda: None, "leanconv": lambda: None}, torch.device(device))
    assert got == chosen
    entry = _select.backend_choices()[-1]
    assert ("recheck_in" in entry) == recheck
    _select.clear_backend_choices()


def test_a_close_choice_is_measured_again_after_recheck_after_calls(timings):
    timings.update(leanconv=1.0, torch=1.2)  # leanconv's, by less than RECHECK_WITHIN
    m = DepthwiseConv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 6, 6)
    m(x)
    assert _select.backend_choices()[-1]["backend"] == "leanconv"
    timings.update(leanconv=2.0, torch=1.0)  # the process's later calls run at other speeds
    for _ in range(_select.RECHECK_AFTER - 1):
        m(x)
    first_calls = timings["calls"]
    assert _select.backend_choices()[-1]["backend"] == "leanconv"
    m(x)  # the RECHECK_AFTER-th call after the first: measured again
    choice = _select.backend_choices()[-1]
    assert choice["backend"] == "torch" and choice["how"] == "re-measured" and "recheck_in" not in choice
    assert timings["calls"] > first_calls
    for _ in range(3 * _select.RECHECK_AFTER):  # final: never measured a third time
        m(x)
    assert _select.backend_choices()[-1]["how"] == "re-measured" and len(_select.backend_choices()) == 1


def test_a_re_measurement_under_load_does_not_turn_a_clear_best_time(timings):
    """The re-measurement keeps each candidate's best time of both measurements: a burst of
    load during it (leanconv's calls slower only then) leaves the first choice standing."""
    timings.update(leanconv=1.0, torch=1.3)
    m = DepthwiseConv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 6, 6)
    m(x)
    timings.update(leanconv=1.6, torch=1.3)  # load while leanconv's path is timed again
    for _ in range(_select.RECHECK_AFTER):
        m(x)
    choice = _select.backend_choices()[-1]
    assert choice["how"] == "re-measured" and choice["backend"] == "leanconv"
    assert choice["times_ms"]["leanconv"] == pytest.approx(1.0e3) and choice["times_ms"]["torch"] == pytest.approx(1.3e3)


def test_a_clear_choice_is_not_measured_again(timings, tmp_path):
    timings.update(leanconv=1.0, torch=2.0)
    m = DepthwiseConv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 6, 6)
    m(x)
    assert "recheck_in" not in _select.backend_choices()[-1]
    calls = timings["calls"]
    for _ in range(_select.RECHECK_AFTER + 5):
        m(x)
    assert timings["calls"] == calls


def test_fast_calls_are_timed_several_in_a_row(timings):
    timings.update(leanconv=1e-4, torch=1.5e-4)
    DepthwiseConv2d(4, 4, 3, padding=1)(torch.randn(1, 4, 6, 6))
    # two warm-up calls each, then ceil(TIMING_S / 0.1 ms) = 10 calls per timing
    assert timings["numbers"] == [1] * 4 + [10] * (2 * _select.ROUNDS)
    timings.update(leanconv=1e-7, torch=1.5e-7, numbers=[])
    DepthwiseConv2d(4, 4, 3, padding=1)(torch.randn(1, 4, 6, 7))
    assert max(timings["numbers"]) == _select.MAX_CALLS


def test_cache_is_keyed_by_shape_layout_dtype_and_gradients(timings):
    m = DepthwiseConv2d(4, 4, 3, padding=1, backend="auto")
    x = torch.randn(2, 4, 9, 8)
    m(x)
    calls = timings["calls"]
    m(x.clone())  # same signature: no measurement
    assert timings["calls"] == calls and len(_select.backend_choices()) == 1
    for variant in (torch.randn(3, 4, 9, 8), x.contiguous(memory_format=torch.channels_last), x.double(),
                    x.clone().requires_grad_()):
        if variant.dtype == torch.float64:
            m.double()
        m(variant)
        m.float()
    keys = [(c["input_shape"], c["layout"], c["dtype"], c["grad_input"]) for c in _select.backend_choices()]
    assert len(set(keys)) == 5
    assert {c["grad_weight"] for c in _select.backend_choices()} == {True}
    with torch.no_grad():
        m(x.clone().requires_grad_())  # forward only: a signature of its own
    assert len(_select.backend_choices()) == 6
    assert not _select.backend_choices()[-1]["grad_weight"] and not _select.backend_choices()[-1]["grad_input"]
    m.weight.requires_grad_(False)
    m.bias.requires_grad_(False)
    m(x)  # nothing needs a gradient: the same forward-only signature
    assert len(_select.backend_choices()) == 6


def test_force_switch_argument_and_environment(timings, monkeypatch):
    m = DepthwiseConv3d(2, 2, 3, padding=1, backend="torch")
    taken = spy(monkeypatch, m)
    m(torch.randn(1, 2, 5, 5, 5))
    assert taken == ["torch"] and timings["calls"] == 0
    env = DepthwiseConv3d(2, 2, 3, padding=1)
    taken = spy(monkeypatch, env)
    monkeypatch.setenv(_select.ENV, "leanconv")
    env(torch.randn(1, 2, 5, 5, 5))
    monkeypatch.setenv(_select.ENV, "torch")
    env(torch.randn(1, 2, 5, 5, 5))
    assert taken == ["leanconv", "torch"] and timings["calls"] == 0
    auto = DepthwiseConv3d(2, 2, 3, padding=1, backend="auto")  # an explicit argument beats the environment
    auto(torch.randn(1, 2, 5, 5, 5))
    assert timings["calls"] > 0
    monkeypatch.setenv(_select.ENV, "fastest")
    with pytest.raises(ValueError, match="LEANCONV_BACKEND must be one of"):
        env(torch.randn(1, 2, 5, 5, 5))
    with pytest.raises(ValueError, match="backend must be one of"):
        DepthwiseConv2d(2, 2, 3, backend="cudnn")


def test_save_and_load_choices(timings, tmp_path):
    m = DepthwiseConv2d(4, 4, 3, padding=1, backend="auto")
    timings.update(leanconv=5.0, torch=1.0)
    m(torch.randn(2, 4, 9, 8))
    path = _select.save_backend_choices(tmp_path / "choices.json")
    saved = _select.backend_choices()
    _select.clear_backend_choices()
    assert _select.load_backend_choices(path) == 1
    calls = timings["calls"]
    m(torch.randn(2, 4, 9, 8))
    assert timings["calls"] == calls  # used without measuring
    loaded = _select.backend_choices()
    assert loaded[0]["backend"] == "torch" and loaded[0]["how"] == "loaded"
    assert {k: v for k, v in loaded[0].items() if k != "how"} == {k: v for k, v in saved[0].items() if k != "how"}
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a leanconv backend-choices file"):
        _select.load_backend_choices(tmp_path / "bad.json")


def test_loaded_close_choices_are_not_measured_again(timings, tmp_path):
    timings.update(leanconv=1.0, torch=1.2)
    m = DepthwiseConv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 6, 6)
    m(x)
    assert _select.backend_choices()[-1]["recheck_in"] == _select.RECHECK_AFTER
    path = _select.save_backend_choices(tmp_path / "choices.json")
    assert "recheck_in" not in path.read_text()
    _select.clear_backend_choices()
    _select.load_backend_choices(path)
    calls = timings["calls"]
    for _ in range(_select.RECHECK_AFTER + 5):
        m(x)
    assert timings["calls"] == calls


def test_torch_compile_fullgraph_with_auto(timings):
    m = DepthwiseConv2d(4, 4, 3, padding=1, backend="auto")
    x = torch.randn(2, 4, 9, 8, requires_grad=True)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    y = compiled(x)
    ref = torch.nn.functional.conv2d(x, m.weight, m.bias, 1, 1, 1, 4)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-4)
    g, = torch.autograd.grad(y.sum(), [x])
    torch.testing.assert_close(g, torch.autograd.grad(ref.sum(), [x])[0], atol=1e-5, rtol=1e-4)
    assert timings["calls"] == 0  # nothing timed while tracing: the built-in table decided


@requires_cuda
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_auto_on_cuda_times_with_events_and_matches_the_torch_module(layout, dtype):
    """Real timings (CUDA events, no fake clock): whichever path is chosen, the module
    gives what ``nn.Conv2d`` with the same weights gives, and the choice is kept for the
    CUDA key with both measured times."""
    torch.manual_seed(0)
    _select.clear_backend_choices()
    ref = torch.nn.Conv2d(16, 16, 7, padding=3, groups=16).cuda().to(dtype)
    mine = DepthwiseConv2d(16, 16, 7, padding=3, backend="auto").cuda().to(dtype)
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(2, 16, 20, 20, device="cuda", dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    xs = [x.detach().clone().requires_grad_() for _ in range(2)]
    ys = [m(xi) for m, xi in zip((mine, ref), xs)]
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ys[0].float(), ys[1].float(), **tol)
    g = torch.randn_like(ys[1])
    for y in ys:
        y.backward(g)
    torch.testing.assert_close(xs[0].grad.float(), xs[1].grad.float(), **tol)
    torch.testing.assert_close(mine.weight.grad.float(), ref.weight.grad.float(), rtol=5e-2 if dtype ==
                               torch.bfloat16 else 1e-4, atol=5e-1 if dtype == torch.bfloat16 else 1e-3)
    choices = _select.backend_choices()
    assert len(choices) == 1
    (entry,) = choices
    assert entry["backend"] in ("leanconv", "torch")
    assert "cuda" in json.dumps(entry)
    assert set(entry["times_ms"]) == {"leanconv", "torch"} and min(entry["times_ms"].values()) > 0
    _select.clear_backend_choices()
