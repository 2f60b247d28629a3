"""The solver on a GPU equals the CPU solver (skipped when no GPU is visible)."""
import numpy as np
import pytest
import torch

from leanconv.wave import Sponge, WaveSolver, generate, DatasetConfig, reference_rollout
from wave_backends import kernel_available

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU visible")
BACKENDS = ["torch", pytest.param("kernel", marks=pytest.mark.skipif(not kernel_available("cuda"), reason="no CUDA kernel"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("boundary,sponge,spacing", [("neumann", None, None), ("absorbing", Sponge(3), None),
                                                      ("dirichlet,absorbing,neumann,neumann", None, (0.04, 0.06))])
def test_gpu_run_matches_cpu(backend, boundary, sponge, spacing):
    rng = np.random.default_rng(0)
    c = torch.tensor(1.0 + rng.random((4, 21, 25)))
    u0 = torch.tensor(rng.standard_normal((4, 21, 25)))
    cpu = WaveSolver(c, boundary=boundary, sponge=sponge, spacing=spacing, backend="torch", dtype=torch.float64)
    gpu = WaveSolver(c, boundary=boundary, sponge=sponge, spacing=spacing, backend=backend, dtype=torch.float64,
                     device="cuda")
    assert gpu.backend == backend
    g = cpu.point_load([[0.3 * cpu.grid.lx, 0.4 * cpu.grid.ly]])[:, 0]
    a = cpu.run(u0, steps=120, every=6, source=lambda t: np.sin(15 * t) * g)
    b = gpu.run(u0.cuda(), steps=120, every=6, source=lambda t: np.sin(15 * t) * g.cuda())
    assert b.device.type == "cuda"
    torch.testing.assert_close(b.cpu(), a, rtol=1e-11, atol=1e-11 * a.abs().max().item())
    E = gpu.energy(b[:, -2], b[:, -1], interval=6)
    assert E.device.type == "cuda" and E.shape == (4,)


@pytest.mark.parametrize("boundary,sponge", [("neumann", None), ("absorbing", Sponge(3)), ("dirichlet,absorbing,neumann,neumann", None)])
def test_gpu_fd4_matches_cpu(boundary, sponge):
    """fd4 on a GPU (torch ops: no fused CUDA kernel for it yet) against the CPU's fused kernel."""
    rng = np.random.default_rng(1)
    c = torch.tensor(1.0 + rng.random((3, 19, 23)))
    u0 = torch.tensor(rng.standard_normal((3, 19, 23)))
    kw = dict(boundary=boundary, sponge=sponge, dtype=torch.float64, scheme="fd4")
    cpu, gpu = WaveSolver(c, **kw), WaveSolver(c, device="cuda", **kw)
    assert gpu.backend == "torch"
    g = cpu.point_load([[0.3 * cpu.grid.lx, 0.4 * cpu.grid.ly]])[:, 0]
    a = cpu.run(u0, steps=60, every=6, source=lambda t: np.sin(15 * t) * g)
    b = gpu.run(u0.cuda(), steps=60, every=6, source=lambda t: np.sin(15 * t) * g.cuda())
    torch.testing.assert_close(b.cpu(), a, rtol=1e-11, atol=1e-11 * a.abs().max().item())
    E = gpu.energy(b[:, -2], b[:, -1])  # snapshots 6 steps apart: the call runs, on the GPU
    assert E.device.type == "cuda" and E.shape == (3,)


def test_gpu_data_set_and_rollout():
    cfg = DatasetConfig(grid=16, steps=30, every=3, shard_size=4)
    cpu, gpu = generate(cfg, 6, seed=2), generate(cfg, 6, seed=2, device="cuda")
    np.testing.assert_allclose(gpu.arrays()[0], cpu.arrays()[0], rtol=0, atol=1e-5)
    fr, ve = cpu.arrays()
    out = reference_rollout(cpu, torch.from_numpy(ve).cuda(), torch.from_numpy(fr[:, 1]).cuda(),
                            torch.from_numpy(fr[:, 2]).cuda(), 5)
    assert out.device.type == "cuda"
    np.testing.assert_allclose(out.cpu().numpy(), fr[:, 3:8], rtol=0, atol=1e-5 * np.abs(fr).max())
