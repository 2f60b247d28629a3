"""The work-precision mode of the wave benchmark: the per-level table from a hand-made one, and a tiny run."""
import json

from leanconv.bench.wave import main
from leanconv.bench.wave_accuracy import cheapest_by_level


def test_cheapest_configuration_per_level():
    rows = [
        {"config": "q1 65", "scheme": "q1", "ms": 1.0, "e": 1e-2},
        {"config": "q1 129", "scheme": "q1", "ms": 8.0, "e": 3e-3},
        {"config": "fd4 33", "scheme": "fd4", "ms": 0.5, "e": 8e-3},
        {"config": "fd4 65", "scheme": "fd4", "ms": 2.0, "e": 1e-3},
        {"config": "fd4 65 slow", "scheme": "fd4", "ms": 4.0, "e": 1e-3},
    ]
    table = {r["level"]: r for r in cheapest_by_level(rows, "e", levels=(2e-2, 5e-3, 1e-3, 1e-4))}
    assert table[2e-2]["q1_config"] == "q1 65" and table[2e-2]["fd4_config"] == "fd4 33"
    assert table[2e-2]["q1_over_fd4"] == 2.0
    assert table[5e-3]["q1_config"] == "q1 129" and table[5e-3]["fd4_config"] == "fd4 65"
    assert table[5e-3]["q1_over_fd4"] == 4.0
    assert table[1e-3]["q1_config"] is None and table[1e-3]["q1_over_fd4"] is None
    assert table[1e-4]["fd4_config"] is None


def test_quick_run(tmp_path):
    assert main(["--work-precision", "--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "wave-work-precision-quick.json").read_text())["rows"]
    assert {r["scheme"] for r in rows} == {"q1", "fd4"}
    by = {(r["scheme"], r["grid"]): r for r in rows}
    assert by[("fd4", 17)]["nrmse@8"] < by[("q1", 17)]["nrmse@8"] / 2  # fourth order pays on the same grid
    assert (tmp_path / "wave-work-precision-quick.png").stat().st_size > 1000
