"""CoarseWaveStep (the surrogates' physics prior) against the FE solver, and WaveUNet2d(base="fe")."""
import pytest
import torch

from leanconv.models import create
from leanconv.models.wave_prior import CoarseWaveStep
from leanconv.wave import WaveSolver


@pytest.mark.parametrize("scheme", ["q1", "fd4"])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet"])
@pytest.mark.parametrize("substeps", [1, 3])
def test_matches_the_solver_snapshots(boundary, substeps, scheme):
    g = torch.Generator().manual_seed(0)
    c = 1 + torch.rand(3, 13, 13, generator=g, dtype=torch.float64)
    h = 1 / 12
    snapshot_dt = substeps * 0.45 * h / 2
    solver = WaveSolver(c, spacing=h, dt=snapshot_dt / substeps, boundary=boundary, dtype=torch.float64,
                        scheme=scheme)
    u0 = torch.randn(3, 13, 13, generator=g, dtype=torch.float64)
    frames = solver.run(u0, steps=10 * substeps, every=substeps)  # (3, 11, 13, 13)
    step = CoarseWaveStep(h, snapshot_dt, substeps, boundary, scheme)
    out = step(frames[:, 2], frames[:, 3], c.unsqueeze(1), 6)
    torch.testing.assert_close(out, frames[:, 4:10], atol=1e-11, rtol=1e-9)


def test_gradients_flow_and_bad_settings_are_refused():
    g = torch.Generator().manual_seed(1)
    c = 1 + torch.rand(2, 1, 7, 7, generator=g, dtype=torch.float64)
    step = CoarseWaveStep(1 / 6, 0.05, 2)
    prev, now = (torch.randn(2, 7, 7, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda a, b: step(a, b, c, 2), (prev, now))
    fd4 = CoarseWaveStep(1 / 6, 0.05, 2, "dirichlet", "fd4")
    assert torch.autograd.gradcheck(lambda a, b: fd4(a, b, c, 2), (prev, now))
    with pytest.raises(ValueError, match="stability limit"):
        CoarseWaveStep(1 / 6, 1.0, 2)(prev, now, c, 1)
    with pytest.raises(ValueError, match="boundary"):
        CoarseWaveStep(0.1, 0.01, 1, "absorbing")
    with pytest.raises(ValueError, match="substeps"):
        CoarseWaveStep(0.1, 0.01, 0)


def test_untrained_fe_based_unet_is_the_coarse_solver():
    prior = dict(spacing=1 / 16, snapshot_dt=0.03, substeps=2)
    net = create("wave_unet2d", width=4, levels=2, t_in=2, t_out=3, base="fe", prior=prior).eval()
    g = torch.Generator().manual_seed(2)
    frames, vel = torch.randn(2, 2, 17, 17, generator=g), 1 + torch.rand(2, 1, 17, 17, generator=g)
    with torch.no_grad():
        out = net(frames, vel)
    torch.testing.assert_close(out, CoarseWaveStep(**prior)(frames[:, 0], frames[:, 1], vel, 3))
    with pytest.raises(ValueError, match="prior"):
        create("wave_unet2d", base="fe")
    with pytest.raises(ValueError, match="base"):
        create("wave_unet2d", base="nope")
