"""Continuing runs from snapshots (the FE reference of surrogate rollouts) and solver input checks."""
import numpy as np
import pytest
import torch

from leanconv.wave import WaveSolver, gaussian_pulses
from wave_backends import BACKENDS

F64 = torch.float64


def setup(boundary, B=3, n=24, seed=0, backend="auto"):
    rng = np.random.default_rng(seed)
    c = torch.tensor(1.0 + rng.random((B, n + 1, n + 1)))
    s = WaveSolver(c, boundary=boundary, courant=0.7, backend=backend)
    centers = rng.uniform(0.3, 0.7, (B, 2, 2))
    u0 = torch.tensor(gaussian_pulses(s.grid, centers, 0.06, [1.0, -0.5]))
    return s, u0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "neumann,dirichlet,neumann,neumann"])
@pytest.mark.parametrize("every", [1, 2, 7])
def test_advance_reproduces_the_solver_snapshots(boundary, every, backend):
    s, u0 = setup(boundary, backend=backend)
    snaps = s.run(u0, steps=12 * every, every=every)  # (B, 13, H, W)
    cont = s.advance(snaps[:, 2], snaps[:, 3], 9, every=every)
    assert cont.shape == (3, 9, *s.shape)
    scale = snaps.abs().max()
    assert (cont - snaps[:, 4:13]).abs().max() < 1e-11 * scale


@pytest.mark.parametrize("backend", BACKENDS)
def test_advance_with_damping_needs_consecutive_steps(backend):
    s, u0 = setup("absorbing", backend=backend)
    snaps = s.run(u0, steps=30, every=1)
    cont = s.advance(snaps[:, 9], snaps[:, 10], 20, every=1)
    assert (cont - snaps[:, 11:31]).abs().max() < 1e-12 * snaps.abs().max()
    with pytest.raises(ValueError, match="do not determine the state of a damped"):
        s.advance(snaps[:, 0], snaps[:, 5], 2, every=5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_matches_run(backend):
    s, u0 = setup("absorbing", backend=backend)
    traj = s.run(u0, steps=5)
    assert (s.step(traj[:, 3], traj[:, 4]) - traj[:, 5]).abs().max() < 1e-13


def test_one_velocity_model_broadcasts_over_a_batch_of_states():
    n = 20
    c = torch.full((n + 1, n + 1), 1.5, dtype=F64)
    s = WaveSolver(c)
    grid = s.grid
    u0 = torch.tensor(gaussian_pulses(grid, [[[0.3, 0.3]], [[0.6, 0.5]]], 0.05))
    both = s.run(u0, steps=20, every=5)
    one = s.run(u0[1:], steps=20, every=5)
    assert both.shape[0] == 2 and torch.allclose(both[1:], one, rtol=0, atol=1e-15)


def test_bad_inputs_name_the_argument():
    c = torch.ones(9, 9, dtype=F64)
    with pytest.raises(ValueError, match="velocity must be finite and > 0"):
        WaveSolver(c * 0)
    with pytest.raises(ValueError, match="velocity must have shape"):
        WaveSolver(torch.ones(9))
    with pytest.raises(ValueError, match="boundary: left side kind 'sticky'"):
        WaveSolver(c, boundary="sticky")
    with pytest.raises(ValueError, match="sponge"):
        WaveSolver(c, boundary="neumann", sponge=3)
    s = WaveSolver(torch.ones(2, 9, 9, dtype=F64))
    with pytest.raises(ValueError, match="u0 must have shape"):
        s.run(torch.zeros(2, 8, 9), steps=3)
    with pytest.raises(ValueError, match="u0 has batch 3"):
        s.run(torch.zeros(3, 9, 9), steps=3)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        s.run(torch.zeros(2, 9, 9), steps=0)
    with pytest.raises(ValueError, match="points: every source must lie inside"):
        s.point_load([[1.5, 0.5]])


def test_backend_choice():
    from wave_backends import kernel_available

    c = torch.ones(9, 9)
    assert WaveSolver(c, backend="torch").backend == "torch"
    assert WaveSolver(c).backend == ("kernel" if kernel_available() else "torch")
    with pytest.raises(ValueError, match="backend must be"):
        WaveSolver(c, backend="fast")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("boundary", ["absorbing", "dirichlet"])
def test_march_lands_on_the_run(backend, boundary):
    s, u0 = setup(boundary, backend=backend)
    traj = s.run(u0, steps=40)
    a, b = s.march(traj[:, 0], traj[:, 1], 39)
    scale = traj.abs().max()
    assert (a - traj[:, 39]).abs().max() < 1e-12 * scale and (b - traj[:, 40]).abs().max() < 1e-12 * scale
    a, b = s.march(traj[:, 0], traj[:, 1], 38, chunk=1)
    assert (b - traj[:, 39]).abs().max() < 1e-12 * scale
