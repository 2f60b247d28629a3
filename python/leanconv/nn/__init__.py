"""Drop-in modules built on leanconv's kernels."""
from __future__ import annotations

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
]
