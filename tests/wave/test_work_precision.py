"""The work-precision mode of the wave benchmark: the per-level table from a hand-made one, and a tiny run."""
import json

import pytest

from leanconv.bench.wave import main
from leanconv.bench.wave_accuracy import cheapest_by_level


def _row(config: str, ms: float, e: float) -> dict:
    """A hand-made row of the benchmark: the scheme is the configuration's first word."""
    return {"config": config, "scheme": config.split()[0], "ms": ms, "e": e}


# q1 and fd4 rows that both tables below start from
Q1_FD4 = [_row("q1 65", 1.0, 1e-2), _row("fd4 33", 0.5, 8e-3), _row("fd4 65", 2.0, 1e-3)]


def test_cheapest_configuration_per_level():
    rows = [*Q1_FD4, _row("q1 129", 8.0, 3e-3), _row("fd4 65 slow", 4.0, 1e-3)]
    table = {r["level"]: r for r in cheapest_by_level(rows, "e", levels=(2e-2, 5e-3, 1e-3, 1e-4))}
    assert table[2e-2]["q1_config"] == "q1 65" and table[2e-2]["fd4_config"] == "fd4 33"
    assert table[2e-2]["q1_over_fd4"] == 2.0
    assert table[5e-3]["q1_config"] == "q1 129" and table[5e-3]["fd4_config"] == "fd4 65"
    assert table[5e-3]["q1_over_fd4"] == 4.0
    assert table[1e-3]["q1_config"] is None and table[1e-3]["q1_over_fd4"] is None
    assert table[1e-4]["fd4_config"] is None


def test_quick_run(tmp_path):
    assert main(["--work-precision", "--quick", "--devito", "no", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "wave-work-precision-quick.json").read_text())["rows"]
    assert {r["scheme"] for r in rows} == {"q1", "fd4"}
    by = {(r["scheme"], r["grid"]): r for r in rows}
    assert by[("fd4", 17)]["nrmse@8"] < by[("q1", 17)]["nrmse@8"] / 2  # fourth order pays on the same grid
    assert (tmp_path / "wave-work-precision-quick.png").stat().st_size > 1000


def test_cheapest_per_level_against_devito():
    rows = [*Q1_FD4, _row("devito 65", 3.0, 9e-3), _row("devito 129", 5.0, 9e-4)]
    table = {r["level"]: r for r in cheapest_by_level(rows, "e", levels=(2e-2, 1e-3, 5e-4))}
    assert table[2e-2]["leanconv_config"] == "fd4 33" and table[2e-2]["devito_config"] == "devito 65"
    assert table[2e-2]["devito_over_leanconv"] == 6.0
    assert table[1e-3]["leanconv_config"] == "fd4 65" and table[1e-3]["devito_over_leanconv"] == 2.5
    assert table[5e-4]["devito_over_leanconv"] is None
    assert "devito_config" not in cheapest_by_level(Q1_FD4, "e")[0]  # no Devito rows: no Devito columns


def _devito_installed() -> bool:
    from leanconv.bench import wave_devito

    return wave_devito.available()


@pytest.mark.skipif(not _devito_installed(), reason="Devito (optional benchmark extra) is not installed")
def test_devito_run_equals_a_plain_leapfrog_with_mirrored_sides():
    """The Devito set-up (ghost mirroring, the start from rest, the snapshot indexing) against the same
    scheme written out in NumPy: order-4 stencil, mirrored sides, the Taylor start (an off-by-one step
    or a wrong ghost would show at 1e-2)."""
    import numpy as np
    import torch

    from leanconv.bench.wave_devito import DevitoRun, _laplacian

    n, so, m, frames = 21, 4, 3, 4
    g = torch.Generator().manual_seed(0)
    c = (1 + torch.rand(2, n, n, generator=g, dtype=torch.float64))
    x = np.linspace(0, 1, n)
    u0 = torch.from_numpy(np.exp(-((x[:, None] - 0.4) ** 2 + (x[None, :] - 0.6) ** 2) / 0.02)).expand(2, n, n)
    run = DevitoRun(n, so, m, snapshot_dt=0.05, frames=frames, dtype="float64", stride=2)
    got = run(c, u0)
    h, dt = 1 / (n - 1), 0.05 / m
    cc = c.numpy() ** 2
    u = u0.numpy().copy()
    lu = cc * _laplacian(u, so, h)
    prev = u + dt**2 / 2 * lu + dt**4 / 24 * cc * _laplacian(lu, so, h)
    want = [u[:, ::2, ::2]]
    for step in range(1, m * (frames - 1) + 1):
        u, prev = 2 * u - prev + dt**2 * cc * _laplacian(u, so, h), u
        if step % m == 0:
            want.append(u[:, ::2, ::2])
    # Devito writes its stencil weights with 9 digits into the C code (1.333333330): agreement to ~1e-7
    want = np.stack(want, axis=1)
    assert float(np.abs(got.numpy() - want).max()) < 1e-6 * float(np.abs(want).max())
    assert float(np.abs(want[-1] - want[0]).max()) > 0.05  # the field moved
