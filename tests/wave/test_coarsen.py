"""Coarsened data sets: stored frames are the solver's nodal values at every k-th node."""
import numpy as np
import pytest

from leanconv.wave import DatasetConfig, generate, reference_rollout, snapshot_energy


def test_coarsened_frames_are_fine_nodes():
    fine = generate(DatasetConfig(grid=33, steps=40, every=4, shard_size=8), samples=3, seed=5)
    coarse = generate(DatasetConfig(grid=33, steps=40, every=4, shard_size=8, coarsen=4), samples=3, seed=5)
    ff, fv = fine.arrays()
    cf, cv = coarse.arrays()
    assert cf.shape == (3, 11, 9, 9) and coarse.frame_shape == (9, 9)
    np.testing.assert_array_equal(cf, ff[..., ::4, ::4])
    np.testing.assert_array_equal(cv, fv[:, ::4, ::4])


def test_coarsen_must_divide_cells():
    with pytest.raises(ValueError, match="coarsen"):
        DatasetConfig(grid=32, coarsen=4)


def test_coarsened_snapshots_refuse_continuation_but_have_energy():
    data = generate(DatasetConfig(grid=33, steps=40, every=4, shard_size=8, coarsen=2), samples=2, seed=1)
    fr, ve = data.arrays()
    with pytest.raises(ValueError, match="coarsened"):
        reference_rollout(data, ve, fr[:, 0], fr[:, 1], 2)
    e = snapshot_energy(data, ve, fr[:, 1], fr[:, 2])
    assert e.shape == (2,) and bool((e > 0).all())
