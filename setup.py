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
import json
import os
import sys
import sysconfig

from setuptools import setup

REBUILD = "pip install --no-build-isolation ."


def _target_torch_version() -> str | None:
    """The torch installed in the environment being installed into (None when absent).

    In pip's isolated build, ``sys.path`` holds the build environment only; the target
    environment's site-packages are still named by ``sysconfig`` (same interpreter).
    """
    from importlib import metadata

    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    for dist in metadata.distributions(path=paths):
        if (dist.metadata["Name"] or "").lower() == "torch":
            return dist.version
    return None


def _stop(message: str) -> None:
    sys.exit(f"mmclip build: {message}")


try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:  # pragma: no cover - the message is the point
    target = _target_torch_version()
    if target is None:
        _stop(
            "mmclip builds its operators against the installed torch, and none is installed: "
            f"install torch first (e.g. `pip install torch==2.13.0`), then `{REBUILD}`"
        )
    _stop(
        f"this is an isolated build (pip's default), which cannot see the torch {target} "
        "of the environment you install into, and operators built against another torch "
        f"would not load. Build against that torch instead: `{REBUILD}`"
    )

def same_torch(installed: str, running: str) -> bool:
    """Whether two torch version strings name one build: the local part (``+cu130``) is
    compared only when both carry one (some images record ``2.11.0`` for ``2.11.0+cu130``)."""
    if "+" in installed and "+" in running:
        return installed == running
    return installed.split("+")[0] == running.split("+")[0]


_TARGET = _target_torch_version()
if _TARGET is not None and not same_torch(_TARGET, torch.__version__):
    _stop(
        f"this build sees torch {torch.__version__} (an isolated build environment?) but "
        f"the environment you install into has torch {_TARGET}; operators built against "
        f"one do not load in the other. Build against the installed torch: `{REBUILD}`"
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
    # No -std: torch.utils.cpp_extension adds the C++ standard its headers need.
    cxx_flags = ["-O3", "-fdiagnostics-color=always"]
    if torch.backends.openmp.is_available() and sys.platform != "win32":
        cxx_flags.append("-fopenmp")  # at::parallel_for is OpenMP in torch's own build
    use_cuda, why = _want_cuda()
    if not use_cuda:
        _log(f"building the C++ CPU operators only: {why}")
        return CppExtension("mmclip._C", cpu_sources, extra_compile_args={"cxx": cxx_flags})
    cuda_sources = _sources("csrc/ops/cuda/*.cu") + _sources("csrc/ops/cuda/*.cpp")
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "(torch default: the visible GPUs)")
    _log(f"building C++ CPU and CUDA operators: {why}; TORCH_CUDA_ARCH_LIST={arch}")
    nvcc_flags = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]
    return CUDAExtension(
        "mmclip._C",
        cpu_sources + cuda_sources,
        define_macros=[("MMCLIP_WITH_CUDA", "1")],
        extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags},
    )


class BuildWithInfo(BuildExtension.with_options(use_ninja=True)):  # type: ignore[misc]
    """build_ext that records, beside ``mmclip._C``, the torch (and CUDA) it was built with.

    ``mmclip.ops`` reads ``_build_info.json`` at import and refuses a library built for
    another torch (``has_ops()`` False, one warning, ``load_error()`` says how to rebuild).
    """

    def run(self) -> None:
        super().run()
        for ext in self.extensions:
            target = os.path.join(
                os.path.dirname(self.get_ext_fullpath(ext.name)), "_build_info.json"
            )
            cuda = any(src.endswith(".cu") for src in ext.sources)
            info = {
                "torch": torch.__version__,
                "cuda": torch.version.cuda if cuda else None,
                "cuda_kernels": cuda,
            }
            with open(target, "w", encoding="utf-8") as handle:
                json.dump(info, handle, indent=2)
            _log(f"recorded the build's torch {info['torch']} in {target}")


setup(ext_modules=[_extension()], cmdclass={"build_ext": BuildWithInfo})
