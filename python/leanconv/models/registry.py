"""The model registry: names -> constructors.

Registering a family is one decorator on a function (or class) that builds
the model from keyword arguments::

    from leanconv.models import register_model

    @register_model                      # name = function name
    def my_net(num_classes=10, **kw): ...

    @register_model("wave2d_unet", task="surrogate")
    def _wave2d(**kw): ...

A preset of an existing class is one call::

    register_preset("convnext_micro", ConvNeXt, "summary", depths=(1, 1, 2), dims=(16, 32, 64))

``create(name, **kwargs)`` calls the constructor; ``list_models()`` lists the names.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["ModelEntry", "register_model", "register_preset", "create", "list_models", "model_entry",
           "UnknownModelError", "ModelArgumentError"]


class UnknownModelError(KeyError, ValueError):
    """No model is registered under the name (a KeyError, and a ValueError for the command line)."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class ModelArgumentError(TypeError, ValueError):
    """A model's constructor does not take the keyword arguments it was given."""


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its name, constructor, task and one-line summary."""

    name: str
    constructor: Callable[..., nn.Module]
    task: str
    summary: str

    def arguments(self) -> list[str] | None:
        """Names of the keyword arguments the constructor takes (None: any, it has ``**kwargs``)."""
        target = getattr(self.constructor, "__leanconv_target__", self.constructor)
        try:
            params = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):  # no signature to read
            return None
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return None
        return [p.name for p in params
                if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]

    def check_arguments(self, kwargs: dict) -> None:
        """Raise :class:`ModelArgumentError` naming any of ``kwargs`` the constructor does not take."""
        known = self.arguments()
        if known is None:
            return
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            hints = [m for k in unknown for m in difflib.get_close_matches(k, known, n=1)]
            raise ModelArgumentError(
                f"model {self.name!r} takes no argument {', '.join(map(repr, unknown))}"
                + (f" (did you mean {', '.join(hints)}?)" if hints else "")
                + f"; it takes {', '.join(known) or 'none'}")


_REGISTRY: dict[str, ModelEntry] = {}


def _summary(fn: Callable) -> str:
    doc = (fn.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def register_model(name: str | Callable | None = None, *, task: str = "classification"):
    """Decorator registering a model constructor under ``name`` (default: its ``__name__``).

    Use as ``@register_model``, ``@register_model("name")`` or
    ``@register_model("name", task="surrogate")``.  ``task`` groups models
    for the commands (``train-classifier`` lists ``"classification"`` ones).
    A name can be registered once.
    """

    def add(fn: Callable, key: str) -> Callable:
        if not callable(fn):
            raise TypeError(f"register_model: expected a callable, got {fn!r}")
        if not isinstance(key, str) or not key:
            raise ValueError(f"register_model: name must be a non-empty string, got {key!r}")
        if key in _REGISTRY and _REGISTRY[key].constructor is not fn:
            raise ValueError(f"register_model: a model named {key!r} is already registered")
        _REGISTRY[key] = ModelEntry(key, fn, task, _summary(fn))
        return fn

    if callable(name):  # bare @register_model
        return add(name, name.__name__)
    return lambda fn: add(fn, name or fn.__name__)


def register_preset(name: str, cls: Callable[..., nn.Module], summary: str, *, task: str = "classification",
                    **defaults) -> Callable[..., nn.Module]:
    """Register ``name`` as ``cls(**defaults)``; keyword arguments given to
    :func:`create` override the defaults."""

    def build(**kwargs) -> nn.Module:
        return cls(**{**defaults, **kwargs})

    build.__name__ = build.__qualname__ = name
    build.__doc__ = summary
    build.__leanconv_target__ = cls  # ModelEntry.arguments() reads cls's signature
    return register_model(name, task=task)(build)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; :class:`UnknownModelError` (a KeyError) with close matches if unknown."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint} (known: {', '.join(sorted(_REGISTRY)) or 'none'})"
        ) from None


def create(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` (passed to its constructor);
    :class:`ModelArgumentError` (a TypeError) names arguments the constructor does not take."""
    entry = model_entry(name)
    entry.check_arguments(kwargs)
    return entry.constructor(**kwargs)


def list_models(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a glob ``pattern`` and by ``task``."""
    return sorted(
        n for n, e in _REGISTRY.items()
        if (pattern is None or fnmatch.fnmatch(n, pattern)) and (task is None or e.task == task)
    )
