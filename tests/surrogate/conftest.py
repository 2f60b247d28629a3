import pytest

from leanconv.wave import make_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """12 trajectories of 13 frames on a 17 x 17 grid (a second to make)."""
    root = tmp_path_factory.mktemp("wave") / "data"
    make_dataset(root, samples=12, seed=3, grid=17, steps=48, every=4, shard_size=8, scheme="q1")
    return root


@pytest.fixture
def tiny_config():
    """Factory of small TrainConfigs: ``tiny_config(data, out, **overrides)``."""
    return _tiny_config


def _tiny_config(data, out, **kw):
    from leanconv.surrogate.train import TrainConfig

    base = dict(data=str(data), out=str(out), width=4, levels=2, epochs=2, batch_size=4, lr=3e-3,
                progress=False, checkpoint_every_s=1e9)
    base.update(kw)
    return TrainConfig(**base)
