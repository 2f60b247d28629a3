"""Build information: what was compiled and what this machine offers."""
from __future__ import annotations

import os
from typing import Any

import torch

from . import _ext
from ._version import __version__


def build_info() -> dict[str, Any]:
    """Describe this leanconv build and the machine it runs on.

    Returns a dict with the leanconv and torch versions, the compiled backends
    (``"cpu"`` always, ``"cuda"`` with its arch list when the CUDA kernels were
    compiled), the CPU instruction-set variants compiled and the one in use,
    the thread count and whether a GPU is visible.  Raises
    :class:`leanconv.ExtensionUnavailableError` when ``leanconv._C`` is missing.
    """
    try:
        info = _ext.load().compiled_info()
    except ValueError as exc:  # the kernels refuse LEANCONV_CPU_ISA
        value = os.environ.get("LEANCONV_CPU_ISA")
        if value is None:
            raise
        raise ValueError(f"environment variable LEANCONV_CPU_ISA={value!r} is not an instruction set leanconv "
                         "knows: use one of generic, avx2, avx512, or unset it") from exc
    backends = ["cpu"] + (["cuda"] if info["cuda"] else [])
    return {
        "leanconv_version": __version__,
        "torch_version": torch.__version__,
        "torch_built_against": info["torch_version"],
        "torch_cuda": torch.version.cuda,
        "backends": backends,
        "cuda_archs": list(info["cuda_archs"]),
        "cpu_isas_compiled": list(info["cpu_isas"]),
        "cpu_isa": info["cpu_isa_selected"],
        "num_threads": torch.get_num_threads(),
        "gpu_visible": torch.cuda.is_available(),
        "gpu_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "compiler": info["compiler"],
        "cpu_isa_override": os.environ.get("LEANCONV_CPU_ISA"),
    }


def format_build_info(info: dict[str, Any] | None = None) -> str:
    """``build_info()`` as aligned ``key: value`` lines."""
    info = build_info() if info is None else info
    width = max(len(k) for k in info)
    lines = []
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        lines.append(f"{key.ljust(width)}  {value}")
    return "\n".join(lines)
