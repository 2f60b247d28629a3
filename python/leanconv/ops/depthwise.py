"""Depthwise convolution ops: typed wrappers over ``torch.ops.leanconv.*``,
fake (meta) kernels for ``torch.compile`` and autograd.

Every op is differentiable, the backward ops too (each gradient of a
depthwise convolution is again one of these ops), so double backward works.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ._geometry import autocast_to, conv_output_size, ntuple, padding_pairs

__all__ = ["depthwise_conv2d", "depthwise_conv3d", "depthwise_conv"]


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    if t.is_contiguous():
        return torch.contiguous_format
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def _output_shape(input_shape, kernel_size, stride, padding, dilation) -> list[int]:
    n = len(kernel_size)
    pads = padding_pairs(list(padding), n)
    st, dl = ntuple(list(stride), n, "stride"), ntuple(list(dilation), n, "dilation")
    spatial = [
        conv_output_size(input_shape[2 + i], kernel_size[i], st[i], pads[2 * i], pads[2 * i + 1], dl[i])
        for i in range(n)
    ]
    return [input_shape[0], input_shape[1], *spatial]


def _check_devices(reference_name: str, reference: torch.Tensor, **others: torch.Tensor | None) -> None:
    # A tensor on the meta device routes the call to the fake kernels, so the
    # compiled kernels' device checks never run: check here too.
    for name, t in others.items():
        if t is not None:
            torch._check(
                t.device == reference.device,
                lambda: f"{name} is on {t.device} but {reference_name} is on {reference.device}",
            )


def _register() -> None:
    lib = "leanconv::"

    @torch.library.register_fake(lib + "depthwise_conv")
    def _fake_forward(input, weight, bias, stride, padding, dilation):
        _check_devices("input", input, weight=weight, bias=bias)
        shape = _output_shape(input.shape, weight.shape[2:], stride, padding, dilation)
        return input.new_empty(shape).contiguous(memory_format=_memory_format(input))

    @torch.library.register_fake(lib + "depthwise_conv_backward_input")
    def _fake_backward_input(grad_output, weight, input_size, stride, padding, dilation):
        _check_devices("grad_output", grad_output, weight=weight)
        return grad_output.new_empty(input_size).contiguous(memory_format=_memory_format(grad_output))

    @torch.library.register_fake(lib + "depthwise_conv_backward_weight")
    def _fake_backward_weight(grad_output, input, kernel_size, stride, padding, dilation):
        _check_devices("grad_output", grad_output, input=input)
        return grad_output.new_empty([grad_output.shape[1], 1, *kernel_size])

    @torch.library.register_fake(lib + "depthwise_conv_backward_bias")
    def _fake_backward_bias(grad_output):
        return grad_output.new_empty([grad_output.shape[1]])

    # The ops' autograd (for direct calls of torch.ops.leanconv.*): the same formulas as the
    # autograd.Functions below, which the Python entry points use.
    for name, fn in _FUNCTIONS.items():
        torch.library.register_autograd(lib + name, fn.backward, setup_context=fn.setup_context)


# Autograd of the four ops.  Each gradient of a depthwise convolution is again one of the
# ops, so every formula is differentiable (double backward).  The formulas call the ops through
# autograd.Functions with setup_context, which torch.func transforms (grad, vmap(grad), jacrev)
# require: the autograd that torch.library.register_autograd attaches to an op has none.


def _save_operands(ctx, inputs, output) -> None:
    """setup_context of the three convolution ops: each takes two tensors, then one argument
    (bias, input size or kernel size), then stride, padding, dilation; backward needs the two."""
    first, second, _, stride, padding, dilation = inputs
    ctx.save_for_backward(first, second)
    ctx.geometry = (list(stride), list(padding), list(dilation))


class _DepthwiseConv(torch.autograd.Function):
    """y = conv(x, w) + b."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, weight, bias, stride, padding, dilation):
        return torch.ops.leanconv.depthwise_conv(input, weight, bias, stride, padding, dilation)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save_operands(ctx, inputs, output)
        ctx.has_bias = inputs[2] is not None

    @staticmethod
    def backward(ctx, grad):
        ops = torch.ops.leanconv
        input, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        gi = gw = gb = None
        if ctx.needs_input_grad[0]:
            gi = _call(_BackwardInput, ops.depthwise_conv_backward_input, grad,
                       weight, list(input.shape), stride, padding, dilation)
        if ctx.needs_input_grad[1]:
            gw = _call(_BackwardWeight, ops.depthwise_conv_backward_weight, grad,
                       input, list(weight.shape[2:]), stride, padding, dilation)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = _call(_BackwardBias, ops.depthwise_conv_backward_bias, grad)
        return gi, gw, gb, None, None, None


def _backward_of_backward(ctx, grad, second_is_weight: bool):
    """Gradients of a backward op, ``(grad_output, second, ...)`` with ``second`` the weight
    (backward_input) or the input (backward_weight): it is linear in grad_output (its adjoint is the
    forward conv of the input with the weight) and in ``second`` (its adjoint is the other backward op)."""
    ops = torch.ops.leanconv
    grad_output, second = ctx.saved_tensors
    stride, padding, dilation = ctx.geometry
    g_gy = g_second = None
    if ctx.needs_input_grad[0]:
        input, weight = (grad, second) if second_is_weight else (second, grad)
        g_gy = _call(_DepthwiseConv, ops.depthwise_conv, input, weight, None, stride, padding, dilation)
    if ctx.needs_input_grad[1]:
        if second_is_weight:
            other, op, size = _BackwardWeight, ops.depthwise_conv_backward_weight, list(second.shape[2:])
        else:
            other, op, size = _BackwardInput, ops.depthwise_conv_backward_input, list(second.shape)
        g_second = _call(other, op, grad_output, grad, size, stride, padding, dilation)
    return g_gy, g_second, None, None, None, None


def _backward_function(name: str, op_name: str, second_is_weight: bool, doc: str) -> type[torch.autograd.Function]:
    """The autograd.Function of the backward op ``op_name`` (``(grad_output, second, size, stride,
    padding, dilation)``); its gradients are :func:`_backward_of_backward`'s."""

    class _Backward(torch.autograd.Function):
        generate_vmap_rule = True
        setup_context = staticmethod(_save_operands)

        @staticmethod
        def forward(grad_output, second, size, stride, padding, dilation):
            return getattr(torch.ops.leanconv, op_name)(grad_output, second, size, stride, padding, dilation)

        @staticmethod
        def backward(ctx, grad):
            return _backward_of_backward(ctx, grad, second_is_weight)

    _Backward.__name__ = _Backward.__qualname__ = name
    _Backward.__doc__ = doc
    return _Backward


_BackwardInput = _backward_function(
    "_BackwardInput", "depthwise_conv_backward_input", True,
    "gx = conv^T(gy, w): linear in gy (its adjoint is the forward conv) and in w.")
_BackwardWeight = _backward_function(
    "_BackwardWeight", "depthwise_conv_backward_weight", False,
    "gw = corr(gy, x): linear in gy (forward conv of x with the cotangent) and in x.")


class _BackwardBias(torch.autograd.Function):
    """gb = sum of gy over all but the channel axis."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad_output):
        return torch.ops.leanconv.depthwise_conv_backward_bias(grad_output)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.shape = inputs[0].shape

    @staticmethod
    def backward(ctx, grad):
        view = [1, -1] + [1] * (len(ctx.shape) - 2)
        return grad.view(view).expand(ctx.shape)


_FUNCTIONS = {
    "depthwise_conv": _DepthwiseConv,
    "depthwise_conv_backward_input": _BackwardInput,
    "depthwise_conv_backward_weight": _BackwardWeight,
    "depthwise_conv_backward_bias": _BackwardBias,
}


def _call(fn: type[torch.autograd.Function], op, *args):
    """The op ``op``, differentiable: through its autograd.Function ``fn`` under ``torch.func``
    transforms, else through the op's registered autograd (the Function binds its default
    arguments with inspect.signature on every call: ~0.1 ms of Python per call)."""
    if torch._C._are_functorch_transforms_active():
        return fn.apply(*args)
    return op(*args)


def unbatched(input: torch.Tensor, dims: int, run) -> torch.Tensor:
    """``run(input)`` for a batched input (``dims + 2`` axes); an unbatched one (``dims + 1``
    axes, as ``F.conv2d`` accepts) runs as a batch of one and comes back unbatched."""
    if input.dim() == dims + 1:
        return run(input.unsqueeze(0)).squeeze(0)
    return run(input)


def depthwise_conv(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Depthwise convolution of a 4-D (N, C, H, W) or 5-D (N, C, D, H, W) input.

    Same result as ``F.conv2d``/``F.conv3d`` with ``groups=C`` and a weight of
    shape (C, 1, k...).  ``padding`` may be an int, one int per spatial axis,
    or (before, after) pairs per axis in (D,) H, W order.  channels_last inputs
    give channels_last outputs.  As with ``F.conv2d``: an unbatched input
    ((C, H, W) for a 4-D weight) gives an unbatched output, and under autocast
    the convolution runs in the autocast dtype.  Differentiable (twice), also
    under ``torch.func`` transforms.
    """
    from .. import _ext

    _ext.load()
    if weight.dim() not in (4, 5):
        raise ValueError(f"weight must have shape (C, 1, kH, kW) or (C, 1, kD, kH, kW), "
                         f"got shape {tuple(weight.shape)}")
    n = weight.dim() - 2
    if input.dim() not in (n + 1, n + 2):
        shapes = "(N, C, H, W) or (C, H, W)" if n == 2 else "(N, C, D, H, W) or (C, D, H, W)"
        raise ValueError(f"input must be {shapes} for a {n}-D kernel of shape {tuple(weight.shape)}, "
                         f"got shape {tuple(input.shape)}")
    geometry = (ntuple(stride, n, "stride"), padding_pairs(padding, n), ntuple(dilation, n, "dilation"))
    input, weight, bias = autocast_to(input.device, input, weight, bias)
    op = torch.ops.leanconv.depthwise_conv
    if input.dim() == n + 1:
        return _call(_DepthwiseConv, op, input.unsqueeze(0), weight, bias, *geometry).squeeze(0)
    return _call(_DepthwiseConv, op, input, weight, bias, *geometry)


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1) -> torch.Tensor:
    """2-D depthwise convolution, like ``F.conv2d(input, weight, bias, stride, padding, dilation, groups=C)``.

    ``input`` (N, C, H, W) or (C, H, W), ``weight`` (C, 1, kH, kW), ``bias`` (C,) or None.
    """
    if input.dim() not in (3, 4):
        raise ValueError(f"depthwise_conv2d: input must be (N, C, H, W) or (C, H, W), got shape {tuple(input.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"depthwise_conv2d: weight must have shape (C, 1, kH, kW), got shape {tuple(weight.shape)}")
    return depthwise_conv(input, weight, bias, stride, padding, dilation)


def depthwise_conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1) -> torch.Tensor:
    """3-D depthwise convolution, like ``F.conv3d(..., groups=C)``.

    ``input`` (N, C, D, H, W) or (C, D, H, W), ``weight`` (C, 1, kD, kH, kW), ``bias`` (C,) or None.
    """
    if input.dim() not in (4, 5):
        raise ValueError(f"depthwise_conv3d: input must be (N, C, D, H, W) or (C, D, H, W), got shape "
                         f"{tuple(input.shape)}")
    if weight.dim() != 5:
        raise ValueError(f"depthwise_conv3d: weight must have shape (C, 1, kD, kH, kW), got shape {tuple(weight.shape)}")
    return depthwise_conv(input, weight, bias, stride, padding, dilation)
