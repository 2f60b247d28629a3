"""The wave benchmark: interleaved timing rounds and an end-to-end run (no timing asserted)."""
import json

import pytest

from leanconv.bench.common import calls_per_timing, paired_rounds
from leanconv.bench.wave import main


def test_paired_rounds_interleave_and_stop():
    calls = []
    fns = {k: (lambda k=k: calls.append(k)) for k in ("a", "b", "c")}
    times = paired_rounds(fns, min_run_time=0.0, min_rounds=4)
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4, "c": 4}
    # every round calls each function once; the order reverses every other round
    assert calls == list("abc") + list("cba") + list("abc") + list("cba")
    capped = paired_rounds({"x": lambda: None}, min_run_time=1e9, min_rounds=2, max_rounds=3)
    assert len(capped["x"]) == 3


class FakeClock:
    """A clock that each function call advances by that function's cost."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def fn(self, cost):
        def call():
            self.now += cost
        return call


def test_paired_rounds_number_gives_seconds_per_call():
    clock = FakeClock()
    fns = {"fast": clock.fn(0.001), "slow": clock.fn(0.004)}
    times = paired_rounds(fns, min_run_time=0.05, clock=clock, min_rounds=2, number=5)
    assert times["fast"] == pytest.approx([0.001] * len(times["fast"]))
    assert times["slow"] == pytest.approx([0.004] * len(times["slow"]))
    # the slow function ran 5 calls x 4 ms = 20 ms per round: 3 rounds reach 50 ms
    assert len(times["slow"]) == 3
    with pytest.raises(ValueError, match="number"):
        paired_rounds(fns, min_run_time=0, clock=clock, number=0)


def test_calls_per_timing_from_the_fastest_function():
    clock = FakeClock()
    fns = {"a": clock.fn(0.0004), "b": clock.fn(0.002)}
    assert calls_per_timing(fns, 0.005, clock=clock) == 13  # ceil(5 ms / 0.4 ms)
    assert calls_per_timing({"x": clock.fn(0.01)}, 0.005, clock=clock) == 1
    assert calls_per_timing({"x": clock.fn(1e-7)}, 0.005, clock=clock, most=40) == 40


def test_bench_wave_end_to_end(tmp_path):
    pytest.importorskip("skfem")
    rc = main(["--grids", "12", "--batches", "1", "3", "--min-time", "0", "--threads", "1", "--out", str(tmp_path)])
    assert rc == 0
    rows = json.loads((tmp_path / "wave.json").read_text())["rows"]
    assert [(r["grid"], r["batch"]) for r in rows] == [("12x12", 1), ("12x12", 3)]
    for r in rows:
        assert r["rounds"] >= 5
        assert r["sparse_Mcells_per_s"] > 0 and r["torch_Mcells_per_s"] > 0
        for b in ("torch", "kernel"):
            if f"{b}_vs_sparse" in r:
                assert 0 < r[f"{b}_vs_sparse_min"] <= r[f"{b}_vs_sparse"]
    assert "interleaved rounds" in (tmp_path / "wave.md").read_text()
