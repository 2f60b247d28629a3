"""Classifiers of the model registry trained on bundled data (``leanconv train-classifier``).

- :mod:`.train` - ``train_classifier(TrainConfig(...))``: AdamW with warmup and
  a cosine schedule, a checkpoint after every epoch, ``--resume`` / ``--force``
  as for every trainer (:mod:`leanconv.training`), the test accuracy also
  after re-parameterization;
- :mod:`.data` - ``digits(image_size)``: scikit-learn's bundled digits, no download.

The models themselves are in :mod:`leanconv.models` (``unireplknet_*``,
``convnext_*``, ``resnet_micro*``).
"""
from . import data, train
from .train import TrainConfig, evaluate, train_classifier

__all__ = ["data", "train", "TrainConfig", "evaluate", "train_classifier"]
