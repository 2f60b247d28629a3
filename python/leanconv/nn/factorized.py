"""One-way factorized ("a priori compressed") convolutions: FactorizedConv2d/3d.

factorization="cp" (default) - the CP format (Lebedev et al. 2015, tensorly-torch):

    W[o, i, (z,) y, x] = sum_r  lam[r] * A[o, r] * B[i, r] * (Fz[z, r] *) Fy[y, r] * Fx[x, r]

run as: 1x1 GEMM C_in -> R (B), the fused chain of 1-D filters on the R
channels (leanconv.ops.one_way_conv, with the layer's stride / padding /
dilation), 1x1 GEMM R -> C_out (A) plus bias.  Parameters: R*(C_in + C_out +
sum(k) + 1) (+ bias) against C_in*C_out*prod(k) for the dense layer.  With
recompute=True only the layer's input is kept for backward (the two R-channel
intermediates are recomputed there): training then needs no more activation
memory than the dense layer, for one GEMM and one filter chain more per
backward pass.

factorization="spatial" - every (o, i) kernel is its own rank-R sum of one-way
filters, channels not factorized: parameters C_out*C_in*R*sum(k).  It saves
parameters, not FLOPs: the kernel is reconstructed at each forward and run by
the library's dense convolution.

The a priori initialisation (the reconstructed kernel gets nn.ConvNd's default
variance) and the rank / parameter-count helpers are in :mod:`leanconv.nn._factorized_init`.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..ops._geometry import pad_last_first, padding_pairs, same_padding
from ..ops.factorized import factorized_conv
from . import _decompose
from ._checks import check_ints
from ._factorized_init import factorized_param_count, init_factors, resolve_rank
from ._select import check_backend, pick

__all__ = ["FactorizedConv2d", "FactorizedConv3d", "resolve_rank", "factorized_param_count"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_FACTORIZATIONS = ("cp", "spatial")


def _checked_input(input: torch.Tensor, in_channels: int, dims: int, owner: str) -> torch.Tensor:
    """``input`` if it is batched ``(N, C, ...)`` or unbatched ``(C, ...)`` with
    ``C = in_channels`` and ``dims`` spatial axes (a leaf of ``torch.fx`` traces)."""
    if input.dim() not in (dims + 1, dims + 2) or input.shape[-dims - 1] != in_channels:
        shape = "(N, C, H, W) or (C, H, W)" if dims == 2 else "(N, C, D, H, W) or (C, D, H, W)"
        raise ValueError(f"{owner}: input must be {shape} with C = in_channels = {in_channels}, "
                         f"got shape {tuple(input.shape)}")
    return input


# symbolic tracing records these as calls instead of tracing through their checks
torch.fx.wrap("_checked_input")
torch.fx.wrap("factorized_conv")


class _FactorizedConvNd(nn.Module):
    _dims = 2
    _dense_cls: type = nn.Conv2d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        *,
        rank: int | float = 0.1,
        factorization: str = "cp",
        recompute: bool = False,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        name, n = type(self).__name__, self._dims
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {v!r}")
        if groups != 1:
            raise ValueError(
                f"{name}: groups must be 1 (a CP factorization mixes all channels), got {groups}; "
                f"use leanconv.nn.DepthwiseConv{n}d for depthwise convolutions"
            )
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        if factorization not in _FACTORIZATIONS:
            raise ValueError(f"{name}: factorization must be one of {_FACTORIZATIONS}, got {factorization!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = check_ints(kernel_size, n, "kernel_size", name)
        self.stride = check_ints(stride, n, "stride", name)
        self.dilation = check_ints(dilation, n, "dilation", name)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be 'same', 'valid', an int or a tuple of {n} ints, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions (stride={self.stride})")
            self.padding = padding
        else:
            self.padding = check_ints(padding, n, "padding", name, minimum=0)
        self.groups = 1
        self.padding_mode = padding_mode
        self.factorization = factorization
        if not isinstance(recompute, bool):
            raise ValueError(f"{name}: recompute must be True or False, got {recompute!r}")
        self.recompute = recompute
        self.backend = check_backend(backend, name)
        self.rank = resolve_rank(rank, in_channels, out_channels, self.kernel_size, factorization, name)
        dense = self.dense_param_count
        if self.param_count > dense:
            warnings.warn(
                f"{name}: rank {self.rank} gives {self.param_count} weight parameters, more than the "
                f"{dense} of the dense convolution; a smaller rank (or the dense layer) makes more sense",
                UserWarning,
                stacklevel=2,
            )
        kw = {"device": device, "dtype": dtype}
        R = self.rank
        if factorization == "cp":
            self.out_factor = nn.Parameter(torch.empty(out_channels, R, **kw))
            self.in_factor = nn.Parameter(torch.empty(in_channels, R, **kw))
            self.spatial_factors = nn.ParameterList(
                [nn.Parameter(torch.empty(k, R, **kw)) for k in self.kernel_size]
            )
            self.cp_weights = nn.Parameter(torch.empty(R, **kw))
        else:
            self.spatial_factors = nn.ParameterList(
                [nn.Parameter(torch.empty(out_channels, in_channels, k, R, **kw)) for k in self.kernel_size]
            )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **kw))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    # ------------------------------------------------------------------ sizes
    @property
    def param_count(self) -> int:
        """Weight parameters of this layer (bias not counted)."""
        return factorized_param_count(self.in_channels, self.out_channels, self.kernel_size, self.rank,
                                      self.factorization)

    @property
    def dense_param_count(self) -> int:
        """Weight parameters of the equivalent dense convolution."""
        return self.in_channels * self.out_channels * math.prod(self.kernel_size)

    @property
    def compression(self) -> float:
        """Dense weight count / factorized weight count."""
        return self.dense_param_count / self.param_count

    # ------------------------------------------------------------------ init
    def reset_parameters(self) -> None:
        """A priori init: the reconstructed kernel has nn.ConvNd's default variance
        1/(3 fan_in) (formulas in :mod:`leanconv.nn._factorized_init`)."""
        init_factors(self)

    # ------------------------------------------------------------------ views
    def cp_tensor(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(weights, factors)`` in tensorly's CP layout, factors in kernel-mode order
        (C_out, C_in, (D,) H, W) - factorization='cp' only."""
        if self.factorization != "cp":
            raise ValueError(f"{type(self).__name__}.cp_tensor: only for factorization='cp', this layer is 'spatial'")
        return self.cp_weights, [self.out_factor, self.in_factor, *self._spatial()]

    @property
    def weight(self) -> torch.Tensor:
        """The dense kernel (C_out, C_in, k...) this layer computes with (read-only,
        reconstructed from the factors, differentiable)."""
        if self.factorization == "cp":
            return self._cp_kernel(self.in_factor, self.out_factor, self.cp_weights, self._spatial())
        return self._spatial_kernel(self._spatial())

    def _cp_kernel(self, in_factor, out_factor, cp_weights, spatial) -> torch.Tensor:
        # (A * lam) @ khatri_rao(B, F...)^T: temporaries of C_in * prod(k) * R elements at most
        # (a plain einsum would contract left to right through a C_out x C_in x R tensor)
        kr = in_factor
        for f in spatial:
            kr = (kr[:, None, :] * f[None, :, :]).reshape(-1, self.rank)
        w = (out_factor * cp_weights) @ kr.t()
        return w.view(self.out_channels, self.in_channels, *self.kernel_size)

    def _spatial_kernel(self, spatial) -> torch.Tensor:
        letters = "zyx"[3 - self._dims :]
        spec = ",".join(f"oi{a}r" for a in letters) + "->oi" + letters
        return torch.einsum(spec, *spatial)

    def __setattr__(self, name, value):
        if name == "weight":
            raise AttributeError(
                f"{type(self).__name__}.weight is read-only (it is reconstructed from the factors); "
                f"use {type(self).__name__}.from_conv(conv, rank) to start from a dense kernel"
            )
        super().__setattr__(name, value)

    def _padding_pairs(self) -> list[int]:
        n = self._dims
        if self.padding == "valid":
            return [0] * (2 * n)
        if self.padding == "same":
            return same_padding(self.kernel_size, self.dilation)
        return padding_pairs(list(self.padding), n)

    # ------------------------------------------------------------------ forward
    def _spatial(self) -> list[nn.Parameter]:
        """The spatial factors, read by index (Dynamo in torch 2.11 cannot unpack a
        ParameterList: torch.compile(fullgraph=True) failed on ``*self.spatial_factors``)."""
        return [self.spatial_factors[i] for i in range(len(self.spatial_factors))]

    def _params(self) -> tuple:
        """The parameters the forward reads, in the order of ``_cp_forward`` / ``_dense_forward``."""
        if self.factorization == "cp":
            return (self.in_factor, self.out_factor, self.cp_weights, self.bias, *self._spatial())
        return (self.bias, *self._spatial())

    def _padded(self, input: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """``input`` with a non-zeros padding mode applied, and the zero padding still to do."""
        n = self._dims
        pairs = self._padding_pairs()
        if self.padding_mode != "zeros":
            return F.pad(input, pad_last_first(pairs), mode=self.padding_mode), [0] * (2 * n)
        return input, pairs

    def _cp_forward(self, input, in_factor, out_factor, cp_weights, bias, *spatial) -> torch.Tensor:
        """The CP path: GEMM, the fused chain of 1-D filters, GEMM (leanconv's kernels)."""
        input, pairs = self._padded(input)
        return factorized_conv(input, in_factor, list(spatial), out_factor, cp_weights, bias, list(self.stride),
                               pairs, list(self.dilation), recompute=self.recompute)

    def _dense_forward(self, input, *params) -> torch.Tensor:
        """The dense path: PyTorch's convolution with the reconstructed kernel."""
        n = self._dims
        if self.factorization == "cp":
            in_factor, out_factor, cp_weights, bias, *spatial = params
            weight = self._cp_kernel(in_factor, out_factor, cp_weights, spatial)
        else:
            bias, *spatial = params
            weight = self._spatial_kernel(spatial)
        input, pairs = self._padded(input)
        pad = [pairs[2 * i] for i in range(n)]
        if any(pairs[2 * i] != pairs[2 * i + 1] for i in range(n)):
            input = F.pad(input, pad_last_first(pairs))
            pad = [0] * n
        return (F.conv2d if n == 2 else F.conv3d)(input, weight, bias, self.stride, pad, self.dilation)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        input = _checked_input(input, self.in_channels, self._dims, type(self).__name__)
        params = self._params()
        if self.factorization != "cp":
            return self._dense_forward(input, *params)
        backend = pick(type(self).__name__, getattr(self, "backend", None), input,
                       (self.out_channels, self.rank, *self.kernel_size), self.stride, self._padding_pairs(),
                       self.dilation, params, {"leanconv": self._cp_forward, "torch": self._dense_forward},
                       lambda: "leanconv")
        if backend == "torch":
            return self._dense_forward(input, *params)
        return self._cp_forward(input, *params)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding!r}")
        if self.dilation != (1,) * self._dims:
            s += f", dilation={self.dilation}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        if self.recompute:
            s += ", recompute=True"
        if getattr(self, "backend", None) is not None:
            s += f", backend={self.backend!r}"
        ratio = self.compression
        size = f"{ratio:.3g}x fewer weights" if ratio >= 1 else f"{1 / ratio:.3g}x more weights than dense"
        return s + f", rank={self.rank}, factorization={self.factorization!r} ({size})"

    # ------------------------------------------------------------------ conversions
    def to_dense(self) -> nn.Module:
        """An equivalent nn.Conv2d / nn.Conv3d holding the reconstructed kernel."""
        ref = self.bias if self.bias is not None else next(self.parameters())
        conv = self._dense_cls(
            self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding, self.dilation,
            1, self.bias is not None, self.padding_mode, device=ref.device, dtype=ref.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(self.weight)
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv

    @classmethod
    def from_conv(
        cls,
        conv: nn.Module,
        rank: int | float,
        *,
        factorization: str = "cp",
        n_iter_max: int = 100,
        tol: float = 1e-7,
        init: str = "svd",
        random_state: int | None = 0,
        memory_budget: int = _decompose.DEFAULT_BUDGET,
        progress: bool = False,
        restarts: int | None = None,
    ):
        """Compress a dense ``nn.Conv2d`` (``nn.Conv3d`` for FactorizedConv3d) into a
        factorized layer of the given ``rank`` (int, or float fraction of the dense
        weight count).

        factorization='cp': tensorly's ``parafac`` (CP-ALS) on the kernel, in float32,
        with a chunked MTTKRP whose temporaries stay under ``memory_budget`` elements
        (see :mod:`leanconv.nn._decompose`), so memory grows with the kernel, not with
        kernel size x rank; the factors are then balanced (equal column norms across
        modes, weights folded in); ALS is restarted from random starts and the best fit
        kept (``restarts``, default 3 for small kernels, 1 for large ones).
        factorization='spatial': per-kernel truncated SVD
        (2-D) or batched ALS (3-D).  Stride, padding, dilation, padding_mode and bias
        are copied; the new layer is on the conv's device and dtype.
        """
        name = cls.__name__
        if not isinstance(conv, cls._dense_cls):
            raise TypeError(f"{name}.from_conv: conv must be a {cls._dense_cls.__name__}, got {type(conv).__name__}")
        if conv.groups != 1:
            raise ValueError(f"{name}.from_conv: conv.groups must be 1, got {conv.groups}")
        w = conv.weight
        layer = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, 1,
            conv.bias is not None, conv.padding_mode, device=w.device, dtype=w.dtype,
            rank=rank, factorization=factorization,
        )
        with torch.no_grad():
            if factorization == "cp":
                weights, factors = _decompose.cp_decompose(
                    w, layer.rank, n_iter_max=n_iter_max, tol=tol, init=init, random_state=random_state,
                    memory_budget=memory_budget, progress=progress, restarts=restarts,
                )
                factors = _decompose.balance(weights, factors)
                layer.cp_weights.fill_(1.0)
                layer.out_factor.copy_(factors[0])
                layer.in_factor.copy_(factors[1])
                for dst, src in zip(layer.spatial_factors, factors[2:]):
                    dst.copy_(src)
            else:
                for dst, src in zip(layer.spatial_factors, _decompose.spatial_decompose(w, layer.rank)):
                    dst.copy_(src)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer


class FactorizedConv2d(_FactorizedConvNd):
    """One-way factorized 2-D convolution; drop-in for ``nn.Conv2d`` (same positional
    arguments; ``groups`` must be 1) plus keyword ``rank`` (int, or float fraction of
    the dense weight count, default 0.1 = 10x fewer weights), ``factorization``
    ('cp' or 'spatial'), ``recompute`` (cp: keep only the input for backward and
    recompute the R-channel intermediates there, for less training memory) and
    ``backend`` (cp: ``"leanconv"`` runs the CP path, ``"torch"`` PyTorch's
    convolution with the reconstructed kernel, ``"auto"`` the faster of the two
    for each call signature, measured once; None, the default, reads
    ``$LEANCONV_BACKEND``, else ``"auto"``).

    Parameters (cp): ``out_factor`` (C_out, R), ``in_factor`` (C_in, R),
    ``spatial_factors`` [(kH, R), (kW, R)], ``cp_weights`` (R,), ``bias`` (C_out,).
    ``weight`` is a read-only reconstruction of the dense kernel, so
    ``F.conv2d(x, m.weight, m.bias, m.stride, m.padding, m.dilation)`` equals ``m(x)``.
    ``to_dense()`` and ``FactorizedConv2d.from_conv(conv, rank)`` convert both ways.
    """

    _dims = 2
    _dense_cls = nn.Conv2d


class FactorizedConv3d(_FactorizedConvNd):
    """One-way factorized 3-D convolution; drop-in for ``nn.Conv3d`` (see
    :class:`FactorizedConv2d`; spatial factors are [(kD, R), (kH, R), (kW, R)])."""

    _dims = 3
    _dense_cls = nn.Conv3d
