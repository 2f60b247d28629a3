"""Drop-in modules built on leanconv's kernels."""
from __future__ import annotations

from ._select import backend_choices, clear_backend_choices, load_backend_choices, save_backend_choices
from .conversion import ConvertReport, convert
from .depthwise import DepthwiseConv2d, DepthwiseConv3d
from .factorized import FactorizedConv2d, FactorizedConv3d
from .reparam import DILATED_BRANCHES, DilatedReparamBlock, SLaKBlock, reparameterize_model

__all__ = [
    "DepthwiseConv2d",
    "DepthwiseConv3d",
    "FactorizedConv2d",
    "FactorizedConv3d",
    "DilatedReparamBlock",
    "SLaKBlock",
    "DILATED_BRANCHES",
    "reparameterize_model",
    "convert",
    "ConvertReport",
    "backend_choices",
    "save_backend_choices",
    "load_backend_choices",
    "clear_backend_choices",
]
