"""The build: what build_info() reports matches what was compiled and registered."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

import leanconv

OPS = [
    "depthwise_conv",
    "depthwise_conv_backward_input",
    "depthwise_conv_backward_weight",
    "one_way_conv",
    "one_way_conv_backward",
    "wave_step_",
]


def has_kernel(op: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"leanconv::{op}", key)


def test_build_info_fields():
    info = leanconv.build_info()
    assert info["leanconv_version"] == leanconv.__version__
    assert info["torch_version"] == torch.__version__
    assert "cpu" in info["backends"]
    assert info["cpu_isa"] in info["cpu_isas_compiled"]
    assert info["num_threads"] == torch.get_num_threads()
    assert info["gpu_visible"] == torch.cuda.is_available()


def test_torch_matches_build():
    # An extension built against another torch fails in odd ways: catch it here.
    assert leanconv.build_info()["torch_built_against"] == torch.__version__


@pytest.mark.parametrize("op", OPS)
def test_cpu_kernels_registered(op):
    assert has_kernel(op, "CPU")


@pytest.mark.parametrize("op", OPS)
def test_cuda_kernels_registered_iff_cuda_compiled(op):
    compiled = "cuda" in leanconv.build_info()["backends"]
    assert has_kernel(op, "CUDA") == compiled


def test_cuda_compiled_when_toolkit_and_cuda_torch_present():
    """The AUTO rule: a CUDA torch plus nvcc gives a CUDA build, for sm_90 at least."""
    info = leanconv.build_info()
    wanted = os.environ.get("LEANCONV_CUDA", "AUTO").upper()
    if wanted == "OFF" or torch.version.cuda is None or shutil.which("nvcc") is None:
        assert "cuda" not in info["backends"] or wanted == "ON"
        return
    assert "cuda" in info["backends"]
    assert any(a.startswith("9.0") for a in info["cuda_archs"]), info["cuda_archs"]


def test_cpu_isa_respects_override():
    code = "import leanconv; print(leanconv.build_info()['cpu_isa'])"
    env = dict(os.environ, LEANCONV_CPU_ISA="avx2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    compiled = leanconv.build_info()["cpu_isas_compiled"]
    assert out.stdout.strip() == ("avx2" if "avx2" in compiled else "generic")


def test_cli_info_prints_backends():
    out = subprocess.run(
        [sys.executable, "-m", "leanconv", "info", "--json"], capture_output=True, text=True, check=True
    )
    import json

    info = json.loads(out.stdout)
    assert info["backends"] == leanconv.build_info()["backends"]


def test_missing_extension_gives_actionable_error():
    code = (
        "import sys; sys.modules['leanconv._C'] = None\n"
        "import torch, leanconv\n"
        "try:\n"
        "    leanconv.ops.depthwise_conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3))\n"
        "except leanconv.ExtensionUnavailableError as e:\n"
        "    print('OK', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK")
    assert "make dev" in out.stdout and "no-build-isolation" in out.stdout


def test_cpp_error_with_numbers_raises_instead_of_crashing():
    # A module linked against a private copy of libstdc++ (a GCC that finds
    # only libstdc++.a) crashed when a C++ check formatted a tensor's sizes
    # into its message: run it in a child so that a crash fails this test only.
    code = (
        "import torch, leanconv\n"
        "try:\n"
        "    torch.ops.leanconv.depthwise_conv(torch.randn(1, 4, 8, 8), torch.randn(4, 2, 3, 3), None,"
        " [1, 1], [1, 1], [1, 1])\n"
        "except RuntimeError as e:\n"
        "    print('raised:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert "raised:" in out.stdout and "got [4, 2, 3, 3]" in out.stdout, out.stdout


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("readelf") is None, reason="needs Linux and readelf"
)
def test_extension_links_the_shared_cpp_runtime():
    from leanconv import _C

    dynamic = subprocess.run(["readelf", "-d", _C.__file__], capture_output=True, text=True, check=True).stdout
    if "libc++.so" in dynamic:
        pytest.skip("built against LLVM's libc++")
    assert "libstdc++.so.6" in dynamic, "the extension carries a static copy of libstdc++:\n" + dynamic
