"""The wave benchmark: interleaved timing rounds and an end-to-end run (no timing asserted)."""
import json

import pytest

from leanconv.bench.common import paired_rounds
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
