"""Verification against analytic and physical facts (issue 5).

Figures measured when these tests were written (float64):
- standing mode, Dirichlet, T = 1, dt = 0.5 h: relative L2 errors 6.44e-2,
  1.61e-2, 4.04e-3, 1.01e-3 for n = 16, 32, 64, 128 (observed order 2.00);
- energy drift with reflecting walls: ~4e-16 relative over 256 steps;
- absorbing walls, Gaussian pulse (sigma 0.05), n = 64: 1.5e-4 of the energy
  left at t = 2;
- Ricker point source (f0 = 4, c = 1, h = 0.01): relative L2 trace error
  3.3e-2 .. 6.4e-2 at r = 0.3 .. 0.6, falling at order 2 with h.
"""
import math

import numpy as np
import pytest
import torch

from leanconv.wave import PointSources, WaveSolver, gaussian_pulses, ricker_point_source_2d, standing_mode
from wave_backends import BACKENDS

F64 = torch.float64


def standing_mode_error(n: int, backend: str) -> float:
    s = WaveSolver(torch.ones(n + 1, n + 1, dtype=F64), boundary="dirichlet", courant=0.5, backend=backend)
    X, Y = s.grid.coordinates()
    steps = round(1.0 / s.dt)
    assert abs(steps * s.dt - 1.0) < 1e-12
    u = s.run(torch.tensor(standing_mode(X, Y, 0.0)), steps=steps, every=steps)[0, -1].numpy()
    exact = standing_mode(X, Y, 1.0)
    M = s.mass[0].numpy()  # L2 norm of the nodal values with the lumped-mass quadrature
    return math.sqrt((M * (u - exact) ** 2).sum() / (M * exact**2).sum())


@pytest.mark.parametrize("backend", BACKENDS)
def test_standing_mode_converges_at_order_two(backend):
    ns = [16, 32, 64, 128]
    errors = [standing_mode_error(n, backend) for n in ns]
    expected = [6e-2, 1.6e-2, 4e-3, 1e-3]  # the figures
    for e, x in zip(errors, expected):
        assert 0.8 * x < e < 1.2 * x, (errors, expected)
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(abs(p - 2.0) < 0.05 for p in orders), orders


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet"])
def test_energy_conserved_without_damping(boundary, backend):
    n = 48
    rng = np.random.default_rng(0)
    c = torch.tensor(1.0 + rng.random((n + 1, n + 1)))
    s = WaveSolver(c, boundary=boundary, courant=0.9, backend=backend)
    u0 = gaussian_pulses(s.grid, [[0.4, 0.55]], 0.06) - gaussian_pulses(s.grid, [[0.7, 0.3]], 0.04)
    v0 = torch.tensor(rng.standard_normal((1, n + 1, n + 1)))
    traj = s.run(torch.tensor(u0), v0, steps=400)[0]
    E = s.energy(traj[:-1], traj[1:]).numpy()
    drift = np.abs(E / E[0] - 1).max()
    assert drift < 1e-10, drift
    assert np.abs(traj[-1].numpy() - traj[0].numpy()).max() > 0.1  # the field did move


def test_energy_mismatch_shows_when_the_step_is_not_the_scheme():
    # the conserved quantity is specific: pairing states two steps apart does not conserve it
    n = 32
    s = WaveSolver(torch.ones(n + 1, n + 1, dtype=F64))
    traj = s.run(torch.tensor(gaussian_pulses(s.grid, [[0.5, 0.5]], 0.05)), steps=100)[0]
    E = s.energy(traj[:-2], traj[2:], interval=2).numpy()
    assert np.abs(E / E[0] - 1).max() > 1e-4


def pulse_energy_left(boundary: str, t_end: float = 2.0, n: int = 64) -> float:
    s = WaveSolver(torch.ones(n + 1, n + 1, dtype=F64), boundary=boundary, courant=0.5)
    u0 = gaussian_pulses(s.grid, [[0.5, 0.5]], 0.05)
    steps = round(t_end / s.dt)
    traj = s.run(torch.tensor(u0), steps=steps)[0]
    E = s.energy(traj[:-1], traj[1:]).numpy()
    return float(E[-1] / E[0])


def test_absorbing_boundary_removes_the_pulse():
    left = pulse_energy_left("absorbing")
    assert left <= 1e-3, left
    assert abs(pulse_energy_left("neumann") - 1.0) < 1e-10


def test_sponge_layer_absorbs_too():
    from leanconv.wave import Sponge

    n = 64
    s = WaveSolver(torch.ones(n + 1, n + 1, dtype=F64), boundary="absorbing", sponge=Sponge(16))
    traj = s.run(torch.tensor(gaussian_pulses(s.grid, [[0.5, 0.5]], 0.05)), steps=round(2.0 / s.dt))[0]
    E = s.energy(traj[:-1], traj[1:]).numpy()
    assert E[-1] / E[0] < 0.6 * pulse_energy_left("absorbing")  # measured 5.9e-5 against 1.5e-4
    assert np.all(np.diff(E) <= 1e-12 * E[0])  # damping never adds energy


def ricker_trace_errors(n: int, f0: float = 4.0):
    """Relative L2 errors of receiver traces against the analytic 2-D solution."""
    h = 2.0 / n  # domain [0, 2]^2, source at its centre, absorbing walls
    s = WaveSolver(torch.ones(n + 1, n + 1, dtype=F64), spacing=h, boundary="absorbing", courant=0.5)
    steps = int(1.4 / s.dt)  # wall reflections reach no receiver before t = 1.4
    field = s.run(torch.zeros(1, n + 1, n + 1, dtype=F64), steps=steps,
                  source=PointSources([[1.0, 1.0]], f0).bind(s))[0].numpy()
    t = np.arange(steps + 1) * s.dt
    errors = []
    for dx, dy in [(0.3, 0.0), (0.5, 0.0), (0.3, 0.3), (0.0, -0.6)]:
        ix, iy = round((1 + dx) / h), round((1 + dy) / h)
        exact = ricker_point_source_2d(math.hypot(ix * h - 1, iy * h - 1), t, f0)
        errors.append(np.linalg.norm(field[:, iy, ix] - exact) / np.linalg.norm(exact))
    return np.array(errors)


def test_ricker_point_source_matches_analytic_solution():
    coarse, fine = ricker_trace_errors(100), ricker_trace_errors(200)
    # stated tolerance: 8% relative L2 over each trace at 25 points per peak wavelength
    assert fine.max() < 0.08, fine
    # and the error is discretisation error: second order in h
    assert np.all(np.log2(coarse / fine) > 1.8), (coarse, fine)


def test_analytic_ricker_solution_against_direct_quadrature():
    from scipy.integrate import quad

    from leanconv.wave import ricker

    r, f0 = 0.4, 4.0
    for t in (0.6, 0.9, 1.3):
        # 1/sqrt(tau^2 - r^2) = (tau - r)^(-1/2) (tau + r)^(-1/2): QUADPACK's algebraic weight takes the singularity
        direct = quad(lambda tau: ricker(t - tau, f0) / math.sqrt(tau + r), r, t, weight="alg", wvar=(-0.5, 0.0),
                      limit=200)[0] / (2 * math.pi)
        assert abs(ricker_point_source_2d(r, t, f0)[0] - direct) < 1e-7 * max(1.0, abs(direct))


@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "absorbing"])
def test_stability_limit_is_h_over_c(boundary):
    n = 32
    u0 = torch.randn(1, n + 1, n + 1, generator=torch.Generator().manual_seed(1), dtype=F64)
    c = torch.ones(n + 1, n + 1, dtype=F64)
    stable = WaveSolver(c, boundary=boundary, courant=0.99).run(u0, steps=1000, every=1000)
    assert stable.abs().max() < 10 * u0.abs().max()
    unstable = WaveSolver(c, boundary=boundary, courant=1.02, check_stability=False).run(u0, steps=1000, every=1000)
    assert not torch.isfinite(unstable[:, -1]).all() or unstable[:, -1].abs().max() > 1e6


def test_unstable_dt_is_refused():
    c = torch.ones(17, 17, dtype=F64) * 2.0
    h = 1 / 16
    with pytest.raises(ValueError, match="stability limit"):
        WaveSolver(c, courant=1.02)
    with pytest.raises(ValueError, match="stability limit"):
        WaveSolver(c, dt=1.01 * h / 2.0)
    assert WaveSolver(c, dt=h / 2.0).courant == pytest.approx(1.0)
    assert WaveSolver(c).dt == pytest.approx(0.5 * h / 2.0)  # default Courant 0.5
