import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, max_examples=25, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "default")

torch.manual_seed(0)

# The drop-in modules default to backend="auto" (the faster of leanconv's kernel and PyTorch's
# per call signature).  The tests are about leanconv's kernels: run them through the modules
# too; tests/test_backend_choice.py tests the choice itself.
os.environ.setdefault("LEANCONV_BACKEND", "leanconv")

# The references (F.conv2d/conv3d, matmul) must be plain float32 on GPUs too:
# PyTorch lets cuDNN use TF32 for float32 convolutions by default (10-bit
# mantissa), which put the CUDA references off by ~1e-3 relative on an H200.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
