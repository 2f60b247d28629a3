"""The models benchmark runs end to end and its variants agree (no timing asserted)."""
import json

from leanconv.bench.models import main


def test_bench_models_smoke(tmp_path):
    rc = main(["--image-size", "32", "--batch", "2", "--min-run-time", "0.01", "--threads", "1", "--cpu-time",
               "--layouts", "channels_last", "--out", str(tmp_path)])
    assert rc == 0
    rows = json.loads((tmp_path / "models.json").read_text())["rows"]
    assert len(rows) == 2 * 2 * 1 * 2  # nets x modes x layouts x backends
    for r in rows:
        assert r["ms"] > 0 and r["images_per_s"] > 0
        assert r["max_rel_diff"] < 1e-4, r  # same weights: leanconv and PyTorch variants agree
        if r["backend"] == "torch":
            assert r["speedup_same_layout"] == 1.0
            assert r["dw_layers_leanconv"] == 0 and r["dw_layers_torch"] > 0, r
        else:  # every depthwise layer on leanconv's kernels, also after re-parameterization (infer)
            assert r["dw_layers_leanconv"] > 0 and r["dw_layers_torch"] == 0, r
    assert (tmp_path / "models.md").read_text().count("UniRepLKNet-A K=13") == 4


def test_bench_models_bad_arguments(capsys):
    assert main(["--nets", "resnet"]) == 2
    assert main(["--cpu-time", "--threads", "2"]) == 2
    assert "--cpu-time" in capsys.readouterr().err
