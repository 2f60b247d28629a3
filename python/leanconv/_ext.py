"""Loading of the compiled module ``leanconv._C``.

Importing :mod:`leanconv` never fails because the compiled part is missing or
broken; the first call that needs it raises :class:`ExtensionUnavailableError`
with the reason and what to do about it.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["ExtensionUnavailableError", "load", "available"]

_REBUILD_HINT = (
    "Build it from the repository root with `make dev` (editable build, see README) "
    "or `pip install --no-build-isolation .` after installing torch."
)


class ExtensionUnavailableError(RuntimeError):
    """The compiled extension ``leanconv._C`` could not be loaded."""


_module: ModuleType | None = None
_error: BaseException | None = None


def load() -> ModuleType:
    """Import ``leanconv._C`` (once) and return it, or raise an actionable error."""
    global _module, _error
    if _module is not None:
        return _module
    if _error is None:
        try:
            import torch  # noqa: F401  (loads libtorch before our module)

            _module = importlib.import_module("leanconv._C")
            return _module
        except ImportError as exc:  # missing file, ABI mismatch, unresolved symbol
            _error = exc
    raise ExtensionUnavailableError(
        f"leanconv's compiled kernels (leanconv._C) could not be loaded: {_error}. "
        + _REBUILD_HINT
    ) from _error


def available() -> bool:
    """True when the compiled module loads."""
    try:
        load()
        return True
    except ExtensionUnavailableError:
        return False
