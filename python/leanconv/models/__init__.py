"""Model definitions and the registry ``create(name, **kwargs)``.

Families: UniRepLKNet-style (``unireplknet_*``) and ConvNeXt-style
(``convnext_*``) large-kernel classifiers, and a compressed ResNet-like CNN
(``resnet_micro_cp``, FactorizedConv2d; ``resnet_micro`` is its dense
baseline); CNN surrogates of the wave solver (``wave_unet2d``,
``wave_unet3d``; convolutions dense, factorized or large-kernel).  Add a family with the :func:`register_model` decorator, a
preset of an existing class with :func:`register_preset`.
"""
from __future__ import annotations

from .registry import ModelEntry, create, list_models, model_entry, register_model, register_preset

# importing a family module registers its models
from . import convnext, resnet, surrogate, unireplknet  # noqa: E402,F401
from .convnext import ConvNeXt, ConvNeXtBlock  # noqa: E402
from .resnet import CompressedResNet  # noqa: E402
from .surrogate import WaveUNet2d, WaveUNet3d, make_conv  # noqa: E402
from .unireplknet import UniRepLKNet, UniRepLKNetBlock  # noqa: E402

__all__ = [
    "create",
    "list_models",
    "model_entry",
    "register_model",
    "register_preset",
    "ModelEntry",
    "UniRepLKNet",
    "UniRepLKNetBlock",
    "ConvNeXt",
    "ConvNeXtBlock",
    "CompressedResNet",
    "WaveUNet2d",
    "WaveUNet3d",
    "make_conv",
]
