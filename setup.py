"""Build of mmclip's compiled operator library, ``mmclip._C``.

The C++ operators are always built. CUDA kernels are added when CUDA is usable
(``torch.cuda.is_available()`` and a CUDA toolkit is found) or when
``MMCLIP_FORCE_CUDA=1`` (for example to build on a machine without a GPU);
``MMCLIP_FORCE_CUDA=0`` turns them off. ``TORCH_CUDA_ARCH_LIST`` chooses the GPU
architectures, as for any PyTorch extension. Install with
``pip install --no-build-isolation .`` once torch is installed.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:  # pragma: no cover - the message is the point
    sys.exit(
        "mmclip builds against the installed torch: install torch first "
        "(e.g. `pip install torch==2.13.0`), then `pip install --no-build-isolation .`"
    )

ROOT = os.path.dirname(os.path.abspath(__file__))


def _log(message: str) -> None:
    sys.stderr.write(f"mmclip build: {message}\n")


def _want_cuda() -> tuple[bool, str]:
    forced = os.environ.get("MMCLIP_FORCE_CUDA", "").strip()
    if forced == "1":
        if CUDA_HOME is None:
            sys.exit(
                "mmclip build: MMCLIP_FORCE_CUDA=1 but no CUDA toolkit was found (set CUDA_HOME)"
            )
        return True, f"MMCLIP_FORCE_CUDA=1 (toolkit at {CUDA_HOME})"
    if forced == "0":
        return False, "MMCLIP_FORCE_CUDA=0"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU build"
    if not torch.cuda.is_available():
        return (
            False,
            "no CUDA device is visible (set MMCLIP_FORCE_CUDA=1 to build the kernels anyway)",
        )
    if CUDA_HOME is None:
        return False, "no CUDA toolkit found (set CUDA_HOME)"
    return True, f"CUDA device visible, toolkit at {CUDA_HOME}"


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def _extension():
    cpu_sources = (
        _sources("csrc/*.cpp") + _sources("csrc/ops/*.cpp") + _sources("csrc/ops/cpu/*.cpp")
    )
    cxx_flags = ["-O3", "-std=c++17", "-fdiagnostics-color=always"]
    if torch.backends.openmp.is_available() and sys.platform != "win32":
        cxx_flags.append("-fopenmp")  # at::parallel_for is OpenMP in torch's own build
    use_cuda, why = _want_cuda()
    if not use_cuda:
        _log(f"building the C++ CPU operators only: {why}")
        return CppExtension("mmclip._C", cpu_sources, extra_compile_args={"cxx": cxx_flags})
    cuda_sources = _sources("csrc/ops/cuda/*.cu") + _sources("csrc/ops/cuda/*.cpp")
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "(torch default: the visible GPUs)")
    _log(f"building C++ CPU and CUDA operators: {why}; TORCH_CUDA_ARCH_LIST={arch}")
    nvcc_flags = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-lineinfo"]
    return CUDAExtension(
        "mmclip._C",
        cpu_sources + cuda_sources,
        define_macros=[("MMCLIP_WITH_CUDA", "1")],
        extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags},
    )


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
