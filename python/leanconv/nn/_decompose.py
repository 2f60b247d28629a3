"""CP decompositions of convolution kernels with bounded memory.

tensorly's CP-ALS (``tensorly.decomposition.parafac``) spends almost all its
memory in the MTTKRP step (unfolded tensor times the Khatri-Rao product of
the other factors), which its default implementation computes by forming the
full Khatri-Rao product: for mode n that is a (prod_{m != n} I_m) x R matrix.
For a conv kernel (C_out, C_in, k, k, k) and a spatial mode this is
C_out*C_in*k^2 x R, e.g. 512*1024*9 x 916 floats = 17 GB for a Conv3d
1024->512 at 10x compression (float64, as tensorly-torch's from_tensor uses:
35 GB).  That is the blow-up behind tensorly-torch's "83 GB" report.

:func:`cp_decompose` runs tensorly's own parafac, but with an MTTKRP
(:func:`mttkrp_chunked`) that never forms that product: it contracts the
largest other mode with a GEMM, multiplies by the (small) Khatri-Rao product
of the remaining modes, and streams over slices of mode n so every temporary
stays under ``memory_budget`` elements.  The MTTKRP is swapped in through
tensorly's documented hook (``tl.tenalg.register_backend_method``) for the
duration of the call only.  Everything runs in float32.  The SVD initialisation
(:func:`svd_init`) works on I_n x I_n Gram matrices rather than SVDs of the
unfoldings, whose LAPACK workspace grew to several GB on a Conv3d 1024->512.
Peak memory is then about the kernel, one unfolded copy of it and the budget,
independent of the rank's Khatri-Rao blow-up.
"""
from __future__ import annotations

import contextlib
import threading
import warnings

import torch

__all__ = ["balance", "cp_decompose", "mttkrp_chunked", "spatial_decompose", "svd_init"]

DEFAULT_BUDGET = 1 << 24  # elements (64 MiB of float32) per MTTKRP temporary

_lock = threading.Lock()


def _khatri_rao(mats: list[torch.Tensor], rank: int, like: torch.Tensor) -> torch.Tensor:
    """Row-major Khatri-Rao product (first matrix varies slowest); (1, R) ones for none."""
    kr = torch.ones(1, rank, dtype=like.dtype, device=like.device)
    for m in mats:
        kr = (kr[:, None, :] * m[None, :, :]).reshape(-1, rank)
    return kr


def mttkrp_chunked(tensor: torch.Tensor, cp_tensor, mode: int, memory_budget: int = DEFAULT_BUDGET) -> torch.Tensor:
    """``unfold(tensor, mode) @ khatri_rao(other factors)`` (times the CP weights)
    with temporaries of at most about ``memory_budget`` elements."""
    weights, factors = cp_tensor
    rank = factors[0].shape[1]
    others = [m for m in range(tensor.ndim) if m != mode]
    big = max(others, key=lambda m: tensor.shape[m])
    rest = [m for m in others if m != big]
    kr = _khatri_rao([factors[m] for m in rest], rank, tensor)
    if weights is not None:
        kr = kr * weights
    n, q, nb = tensor.shape[mode], kr.shape[0], tensor.shape[big]
    permuted = tensor.permute(mode, *rest, big)
    chunk = max(1, int(memory_budget // max(1, q * max(rank, nb))))
    out = torch.empty(n, rank, dtype=tensor.dtype, device=tensor.device)
    for s in range(0, n, chunk):
        xc = permuted[s : s + chunk].reshape(-1, q, nb)
        z = torch.matmul(xc, factors[big])  # (c, q, R)
        out[s : s + chunk] = z.mul_(kr).sum(1)
    return out


@contextlib.contextmanager
def _frugal_mttkrp(memory_budget: int):
    import tensorly as tl

    backend_cls = type(tl.tenalg.current_backend())
    name = "unfolding_dot_khatri_rao"
    old = backend_cls.__dict__.get(name)
    with _lock:
        tl.tenalg.register_backend_method(name, lambda t, cp, mode: mttkrp_chunked(t, cp, mode, memory_budget))
        try:
            yield
        finally:
            if old is not None:
                setattr(backend_cls, name, old)


def svd_init(x: torch.Tensor, rank: int, random_state: int | None = 0) -> list[torch.Tensor]:
    """tensorly's "svd" initialisation of CP-ALS (leading left singular vectors of each
    unfolding, the first scaled by the singular values, random columns where a mode is
    shorter than the rank), computed from the Gram matrix X_(n) X_(n)^T (I_n x I_n,
    eigh in float64) instead of an SVD of the I_n x prod(others) unfolding: the same
    vectors, with the memory of one unfolding and a fraction of the time (LAPACK's SVD
    of a 1024 x 13824 unfolding takes minutes on two cores)."""
    gen = torch.Generator().manual_seed(0 if random_state is None else random_state)
    factors = []
    for mode, size in enumerate(x.shape):
        xm = x.movedim(mode, 0).reshape(size, -1)
        evals, evecs = torch.linalg.eigh((xm @ xm.t()).double())
        del xm
        k = min(rank, size)
        order = torch.argsort(evals, descending=True)[:k]
        u = evecs[:, order]
        if mode == 0:
            u = u * evals[order].clamp_min(0).sqrt()
        u = u.to(x.dtype)
        if size < rank:
            u = torch.cat([u, torch.rand(size, rank - size, generator=gen).to(u)], 1)
        factors.append(u)
    return factors


def cp_decompose(
    kernel: torch.Tensor,
    rank: int,
    *,
    n_iter_max: int = 100,
    tol: float = 1e-7,
    init: str = "svd",
    random_state: int | None = 0,
    linesearch: bool = True,
    memory_budget: int = DEFAULT_BUDGET,
    progress: bool = False,
    restarts: int | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Rank-``rank`` CP decomposition of ``kernel`` by tensorly's ``parafac`` (ALS, with
    its line search by default) in float32 with the chunked MTTKRP, started from
    :func:`svd_init` (``init="svd"``) or tensorly's ``"random"``; returns
    ``(weights, factors)`` (tensorly layout: one (I_n, R) matrix per mode), on the
    kernel's device.  Small problems run on one thread (ALS on a small tensor is a
    long run of tiny GEMMs, which thread start-up would dominate).

    ALS can stall in a poor local fit (a "swamp"): with ``restarts`` > 1 it is run from
    that many starts (``init`` first, then random ones) and the best fit is kept; the
    default is 3 for small problems (kernel size x rank < 2^22) and 1 otherwise."""
    import tensorly as tl
    from tensorly.decomposition import parafac

    x = kernel.detach().to(torch.float32).contiguous()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_iter_max, desc=f"CP rank {rank} of {tuple(x.shape)}", leave=False)

    def callback(cp, err):
        if bar is not None:
            bar.update(1)
            bar.set_postfix(rel_error=f"{float(err):.3g}")

    threads = torch.get_num_threads()
    small = x.numel() * rank < (1 << 20)
    if restarts is None:
        restarts = 3 if x.numel() * rank < (1 << 22) else 1
    best, best_err = None, float("inf")
    try:
        if small:
            torch.set_num_threads(1)
        with tl.backend_context("pytorch"), _frugal_mttkrp(memory_budget), torch.no_grad(), \
                warnings.catch_warnings():
            # tensorly's SVD init notes that modes of size k < R get random columns: expected here
            warnings.filterwarnings("ignore", message="Trying to compute SVD with n_eigenvecs")
            norm = x.norm()
            for attempt in range(max(1, restarts)):
                seed = None if random_state is None else random_state + attempt
                how = init if attempt == 0 else "random"
                start = (None, svd_init(x, rank, seed)) if how == "svd" else how
                cp = parafac(
                    x, rank, n_iter_max=n_iter_max, init=start, tol=tol, random_state=seed,
                    normalize_factors=False, linesearch=linesearch,
                    # tensorly's callback needs the error, which it computes only with tol > 0
                    callback=callback if bar is not None and tol else None,
                )
                if restarts <= 1:
                    best = cp
                    break
                err = float((tl.cp_to_tensor(cp) - x).norm() / norm)
                if err < best_err:
                    best, best_err = cp, err
                if best_err < 1e-5:
                    break
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    cp = best
    weights, factors = cp
    return weights, list(factors)


def balance(weights: torch.Tensor, factors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Factors with the weights folded in and equal column norms across modes
    (|lam_r|^(1/m) each; the sign goes to the first factor), so that gradient steps
    see well-scaled factors.  The reconstructed tensor is unchanged."""
    m = len(factors)
    norms = [f.norm(dim=0) for f in factors]
    lam = weights * torch.stack(norms).prod(0)
    target = lam.abs().pow(1.0 / m)
    out = []
    for i, (f, nrm) in enumerate(zip(factors, norms)):
        g = f / torch.where(nrm > 0, nrm, torch.ones_like(nrm)) * target
        if i == 0:
            g = g * torch.sign(lam + (lam == 0).to(lam.dtype))
        out.append(g)
    return out


def spatial_decompose(kernel: torch.Tensor, rank: int, *, n_iter_max: int = 200, random_state: int = 0):
    """Per-kernel rank-``rank`` one-way decomposition of ``kernel`` (C_out, C_in, k...):
    returns one (C_out, C_in, k_axis, R) factor per spatial axis with
    ``kernel[o, i] ~= sum_r prod_axis F_axis[o, i, :, r]``.

    2-D: truncated SVD of every k x k kernel (optimal).  3-D: ALS batched over all
    (o, i) kernels at once (each kernel is tiny, so tensorly's per-tensor parafac
    would be one Python call per kernel)."""
    x = kernel.detach().to(torch.float32)
    cout, cin, *ks = x.shape
    b = x.reshape(cout * cin, *ks)
    if len(ks) == 2:
        u, s, vh = torch.linalg.svd(b, full_matrices=False)
        r = min(rank, s.shape[1])
        root = s[:, :r].sqrt()
        fy = torch.zeros(b.shape[0], ks[0], rank, dtype=x.dtype, device=x.device)
        fx = torch.zeros(b.shape[0], ks[1], rank, dtype=x.dtype, device=x.device)
        fy[..., :r] = u[..., :r] * root[:, None, :]
        fx[..., :r] = vh[:, :r, :].transpose(1, 2) * root[:, None, :]
        facs = [fy, fx]
    else:
        gen = torch.Generator(device="cpu").manual_seed(random_state)
        facs = [torch.randn(b.shape[0], k, rank, generator=gen).to(x) for k in ks]
        eye = 1e-9 * torch.eye(rank, dtype=x.dtype, device=x.device)
        letters = "abc"
        for _ in range(n_iter_max):
            for n in range(3):
                o = [m for m in range(3) if m != n]
                gram = (facs[o[0]].transpose(1, 2) @ facs[o[0]]) * (facs[o[1]].transpose(1, 2) @ facs[o[1]])
                spec = f"z{letters},z{letters[o[0]]}r,z{letters[o[1]]}r->z{letters[n]}r"
                rhs = torch.einsum(spec, b, facs[o[0]], facs[o[1]])
                facs[n] = torch.linalg.solve(gram + eye, rhs.transpose(1, 2)).transpose(1, 2)
        # balance the per-kernel scales across the three factors
        norms = [f.norm(dim=1, keepdim=True) for f in facs]
        total = norms[0] * norms[1] * norms[2]
        facs = [f / torch.where(nr > 0, nr, torch.ones_like(nr)) * total.pow(1 / 3) for f, nr in zip(facs, norms)]
    return [f.reshape(cout, cin, f.shape[1], rank).to(kernel.dtype) for f in facs]
