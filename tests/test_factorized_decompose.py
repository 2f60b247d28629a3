"""The bounded-memory MTTKRP used by from_conv against tensorly's own."""
import pytest
import tensorly as tl
import torch
from tensorly.tenalg.core_tenalg.mttkrp import unfolding_dot_khatri_rao

from leanconv.nn import _decompose


@pytest.mark.parametrize("budget", [1, 50, 1 << 24])
@pytest.mark.parametrize("with_weights", [False, True])
def test_mttkrp_chunked_matches_tensorly(budget, with_weights):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 3, 2, 4, generator=g, dtype=torch.float64)
    factors = [torch.randn(s, 7, generator=g, dtype=torch.float64) for s in x.shape]
    weights = torch.rand(7, generator=g, dtype=torch.float64) if with_weights else None
    with tl.backend_context("pytorch"):
        for mode in range(x.ndim):
            want = unfolding_dot_khatri_rao(x, (weights, factors), mode)
            got = _decompose.mttkrp_chunked(x, (weights, factors), mode, budget)
            torch.testing.assert_close(got, want)


def test_cp_decompose_restores_tensorly_mttkrp():
    before = type(tl.tenalg.current_backend()).__dict__["unfolding_dot_khatri_rao"]
    _decompose.cp_decompose(torch.randn(4, 3, 2, 2), 2, n_iter_max=3)
    assert type(tl.tenalg.current_backend()).__dict__["unfolding_dot_khatri_rao"] is before


def test_cp_decompose_uses_the_chunked_mttkrp(monkeypatch):
    calls = []
    real = _decompose.mttkrp_chunked
    monkeypatch.setattr(_decompose, "mttkrp_chunked", lambda *a: calls.append(a[2]) or real(*a))
    _decompose.cp_decompose(torch.randn(4, 3, 2, 2), 2, n_iter_max=2, tol=0)
    assert sorted(set(calls)) == [0, 1, 2, 3]


def test_balance_keeps_the_tensor_and_equalizes_norms():
    g = torch.Generator().manual_seed(1)
    factors = [torch.randn(s, 3, generator=g, dtype=torch.float64) * sc for s, sc in ((4, 10.0), (5, 0.1), (3, 1.0))]
    weights = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    out = _decompose.balance(weights, factors)
    with tl.backend_context("pytorch"):
        torch.testing.assert_close(tl.cp_to_tensor((None, out)), tl.cp_to_tensor((weights, factors)))
    norms = torch.stack([f.norm(dim=0) for f in out])
    torch.testing.assert_close(norms, norms[:1].expand_as(norms))


def test_svd_init_matches_tensorly_svd_init():
    from tensorly.decomposition._cp import initialize_cp

    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 5, 3, 3, generator=g, dtype=torch.float64)
    ours = _decompose.svd_init(x, 4)
    with tl.backend_context("pytorch"):
        ref = initialize_cp(x, 4, init="svd").factors
    for mode, (a, b) in enumerate(zip(ours, ref)):
        k = min(4, x.shape[mode])  # the rest are random columns in both
        # singular vectors are defined up to sign
        torch.testing.assert_close(a[:, :k].abs(), b[:, :k].abs(), atol=1e-8, rtol=1e-6)
