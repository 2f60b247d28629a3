"""Velocity models and sources: seeded, in range, and what they claim to be."""
import math

import numpy as np
import pytest

from leanconv.wave import MEDIA, Grid, gaussian_pulses, ricker, velocity_model


@pytest.mark.parametrize("kind", sorted(MEDIA))
def test_media_are_seeded_and_in_range(kind):
    a = velocity_model(kind, np.random.default_rng(7), (33, 40), 1.0, 3.0)
    b = velocity_model(kind, np.random.default_rng(7), (33, 40), 1.0, 3.0)
    c = velocity_model(kind, np.random.default_rng(8), (33, 40), 1.0, 3.0)
    assert a.shape == (33, 40)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 1.0 and a.max() <= 3.0


def test_media_have_their_character():
    rng = np.random.default_rng(0)
    assert np.ptp(velocity_model("constant", rng, (20, 20))) == 0
    lay = velocity_model("layered", rng, (64, 64))
    # sharp interfaces: few distinct values, increasing downward (row 0 is the bottom)
    assert 2 <= len(np.unique(lay)) <= 6
    assert lay[-1].mean() <= lay[0].mean()
    smooth = velocity_model("random", rng, (64, 64))
    assert np.abs(np.diff(smooth, axis=1)).max() < 0.25 * np.ptp(smooth)
    assert len(np.unique(smooth)) > 1000


def test_unknown_medium_is_refused():
    with pytest.raises(ValueError, match="unknown medium 'rock'"):
        velocity_model("rock", np.random.default_rng(0), (8, 8))
    with pytest.raises(ValueError, match="c_min"):
        velocity_model("constant", np.random.default_rng(0), (8, 8), 2.0, 1.0)


def test_ricker_wavelet_shape():
    f0, t0 = 5.0, 0.3
    assert ricker(t0, f0, t0) == pytest.approx(1.0)
    # zero crossings at tau = +-1/sqrt(2), minima -2 exp(-3/2) at tau = +-sqrt(3/2)
    tz = t0 + 1 / (math.sqrt(2) * math.pi * f0)
    assert abs(ricker(tz, f0, t0)) < 1e-12
    tm = t0 + math.sqrt(1.5) / (math.pi * f0)
    assert ricker(tm, f0, t0) == pytest.approx(-2 * math.exp(-1.5))
    assert abs(ricker(0.0, f0)) < 1e-8  # default delay 1.5 / f0


def test_gaussian_pulses():
    g = Grid.square(20)
    u = gaussian_pulses(g, [[0.5, 0.25]], 0.1, 2.0)
    assert u.shape == (1, 21, 21)
    assert u[0, 5, 10] == pytest.approx(2.0)  # centre node (x=0.5 -> column 10, y=0.25 -> row 5)
    assert u[0, 5, 12] == pytest.approx(2.0 * math.exp(-(0.1**2) / (2 * 0.01)))
