"""Depthwise convolution ops: typed wrappers over ``torch.ops.leanconv.*``,
fake (meta) kernels for ``torch.compile`` and autograd.

Every op is differentiable, the backward ops too (each gradient of a
depthwise convolution is again one of these ops), so double backward works.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ._geometry import conv_output_size, ntuple, padding_pairs

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

    ops = torch.ops.leanconv

    # forward: y = conv(x, w) + b
    def _setup_forward(ctx, inputs, output):
        input, weight, bias, stride, padding, dilation = inputs
        ctx.save_for_backward(input, weight)
        ctx.geometry = (list(stride), list(padding), list(dilation))
        ctx.has_bias = bias is not None

    def _backward_forward(ctx, grad):
        input, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        gi = gw = gb = None
        if ctx.needs_input_grad[0]:
            gi = ops.depthwise_conv_backward_input(grad, weight, list(input.shape), stride, padding, dilation)
        if ctx.needs_input_grad[1]:
            gw = ops.depthwise_conv_backward_weight(grad, input, list(weight.shape[2:]), stride, padding, dilation)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = ops.depthwise_conv_backward_bias(grad)
        return gi, gw, gb, None, None, None

    torch.library.register_autograd(lib + "depthwise_conv", _backward_forward, setup_context=_setup_forward)

    # gx = conv^T(gy, w): linear in gy (adjoint: forward conv) and in w.
    def _setup_backward_input(ctx, inputs, output):
        grad_output, weight, input_size, stride, padding, dilation = inputs
        ctx.save_for_backward(grad_output, weight)
        ctx.geometry = (list(stride), list(padding), list(dilation))

    def _backward_backward_input(ctx, grad):
        grad_output, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        g_gy = g_w = None
        if ctx.needs_input_grad[0]:
            g_gy = ops.depthwise_conv(grad, weight, None, stride, padding, dilation)
        if ctx.needs_input_grad[1]:
            g_w = ops.depthwise_conv_backward_weight(
                grad_output, grad, list(weight.shape[2:]), stride, padding, dilation
            )
        return g_gy, g_w, None, None, None, None

    torch.library.register_autograd(
        lib + "depthwise_conv_backward_input", _backward_backward_input, setup_context=_setup_backward_input
    )

    # gw = corr(gy, x): linear in gy (forward conv of x with the cotangent) and in x.
    def _setup_backward_weight(ctx, inputs, output):
        grad_output, input, kernel_size, stride, padding, dilation = inputs
        ctx.save_for_backward(grad_output, input)
        ctx.geometry = (list(stride), list(padding), list(dilation))

    def _backward_backward_weight(ctx, grad):
        grad_output, input = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        g_gy = g_x = None
        if ctx.needs_input_grad[0]:
            g_gy = ops.depthwise_conv(input, grad, None, stride, padding, dilation)
        if ctx.needs_input_grad[1]:
            g_x = ops.depthwise_conv_backward_input(grad_output, grad, list(input.shape), stride, padding, dilation)
        return g_gy, g_x, None, None, None, None

    torch.library.register_autograd(
        lib + "depthwise_conv_backward_weight", _backward_backward_weight, setup_context=_setup_backward_weight
    )

    def _setup_backward_bias(ctx, inputs, output):
        ctx.shape = inputs[0].shape

    def _backward_backward_bias(ctx, grad):
        view = [1, -1] + [1] * (len(ctx.shape) - 2)
        return grad.view(view).expand(ctx.shape)

    torch.library.register_autograd(
        lib + "depthwise_conv_backward_bias", _backward_backward_bias, setup_context=_setup_backward_bias
    )


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
    give channels_last outputs.
    """
    from .. import _ext

    _ext.load()
    if input.dim() not in (4, 5):
        raise ValueError(f"input must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W), got shape {tuple(input.shape)}")
    n = input.dim() - 2
    return torch.ops.leanconv.depthwise_conv(
        input,
        weight,
        bias,
        ntuple(stride, n, "stride"),
        padding_pairs(padding, n),
        ntuple(dilation, n, "dilation"),
    )


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1) -> torch.Tensor:
    """2-D depthwise convolution, like ``F.conv2d(input, weight, bias, stride, padding, dilation, groups=C)``.

    ``input`` (N, C, H, W), ``weight`` (C, 1, kH, kW), ``bias`` (C,) or None.
    """
    if input.dim() != 4:
        raise ValueError(f"depthwise_conv2d: input must be 4-D (N, C, H, W), got shape {tuple(input.shape)}")
    return depthwise_conv(input, weight, bias, stride, padding, dilation)


def depthwise_conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1) -> torch.Tensor:
    """3-D depthwise convolution, like ``F.conv3d(..., groups=C)``.

    ``input`` (N, C, D, H, W), ``weight`` (C, 1, kD, kH, kW), ``bias`` (C,) or None.
    """
    if input.dim() != 5:
        raise ValueError(f"depthwise_conv3d: input must be 5-D (N, C, D, H, W), got shape {tuple(input.shape)}")
    return depthwise_conv(input, weight, bias, stride, padding, dilation)
