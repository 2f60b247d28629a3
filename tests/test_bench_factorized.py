"""Smoke test of the factorized benchmark on a tiny layer (no timing asserted),
and a check of its CPU peak-memory measurement against known allocations."""
import json

import pytest
import torch

from leanconv.bench import factorized as bench
from leanconv.bench.common import peak_memory_bytes


def test_peak_memory_sees_torch_allocations():
    def step():
        a = torch.empty(1 << 20)  # 4 MiB
        b = torch.empty(1 << 19)  # 2 MiB, both live
        del a, b
        c = torch.empty(1 << 18)  # 1 MiB after both were freed
        del c

    peak = peak_memory_bytes(step, "cpu")
    assert (6 << 20) <= peak < (7 << 20)


def test_layer_section_runs_and_reports(tmp_path):
    pytest.importorskip("tltorch")
    tiny = bench.Layer("tiny 2d", 2, 1, 8, 10)
    rows = bench.bench_layers([tiny], [5], "cpu", 0.01, True)
    impls = [r["impl"] for r in rows]
    assert impls == ["dense nn.Conv", "leanconv", "tltorch factorized", "tltorch reconstructed"]
    lean = rows[1]
    assert lean["rank"] == tiny.rank_for(5) and lean["params"] <= rows[0]["params"] / 5 + 8
    assert lean["peak_mb"] > 0 and "speedup_fwd_bwd_vs_tltorch_factorized" in lean


def test_main_writes_json_and_markdown(tmp_path):
    rc = bench.main(["--sections", "chain,gemm", "--layers", "28x28", "--compressions", "20",
                     "--min-run-time", "0.01", "--out", str(tmp_path)])
    assert rc == 0
    data = json.loads((tmp_path / "factorized_chain.json").read_text())
    assert {r["impl"] for r in data["rows"]} >= {"fused one_way_conv", "unfused (leanconv depthwise per axis)"}
    assert (tmp_path / "factorized_gemm.md").read_text().startswith("# factorized_gemm")


def test_chain_implementations_agree():
    """The chain section's three rows compute the same thing (PyTorch's per-axis row through
    one_way_conv_unfused's conv argument), also with uneven padding, stride and dilation."""
    g = torch.Generator().manual_seed(0)
    for dims in (2, 3):
        x = torch.randn(2, 4, *(9,) * dims, generator=g)
        filters = [torch.randn(4, k, generator=g) for k in (3, 5, 3)[:dims]]
        scale = torch.randn(4, generator=g)
        for kw in ({"padding": 1}, {"padding": [1, 2] * dims, "stride": 2, "dilation": 2}):
            want = bench.CHAINS["fused one_way_conv"](x, filters, scale, **kw)
            for chain in bench.CHAINS.values():
                torch.testing.assert_close(chain(x, filters, scale, **kw), want)
