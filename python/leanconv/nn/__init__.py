"""Drop-in modules built on leanconv's kernels."""
from __future__ import annotations

from .depthwise import DepthwiseConv2d, DepthwiseConv3d
from .factorized import FactorizedConv2d, FactorizedConv3d

__all__ = ["DepthwiseConv2d", "DepthwiseConv3d", "FactorizedConv2d", "FactorizedConv3d"]
