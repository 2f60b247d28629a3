"""Typed Python entry points to leanconv's compiled ops (``torch.ops.leanconv.*``).

Importing this module loads ``leanconv._C`` and registers the fake kernels and
autograd formulas of every op.  If the compiled module is missing, the import
still succeeds and each function raises an actionable error when called.
"""
from __future__ import annotations

from .. import _ext
from .depthwise import depthwise_conv, depthwise_conv2d, depthwise_conv3d
from .factorized import factorized_conv, one_way_conv, one_way_conv_unfused
from .wave import wave_step_

__all__ = [
    "depthwise_conv",
    "depthwise_conv2d",
    "depthwise_conv3d",
    "factorized_conv",
    "one_way_conv",
    "one_way_conv_unfused",
    "wave_step_",
]

if _ext.available():
    from . import depthwise as _depthwise
    from . import factorized as _factorized
    from . import wave as _wave

    _depthwise._register()
    _factorized._register()
    _wave._register()
