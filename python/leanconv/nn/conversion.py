"""``convert()``: swap the convolutions of an existing model for leanconv's layers."""
from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field

from torch import nn

from ._checks import check_rank
from .depthwise import DepthwiseConv2d, DepthwiseConv3d

__all__ = ["convert", "ConvertReport"]


@dataclass
class ConvertReport:
    """What :func:`convert` did.

    Attributes:
        swapped: ``(name, old type, new type)`` of every replaced layer.
        skipped: ``(name, reason)`` of convolutions left alone that a user might
            have expected to be converted.
        params_before, params_after: parameter counts of the whole model.
    """

    swapped: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0

    def count(self, new_type: str) -> int:
        """Number of layers swapped for ``new_type`` (e.g. ``"DepthwiseConv2d"``)."""
        return sum(1 for _, _, t in self.swapped if t == new_type)

    @property
    def compression(self) -> float:
        """params_before / params_after."""
        return self.params_before / max(self.params_after, 1)

    def __str__(self) -> str:
        kinds: dict[str, int] = {}
        for _, _, t in self.swapped:
            kinds[t] = kinds.get(t, 0) + 1
        parts = ", ".join(f"{n} -> {t}" for t, n in kinds.items()) or "nothing"
        text = (
            f"swapped {len(self.swapped)} layers ({parts}); skipped {len(self.skipped)}; "
            f"parameters {self.params_before:,} -> {self.params_after:,} ({self.compression:.2f}x)"
        )
        for name, reason in self.skipped:
            text += f"\n  skipped {name}: {reason}"
        return text


def _count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _factorized_classes() -> dict[type, type]:
    """{nn.Conv2d: FactorizedConv2d, nn.Conv3d: FactorizedConv3d} as far as this build has them."""
    # looked up at call time: the factorized layers live in another part of the package
    leanconv_nn = importlib.import_module("leanconv.nn")
    out = {}
    for dense, name in ((nn.Conv2d, "FactorizedConv2d"), (nn.Conv3d, "FactorizedConv3d")):
        cls = getattr(leanconv_nn, name, None)
        if cls is not None:
            out[dense] = cls
    if nn.Conv2d not in out:
        raise RuntimeError(
            "convert(factorize=...) needs leanconv.nn.FactorizedConv2d, which this version of leanconv "
            "does not have; call convert(model, factorize=None) for the depthwise swap only"
        )
    return out


def _depthwise_copy(conv: nn.Conv2d | nn.Conv3d) -> nn.Module:
    cls = DepthwiseConv2d if isinstance(conv, nn.Conv2d) else DepthwiseConv3d
    new = cls(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        conv.groups, conv.bias is not None, conv.padding_mode, device="meta", dtype=conv.weight.dtype,
    )
    new.weight = conv.weight  # the same Parameter objects: weights (and optimizer state) kept
    new.bias = conv.bias
    new.train(conv.training)
    return new


def convert(
    model: nn.Module,
    depthwise: bool = True,
    factorize: int | float | None = None,
    *,
    inplace: bool = False,
) -> tuple[nn.Module, ConvertReport]:
    """Swap the convolutions of any ``nn.Module`` for leanconv's layers.

    - ``depthwise=True``: every depthwise ``nn.Conv2d``/``nn.Conv3d``
      (``groups == in_channels == out_channels``) becomes a
      :class:`DepthwiseConv2d`/``3d`` sharing the same weight and bias
      Parameters, so outputs are equal (up to float rounding).
    - ``factorize=rank_or_ratio``: every dense (``groups == 1``) convolution
      with a kernel larger than 1 becomes ``FactorizedConv2d``/``3d`` through
      ``from_conv(conv, factorize)`` (a CP decomposition of the trained
      kernel: an approximation, so outputs change).  An int is a rank, a
      float in (0, 1] a ratio, as ``FactorizedConv2d`` defines it.

    Only modules whose type is exactly ``nn.Conv2d``/``nn.Conv3d`` are touched:
    subclasses (which may override ``forward``, e.g. "same"-padding variants)
    are listed in the report as skipped.  Hooks registered on a replaced
    module are not carried over.  With ``inplace=False`` (default) ``model``
    is deep-copied first.

    Returns:
        ``(converted model, ConvertReport)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(depthwise, bool):
        raise ValueError(f"convert: depthwise must be True or False, got {depthwise!r}")
    factorized = {}
    if factorize is not None:
        check_rank(factorize, "factorize", "convert")
        factorized = _factorized_classes()
    if not inplace:
        model = copy.deepcopy(model)
    report = ConvertReport(params_before=_count_params(model))

    def visit(parent: nn.Module, prefix: str) -> None:
        for name, child in list(parent.named_children()):
            qualified = f"{prefix}{name}"
            new = _convert_one(child, qualified)
            if new is None:
                visit(child, qualified + ".")
            elif new is not child:
                setattr(parent, name, new)
                report.swapped.append((qualified, type(child).__name__, type(new).__name__))

    def _convert_one(conv: nn.Module, name: str) -> nn.Module | None:
        if not isinstance(conv, (nn.Conv2d, nn.Conv3d)):
            return None  # not a conv: look inside
        is_dw = conv.groups == conv.in_channels == conv.out_channels
        is_dense = conv.groups == 1 and any(k > 1 for k in conv.kernel_size)
        wanted = (depthwise and is_dw) or (bool(factorized) and is_dense and not is_dw)
        exact = type(conv) in (nn.Conv2d, nn.Conv3d)
        if not wanted:
            if depthwise and exact and conv.groups > 1 and conv.groups == conv.in_channels and not is_dw:
                report.skipped.append((name, f"depthwise with channel multiplier {conv.out_channels // conv.groups}"))
            return conv
        if not exact:
            report.skipped.append((name, f"{type(conv).__name__} is a subclass of {type(conv).__mro__[1].__name__}"))
            return conv
        if depthwise and is_dw:
            return _depthwise_copy(conv)
        dense_type = nn.Conv2d if isinstance(conv, nn.Conv2d) else nn.Conv3d
        cls = factorized.get(dense_type)
        if cls is None:
            report.skipped.append((name, f"no Factorized{dense_type.__name__} in this version of leanconv"))
            return conv
        new = cls.from_conv(conv, factorize)
        new.train(conv.training)
        return new

    # a bare convolution as the model itself
    root = _convert_one(model, "")
    if root is not None and root is not model:
        report.swapped.append(("", type(model).__name__, type(root).__name__))
        model = root
    elif root is None:
        visit(model, "")
    report.params_after = _count_params(model)
    return model, report
