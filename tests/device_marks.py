"""Devices to parametrize over and the skip mark for GPU-only tests.

Kept out of ``conftest.py`` on purpose: pytest imports every ``conftest.py``
under the name ``conftest``, so ``from conftest import ...`` would pick up
whichever one (the top level or a sub-folder's) was imported first.
"""

import pytest
import torch

CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not CUDA, reason="no GPU visible")

DEVICES = ["cpu"] + (["cuda"] if CUDA else [])
