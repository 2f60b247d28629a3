"""CNN surrogates of the FE wave solver: training, rollout, evaluation, the demo.

Modules (each named after its main function):

- :mod:`.train` - ``train(TrainConfig(...))``: seeded, resumable, single- or
  multi-process training (``leanconv train``); ``load_model``; its settings and
  the checks made before any work in :mod:`.config` (checkpoints, ``--resume``
  and ``--force`` as for every trainer: :mod:`leanconv.training`);
- :mod:`.rollout` - ``rollout(model, frames, velocity, steps)`` and the
  ``repeat_last`` baseline;
- :mod:`.evaluate` - ``evaluate(models, data)`` and ``write_outputs``: the
  comparison against the FE reference (``leanconv rollout``);
- :mod:`.metrics` - nRMSE, RMSE, max error, PDEBench frequency-band errors;
- :mod:`.demo` - ``DemoConfig``, ``run_demo``: the main job (``leanconv demo``).

The models themselves are in :mod:`leanconv.models` (``wave_unet2d``, ``wave_unet3d``).
"""
from . import data, demo, evaluate, metrics, rollout, train
from .demo import DemoConfig, run_demo
from .train import TrainConfig, load_model

__all__ = ["data", "demo", "evaluate", "metrics", "rollout", "train", "DemoConfig", "run_demo", "TrainConfig",
           "load_model"]
