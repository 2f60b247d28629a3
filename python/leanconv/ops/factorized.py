"""One-way factorized (CP) convolution ops.

A CP convolution has the kernel

    W[o, i, (z,) y, x] = sum_r  lam[r] * A[o, r] * B[i, r] * (Fz[z, r] *) Fy[y, r] * Fx[x, r]

and is computed as three steps (:func:`factorized_conv`):

1. channel mixing ``C_in -> R`` with ``B`` (a GEMM, ``torch.matmul``);
2. :func:`one_way_conv` on the R channels: the 1-D filters along W, H (and D),
   times ``lam``, fused in one hand-written kernel so the intermediates stay in
   cache (registered op ``torch.ops.leanconv.one_way_conv`` and its backward);
3. channel mixing ``R -> C_out`` with ``A`` (a GEMM) plus bias.

:func:`one_way_conv_unfused` computes step 2 with one depthwise convolution
per axis instead; the benchmark compares the two.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ._geometry import autocast_to, ntuple, padding_pairs
from .depthwise import _memory_format, _output_shape, depthwise_conv, unbatched

__all__ = ["one_way_conv", "one_way_conv_unfused", "factorized_conv"]


def _split_filters(filters: Sequence[torch.Tensor], dims: int):
    filters = list(filters)
    if len(filters) != dims:
        raise ValueError(
            f"filters must hold one (C, k) filter per spatial axis ({dims} for a "
            f"{dims + 2}-D input, in (D,) H, W order), got {len(filters)}"
        )
    return (filters[0] if dims == 3 else None), filters[-2], filters[-1]


def _register() -> None:
    lib = "leanconv::"

    @torch.library.register_fake(lib + "one_way_conv")
    def _fake_forward(input, filter_d, filter_h, filter_w, scale, stride, padding, dilation):
        ks = ([filter_d.shape[1]] if filter_d is not None else []) + [filter_h.shape[1], filter_w.shape[1]]
        shape = _output_shape(input.shape, ks, stride, padding, dilation)
        return input.new_empty(shape).contiguous(memory_format=_memory_format(input))

    @torch.library.register_fake(lib + "one_way_conv_backward")
    def _fake_backward(grad_output, input, filter_d, filter_h, filter_w, scale, stride, padding, dilation, mask):
        def none():
            return input.new_empty([0])

        gx = input.new_empty(input.shape).contiguous(memory_format=_memory_format(input)) if mask[0] else none()
        if not mask[1]:
            return gx, none(), none(), none(), none()
        gd = filter_d.new_empty(filter_d.shape) if filter_d is not None else none()
        gs = scale.new_empty(scale.shape) if scale is not None else none()
        return gx, gd, filter_h.new_empty(filter_h.shape), filter_w.new_empty(filter_w.shape), gs

    # (the same formulas as _OneWayConv, for direct calls of the op)
    torch.library.register_autograd(lib + "one_way_conv", _backward, setup_context=_setup)

    def _setup_backward(ctx, inputs, output):
        pass

    def _no_double_backward(ctx, *grads):
        raise NotImplementedError(_NO_DOUBLE_BACKWARD)

    torch.library.register_autograd(
        lib + "one_way_conv_backward", _no_double_backward, setup_context=_setup_backward
    )


def _setup(ctx, inputs, output):
    input, filter_d, filter_h, filter_w, scale, stride, padding, dilation = inputs
    ctx.save_for_backward(input, filter_d, filter_h, filter_w, scale)
    ctx.geometry = (list(stride), list(padding), list(dilation))


def _backward(ctx, grad):
    input, filter_d, filter_h, filter_w, scale = ctx.saved_tensors
    needs = ctx.needs_input_grad
    mask = [bool(needs[0]), bool(any(needs[1:5]))]
    if not any(mask):
        return (None,) * 8
    gx, gd, gh, gw, gs = _OneWayConvBackward.apply(
        grad.contiguous(), input, filter_d, filter_h, filter_w, scale, *ctx.geometry, mask
    )
    return (
        gx if needs[0] else None,
        gd if needs[1] else None,
        gh if needs[2] else None,
        gw if needs[3] else None,
        gs if needs[4] else None,
        None,
        None,
        None,
    )


_NO_DOUBLE_BACKWARD = (
    "leanconv: double backward through one_way_conv (FactorizedConv2d/3d) is not "
    "implemented; use first-order gradients, or factorization='spatial' (dense path)"
)


class _OneWayConvBackward(torch.autograd.Function):
    """The backward op, differentiable no further: a second derivative raises a clear
    error (and ``torch.func`` transforms, which run backward with grad mode on, accept it)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad, input, filter_d, filter_h, filter_w, scale, stride, padding, dilation, mask):
        return torch.ops.leanconv.one_way_conv_backward(grad, input, filter_d, filter_h, filter_w, scale, stride,
                                                        padding, dilation, mask)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError(_NO_DOUBLE_BACKWARD)


class _OneWayConv(torch.autograd.Function):
    """The ``one_way_conv`` op as an autograd.Function with ``setup_context`` (what
    ``torch.func`` transforms require; the op's registered autograd has none)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, filter_d, filter_h, filter_w, scale, stride, padding, dilation):
        return torch.ops.leanconv.one_way_conv(input, filter_d, filter_h, filter_w, scale, stride, padding, dilation)

    setup_context = staticmethod(_setup)
    backward = staticmethod(_backward)


def one_way_conv(
    input: torch.Tensor,
    filters: Sequence[torch.Tensor],
    scale: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Chain of per-channel 1-D filters on a 4-D (N, C, H, W) or 5-D (N, C, D, H, W) input.

    ``filters`` holds one (C, k) tensor per spatial axis in (D,) H, W order;
    channel ``c`` is filtered along W by ``filters[-1][c]``, along H by
    ``filters[-2][c]`` (and along D by ``filters[0][c]``), then multiplied by
    ``scale[c]``.  Same result as a depthwise ``F.conv2d``/``F.conv3d`` whose
    kernel is the outer product of the filters (times ``scale``); stride,
    padding (int, per axis, or (before, after) pairs) and dilation apply per
    axis.  Computed by one fused kernel; differentiable once (also under
    ``torch.func`` transforms).  An unbatched input (one axis fewer) gives an
    unbatched output; under autocast it runs in the autocast dtype.
    """
    from .. import _ext

    _ext.load()
    filters = list(filters)
    n = len(filters)
    if n not in (2, 3) or input.dim() not in (n + 1, n + 2):
        raise ValueError(f"filters must hold one (C, k) filter per spatial axis of the input ((N, C, H, W) or "
                         f"(N, C, D, H, W), or unbatched without N), got {n} filters for input shape "
                         f"{tuple(input.shape)}")
    geometry = (ntuple(stride, n, "stride"), padding_pairs(padding, n), ntuple(dilation, n, "dilation"))
    input, scale, *filters = autocast_to(input.device, input, scale, *filters)
    fd, fh, fw = _split_filters(filters, n)
    # (the autograd.Function only under torch.func transforms: see ops.depthwise.depthwise_conv)
    op = _OneWayConv.apply if torch._C._are_functorch_transforms_active() else torch.ops.leanconv.one_way_conv
    return unbatched(input, n, lambda x: op(x, fd, fh, fw, scale, *geometry))


def one_way_conv_unfused(input, filters, scale=None, stride=1, padding=0, dilation=1, *,
                         conv=depthwise_conv) -> torch.Tensor:
    """:func:`one_way_conv` computed as one depthwise convolution per axis, each
    intermediate going through memory.  Same arguments and result; kept as the
    baseline of the fused kernel.  ``conv`` runs each axis, called as
    ``conv(input, weight, None, stride, padding_pairs, dilation)`` with lists of
    one entry per axis (two for the padding): :func:`leanconv.ops.depthwise_conv`
    by default; the benchmarks pass PyTorch's depthwise convolution."""
    if input.dim() not in (4, 5):
        raise ValueError(f"input must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W), got shape {tuple(input.shape)}")
    n = input.dim() - 2
    filters = list(filters)
    _split_filters(filters, n)
    st, dl = ntuple(stride, n, "stride"), ntuple(dilation, n, "dilation")
    pads = padding_pairs(padding, n)
    y = input
    for axis in reversed(range(n)):  # W first, as the fused kernel
        f = filters[axis]
        if axis == 0 and scale is not None:
            f = f * scale[:, None]
        shape = [1] * n
        shape[axis] = f.shape[1]
        ax_stride, ax_dil, ax_pad = [1] * n, [1] * n, [0] * (2 * n)
        ax_stride[axis], ax_dil[axis] = st[axis], dl[axis]
        ax_pad[2 * axis], ax_pad[2 * axis + 1] = pads[2 * axis], pads[2 * axis + 1]
        y = conv(y, f.reshape(f.shape[0], 1, *shape), None, ax_stride, ax_pad, ax_dil)
    return y


def _mix_in(input: torch.Tensor, in_factor: torch.Tensor) -> torch.Tensor:
    """``C_in -> R`` channel mixing: ``t[n, r] = sum_i B[i, r] x[n, i]``.

    Batched GEMMs with the factor broadcast over the batch (stride 0): no
    copies of the activations, unlike torch.matmul's folding of a 2-D @ 3-D
    product (see the "gemm" section of the benchmark)."""
    N, cin = input.shape[:2]
    rank = in_factor.shape[1]
    x = input.flatten(2)
    return torch.bmm(in_factor.t().unsqueeze(0).expand(N, rank, cin), x).view(N, rank, *input.shape[2:])


def _mix_out(u: torch.Tensor, out_factor: torch.Tensor, bias: torch.Tensor | None, mf) -> torch.Tensor:
    """``R -> C_out`` channel mixing plus bias, in the memory format ``mf``."""
    N, rank = u.shape[:2]
    cout = out_factor.shape[0]
    a = out_factor.unsqueeze(0).expand(N, cout, rank)
    u3 = u.flatten(2)
    if bias is None:
        y = torch.bmm(a, u3)
    else:
        y = torch.baddbmm(bias.view(1, cout, 1).expand(N, cout, u3.shape[2]), a, u3)
    y = y.view(N, cout, *u.shape[2:])
    return y if mf == torch.contiguous_format else y.contiguous(memory_format=mf)


class _RecomputedCP(torch.autograd.Function):
    """The CP convolution keeping only its input for backward.

    The R-channel intermediates (after the first GEMM and after the 1-D
    filters) are recomputed in backward instead of stored, so a layer holds
    no more activation memory than the dense convolution it replaces, at the
    cost of one GEMM and one filter chain more per backward pass.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, in_factor, out_factor, weights, bias, geometry, *filters):
        stride, padding, dilation = geometry
        u = one_way_conv(_mix_in(input, in_factor), list(filters), weights, stride, padding, dilation)
        return _mix_out(u, out_factor, bias, _memory_format(input))

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, in_factor, out_factor, weights, bias, geometry, *filters = inputs
        ctx.save_for_backward(input, in_factor, out_factor, weights, bias, *filters)
        ctx.geometry = geometry

    @staticmethod
    def backward(ctx, grad):
        input, in_factor, out_factor, weights, bias, *filters = ctx.saved_tensors
        needs = ctx.needs_input_grad
        stride, padding, dilation = ctx.geometry
        N, cin = input.shape[:2]
        rank, cout = in_factor.shape[1], out_factor.shape[0]
        n = input.dim() - 2
        fd, fh, fw = _split_filters(filters, n)
        t = _mix_in(input, in_factor)
        g3 = grad.flatten(2)
        g_out = g_bias = None
        if needs[2]:  # (each intermediate is dropped as soon as it is used: they are what recomputing saves)
            with torch.no_grad():
                u = torch.ops.leanconv.one_way_conv(t, fd, fh, fw, weights, stride, padding, dilation)
            g_out = torch.bmm(g3, u.flatten(2).transpose(1, 2)).sum(0)
            del u
        if bias is not None and needs[4]:
            g_bias = g3.sum(dim=(0, 2))
        grads_f = [None] * n
        g_in = g_factor_in = g_w = None
        mask = [bool(needs[0] or needs[1]), bool(needs[3] or any(needs[6:]))]
        if any(mask):
            gu = torch.bmm(out_factor.t().unsqueeze(0).expand(N, rank, cout), g3).view(N, rank, *grad.shape[2:])
            gt, gd, gh, gw, gs = _OneWayConvBackward.apply(
                gu.contiguous(), t, fd, fh, fw, weights, stride, padding, dilation, mask)
            del gu, t
            if mask[1]:
                grads_f = ([gd] if n == 3 else []) + [gh, gw]
                g_w = gs if weights is not None else None
            if mask[0]:
                gt3 = gt.flatten(2)
                if needs[1]:
                    g_factor_in = torch.bmm(input.flatten(2), gt3.transpose(1, 2)).sum(0)
                if needs[0]:
                    g_in = torch.bmm(in_factor.unsqueeze(0).expand(N, cin, rank), gt3).view(input.shape)
        grads_f = [g if needs[6 + i] else None for i, g in enumerate(grads_f)]
        return (g_in if needs[0] else None, g_factor_in, g_out, g_w if needs[3] else None, g_bias, None, *grads_f)


def factorized_conv(
    input: torch.Tensor,
    in_factor: torch.Tensor,
    spatial_factors: Sequence[torch.Tensor],
    out_factor: torch.Tensor,
    weights: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    recompute: bool = False,
) -> torch.Tensor:
    """CP convolution: ``F.conv2d/3d(input, W, bias, stride, padding, dilation)`` with the
    kernel ``W[o, i, ...] = sum_r weights[r] A[o, r] B[i, r] prod_axis F_axis[k_axis, r]``.

    ``in_factor`` B is (C_in, R), ``out_factor`` A is (C_out, R),
    ``spatial_factors`` one (k, R) matrix per spatial axis in (D,) H, W order
    (the tensorly CP layout), ``weights`` lam is (R,) or None (ones).  The
    channel mixing runs on the library GEMM, the spatial filters on
    :func:`one_way_conv`.  channels_last inputs give channels_last outputs.
    ``recompute=True`` keeps only the input for backward and recomputes the
    two R-channel intermediates there (the layer then needs no more
    activation memory than the dense convolution; backward costs one GEMM and
    one filter chain more).
    """
    n = len(spatial_factors)
    if n not in (2, 3) or input.dim() not in (n + 1, n + 2):
        raise ValueError(f"input must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W) (or unbatched, one axis fewer) "
                         f"with one spatial factor per axis, got shape {tuple(input.shape)} and {n} factors")
    cin = input.shape[-n - 1]
    if in_factor.dim() != 2 or in_factor.shape[0] != cin:
        raise ValueError(f"in_factor must have shape (C_in, R) with C_in = {cin}, got {tuple(in_factor.shape)}")
    rank = in_factor.shape[1]
    if out_factor.dim() != 2 or out_factor.shape[1] != rank:
        raise ValueError(f"out_factor must have shape (C_out, R) with R = {rank}, got {tuple(out_factor.shape)}")
    for i, f in enumerate(spatial_factors):
        if f.dim() != 2 or f.shape[1] != rank:
            raise ValueError(f"spatial_factors[{i}] must have shape (k, R) with R = {rank}, got {tuple(f.shape)}")
    input, in_factor, out_factor, weights, bias, *factors = autocast_to(
        input.device, input, in_factor, out_factor, weights, bias, *spatial_factors)
    filters = [f.t() for f in factors]
    if recompute and torch.is_grad_enabled():
        from .. import _ext

        _ext.load()
        geometry = (ntuple(stride, n, "stride"), padding_pairs(padding, n), ntuple(dilation, n, "dilation"))
        return unbatched(input, n, lambda x: _RecomputedCP.apply(x, in_factor, out_factor, weights, bias, geometry,
                                                                 *filters))

    def run(x: torch.Tensor) -> torch.Tensor:
        u = one_way_conv(_mix_in(x, in_factor), filters, weights, stride, padding, dilation)
        return _mix_out(u, out_factor, bias, _memory_format(x))

    return unbatched(input, n, run)
