"""Equal-accuracy FE baselines: grids, restarts from the exact state, convergence, the headline figure."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from leanconv.surrogate.baselines import FEBaselines, fe_grids, speed_at_equal_accuracy
from leanconv.surrogate.metrics import nrmse
from leanconv.wave import DatasetConfig, WaveSolver, generate, simulate_trajectories


def test_grids_are_the_common_divisors_of_coarsen_and_every():
    g = fe_grids(DatasetConfig(grid=257, steps=640, every=16, coarsen=8, scheme="q1"), other_schemes=False)
    assert [(x.factor, x.nodes, x.every, x.sample) for x in g] == [
        (8, 33, 2, 1), (4, 65, 4, 2), (2, 129, 8, 4), (1, 257, 16, 8)]
    assert [x.label for x in g][0] == "FE 33x33"
    assert [x.factor for x in fe_grids(DatasetConfig(grid=65, steps=60, every=6, coarsen=4, scheme="q1"))] == [2, 1, 2]
    assert [x.factor for x in fe_grids(DatasetConfig(grid=17, steps=8, every=4, scheme="q1"))] == [1]
    both = fe_grids(DatasetConfig(grid=257, steps=640, every=16, coarsen=8, scheme="q1"))
    assert [x.label for x in both[4:]] == ["FD4 33x33", "FD4 65x65", "FD4 129x129"]  # not on the data set's grid
    absorbing = DatasetConfig(grid=65, steps=60, every=6, coarsen=4, boundary="absorbing", scheme="q1")
    assert [x.scheme for x in fe_grids(absorbing)] == ["q1", "q1", "fd4"]  # fd4 has absorbing sides too


def test_speed_at_equal_accuracy_from_a_hand_made_table():
    fe = [("A", 0.1, 1.0), ("B", 0.01, 10.0), ("C", 0.0, 100.0)]
    mid = speed_at_equal_accuracy(fe, math.sqrt(0.1 * 0.01), 2.0)  # halfway in log error -> geometric mean cost
    assert mid["grids"] == ["A", "B"] and mid["bound"] is None
    assert mid["ratio"] == pytest.approx(math.sqrt(10.0) / 2.0)
    assert speed_at_equal_accuracy(fe, 0.01, 2.0)["ratio"] == pytest.approx(5.0)  # exactly grid B
    worse = speed_at_equal_accuracy(fe, 0.2, 4.0)  # less accurate than the cheapest grid
    assert worse["ratio"] == pytest.approx(0.25) and worse["bound"] == "upper" and worse["grids"] == ["A"]
    better = speed_at_equal_accuracy(fe, 0.005, 2.0)  # only the exact reference is as accurate
    assert better["ratio"] == pytest.approx(50.0) and better["bound"] == "upper"
    assert speed_at_equal_accuracy(fe[:2], 0.001, 1.0)["ratio"] is None  # no grid that accurate
    with pytest.raises(ValueError, match="cost"):
        speed_at_equal_accuracy(fe, 0.1, 0.0)


@pytest.fixture(scope="module")
def smooth():
    """Pulses in a constant medium on a 129-node solver grid, frames on 17 x 17 (grids 17, 33, 65, 129).

    Narrow enough (8-10 fine cells) to stay clear of the reflecting walls: a Gaussian that overlaps
    a wall violates the zero normal derivative there and sends a weakly singular wave that converges
    more slowly (seen with 12-16 cells: orders 0.7-1.7)."""
    config = DatasetConfig(grid=129, steps=160, every=8, coarsen=8, pulse_width=(8.0, 10.0), media=("constant",),
                           shard_size=4, scheme="q1")
    return generate(config, samples=4, seed=1)


def test_restart_on_each_grid_matches_a_direct_coarse_run(smooth):
    """Independent construction: the fine run stored every k steps gives the two states, a plain
    coarse WaveSolver steps them; FEBaselines must give the same snapshots."""
    config = smooth.config
    windows = [(1, 3), (2, 7)]
    fe = FEBaselines(smooth, windows)
    for grid in fe.grids:
        if grid.scheme != "q1":
            continue
        k = grid.factor
        got = fe.rollout(grid, 4)
        for w, (i, f) in enumerate(windows):
            fine = dataclasses.replace(config, coarsen=1, every=k)
            frames, vel = simulate_trajectories(fine, 1, [i])
            n = f * config.every // k  # frame index of the window start in the every-k run
            solver = WaveSolver(torch.from_numpy(vel[0, ::k, ::k]).double(), spacing=config.h * k,
                                dt=config.dt * k, dtype=torch.float32)
            prev, now = torch.from_numpy(frames[0, n - 1, ::k, ::k]), torch.from_numpy(frames[0, n, ::k, ::k])
            snaps = []
            for _ in range(4):
                prev, now = solver.march(prev, now, grid.every)
                snaps.append(now[0, ::grid.sample, ::grid.sample])
            torch.testing.assert_close(got[w], torch.stack(snaps), atol=1e-5, rtol=1e-4)


def test_baseline_error_falls_at_second_order(smooth):
    windows = [(i, 2) for i in range(4)]
    fe = FEBaselines(smooth, windows)
    true = torch.stack([torch.from_numpy(np.asarray(smooth.frames(i, 3, 7))) for i, _ in windows]).double()
    err = {g.factor: float(nrmse(fe.rollout(g, 4).double(), true)[-1]) for g in fe.grids if g.scheme == "q1"}
    assert err[1] < 1e-5  # the data set's own grid reproduces its frames
    # against the 129-node run, e(h) ~ C (h^2 - h_ref^2): orders of 8->4 and 4->2 near 2
    for coarse, fine in ((8, 4), (4, 2)):
        order = math.log2((err[coarse]) / err[fine])
        assert 1.7 < order < 2.6, (coarse, fine, err)


def test_source_terms_are_refused():
    data = generate(DatasetConfig(grid=17, steps=8, every=4, source="ricker"), samples=2, seed=0)
    with pytest.raises(ValueError, match="source-free"):
        FEBaselines(data, [(0, 1)])


def test_altered_frames_are_detected(smooth):
    config = dataclasses.replace(smooth.config, pulse_width=(11.0, 14.0))  # another data set's settings
    fake = generate(config, samples=4, seed=1)
    fake.meta = dict(fake.meta, config=smooth.config.to_dict())
    with pytest.raises(ValueError, match="differ from the stored frames"):
        FEBaselines(fake, [(0, 2)])
