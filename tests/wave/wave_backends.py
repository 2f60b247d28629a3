"""Which step implementations of the wave solver this build offers (imported by the wave tests)."""
import pytest
import torch

from leanconv import _ext


def kernel_available(device: str = "cpu") -> bool:
    if not _ext.available():
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}[device]
    return torch._C._dispatch_has_kernel_for_dispatch_key("leanconv::wave_step_", key)


# the solver's two step implementations; tests that compare against a reference run on both
BACKENDS = ["torch", pytest.param("kernel", marks=pytest.mark.skipif(not kernel_available(), reason="leanconv._C not built"))]
