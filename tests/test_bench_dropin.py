"""The drop-in benchmark runs end to end (no timing asserted)."""
import json

from leanconv.bench.dropin import LAYOUTS, PASSES, QUICK, main


def test_bench_dropin_smoke(tmp_path):
    assert main(["--quick", "--cases", "k3 small", "--min-run-time", "0.001", "--rounds", "2",
                 "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "dropin-cpu-float32-quick.json").read_text())["rows"]
    assert len(rows) == len(LAYOUTS) * len(PASSES) * sum("k3 small" in c.name for c in QUICK)
    for r in rows:
        assert r["chosen"] in ("leanconv", "torch") and r["rounds"] >= 2
        assert r["final"].split(" ")[0] in ("leanconv", "torch")
        assert r["ratio_low"] <= r["ratio"] <= r["ratio_high"] and r["first_call_ms"] > 0


def test_bench_dropin_bad_arguments(capsys):
    assert main(["--cases", "k999"]) == 2
    assert "no case matches" in capsys.readouterr().err
