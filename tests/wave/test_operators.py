"""The fast path equals the scikit-fem assembly (operators and whole trajectories) to round-off."""
import numpy as np
import pytest
import torch

from leanconv.wave import Sponge, WaveSolver
from leanconv.wave.reference import ReferenceSolver, assemble
from wave_backends import BACKENDS

BOUNDARIES = ["neumann", "dirichlet", "absorbing", "absorbing,neumann,dirichlet,absorbing"]
GRIDS = [((9, 9), None), ((7, 11), (0.1, 0.05)), ((12, 8), (0.03, 0.07))]


def velocity(shape, seed=0, batch=None):
    rng = np.random.default_rng(seed)
    return 1.0 + rng.random(shape if batch is None else (batch, *shape))


@pytest.mark.parametrize("shape,spacing", GRIDS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_operators_match_scikit_fem(shape, spacing, boundary):
    c = velocity(shape)
    solver = WaveSolver(torch.tensor(c), spacing=spacing, boundary=boundary, dtype=torch.float64)
    ref = assemble(c, solver.grid, boundary)
    u = np.random.default_rng(1).standard_normal(shape)
    Ku = solver.stiffness(torch.tensor(u))[0].numpy().ravel()
    np.testing.assert_allclose(Ku, ref.stiffness @ u.ravel(), rtol=0, atol=1e-13 * np.abs(Ku).max())
    np.testing.assert_allclose(solver.mass[0].numpy().ravel(), ref.mass, rtol=1e-13)
    np.testing.assert_allclose(solver.damping[0].numpy().ravel(), ref.damping, rtol=1e-13,
                               atol=1e-14 * max(ref.damping.max(), 1.0))
    if "absorbing" in boundary:
        assert ref.damping.max() > 0  # the comparison above is not vacuous
    np.testing.assert_array_equal(solver.dirichlet.numpy().ravel(), ref.dirichlet)


def test_mass_uses_heterogeneous_velocity():
    # a constant-velocity lumped mass is h^2 / c^2 inside; a varying c must change it node by node
    c = velocity((9, 9))
    m = WaveSolver(torch.tensor(c), dtype=torch.float64).mass[0].numpy()
    m_const = WaveSolver(torch.ones(9, 9, dtype=torch.float64), dtype=torch.float64).mass[0].numpy()
    assert np.abs(m / m_const - 1).max() > 0.1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "boundary,sponge,spacing",
    [
        ("neumann", None, None),
        ("absorbing", Sponge(4), None),
        ("dirichlet", None, (0.05, 0.03)),
        ("absorbing,neumann,dirichlet,absorbing", Sponge(3, 5.0), (0.04, 0.06)),
    ],
)
def test_trajectories_match_sparse_reference(boundary, sponge, spacing, backend):
    B, H, W = 3, 17, 21
    rng = np.random.default_rng(2)
    c = velocity((H, W), seed=3, batch=B)
    u0, v0 = rng.standard_normal((B, H, W)), rng.standard_normal((B, H, W))
    fast = WaveSolver(torch.tensor(c), spacing=spacing, boundary=boundary, sponge=sponge,
                      dtype=torch.float64, courant=0.9, backend=backend)
    assert fast.backend == backend
    ref = ReferenceSolver(c, spacing=spacing, boundary=boundary, sponge=sponge, dt=fast.dt)
    g = fast.point_load([[0.3 * fast.grid.lx, 0.55 * fast.grid.ly]])[:, 0]
    a = fast.run(torch.tensor(u0), torch.tensor(v0), steps=150, every=7, source=lambda t: np.sin(20 * t) * g).numpy()
    b = ref.run(u0, v0, steps=150, every=7, source=lambda t: np.sin(20 * t) * g.numpy())
    assert a.shape == b.shape == (B, 150 // 7 + 1, H, W)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())
    # energies agree as well (same definition, two implementations)
    a1 = fast.run(torch.tensor(u0), torch.tensor(v0), steps=30)
    np.testing.assert_allclose(fast.energy(a1[:, -2], a1[:, -1]).numpy(),
                               ref.energy(a1[:, -2].numpy(), a1[:, -1].numpy()), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunking_and_threads_do_not_change_results(backend):
    B, n = 5, 20
    c = torch.tensor(velocity((n, n), seed=4, batch=B), dtype=torch.float32)
    s = WaveSolver(c, boundary="absorbing", backend=backend)
    u0 = torch.randn(B, n, n, generator=torch.Generator().manual_seed(0))
    whole = s.run(u0, steps=40, every=4, chunk=B)
    for chunk in (1, 2, 3):
        assert torch.equal(s.run(u0, steps=40, every=4, chunk=chunk), whole)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_close_to_float64(backend):
    n = 33
    c = velocity((n, n), seed=5)
    u0 = np.exp(-((np.arange(n)[None] - 16.0) ** 2 + (np.arange(n)[:, None] - 12.0) ** 2) / 8.0)
    a = WaveSolver(torch.tensor(c), dtype=torch.float64, backend=backend).run(torch.tensor(u0), steps=200, every=200)
    b = WaveSolver(torch.tensor(c), dtype=torch.float32, backend=backend).run(torch.tensor(u0), steps=200, every=200)
    assert b.dtype == torch.float32
    assert (a - b.double()).abs().max() < 1e-5 * a.abs().max()


def test_point_load_matches_scikit_fem_probes():
    from skfem import Basis, ElementQuad1, MeshQuad

    n = 10
    c = velocity((n + 1, n + 1), seed=6)
    s = WaveSolver(torch.tensor(c), dtype=torch.float64)
    pts = np.array([[0.33, 0.71], [0.5, 0.5], [0.91, 0.05]])
    load = s.point_load(pts)[0].numpy()  # (S, H, W)
    x = np.linspace(0, 1, n + 1)
    mesh = MeshQuad.init_tensor(x, x)
    basis = Basis(mesh, ElementQuad1())
    P = basis.probes(pts.T).toarray()  # (S, dofs): phi_i(x_s)
    ix = np.rint(mesh.p[0] * n).astype(int)
    iy = np.rint(mesh.p[1] * n).astype(int)
    node_to_grid = iy * (n + 1) + ix
    phi = np.zeros((3, (n + 1) ** 2))
    phi[:, node_to_grid] = P[:, basis.nodal_dofs[0]]
    m_at = phi @ (c.ravel() ** -2)
    np.testing.assert_allclose(load.reshape(3, -1), phi * m_at[:, None], atol=1e-14)


def test_kernel_and_torch_backends_agree_on_a_data_set_like_run():
    import pytest as _pytest
    from wave_backends import kernel_available

    if not kernel_available():
        _pytest.skip("leanconv._C not built")
    B, n = 8, 33
    c = torch.tensor(velocity((n, n), seed=9, batch=B), dtype=torch.float32)
    u0 = torch.randn(B, n, n, generator=torch.Generator().manual_seed(2))
    a = WaveSolver(c, backend="torch").run(u0, steps=300, every=10)
    b = WaveSolver(c, backend="kernel").run(u0, steps=300, every=10)
    assert (a - b).abs().max() < 1e-4 * a.abs().max()
