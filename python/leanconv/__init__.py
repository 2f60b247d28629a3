"""leanconv: compressed and large-kernel convolutions for PyTorch.

The compiled kernels live in ``leanconv._C`` and are registered as
``torch.ops.leanconv.*``; they are loaded on first use, so ``import leanconv``
works (and reports a clear error on first use) even when they are missing.
"""
from __future__ import annotations

from ._build import build_info, format_build_info
from ._ext import ExtensionUnavailableError
from ._version import __version__
from . import nn, ops  # noqa: E402  (ops registers fake kernels and autograd)
from . import models  # noqa: E402
from .nn import convert, reparameterize_model  # noqa: E402

__all__ = [
    "__version__",
    "build_info",
    "format_build_info",
    "ExtensionUnavailableError",
    "convert",
    "reparameterize_model",
]
