"""The CMake package config: build and install the op library, link a C++ consumer."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch

from .conftest import REPO_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed"),
    pytest.mark.skipif(
        os.environ.get("MMCLIP_SKIP_CMAKE_TEST") == "1", reason="MMCLIP_SKIP_CMAKE_TEST=1"
    ),
]


def _run(*args: str, cwd=None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_cpp_program_links_the_installed_library(tmp_path):
    prefix = tmp_path / "prefix"
    torch_prefix = torch.utils.cmake_prefix_path
    jobs = str(max(1, os.cpu_count() or 1))
    build = tmp_path / "build"
    _run(
        "cmake",
        "-S",
        str(REPO_ROOT),
        "-B",
        str(build),
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_PREFIX_PATH={torch_prefix}",
    )
    _run("cmake", "--build", str(build), "-j", jobs)
    _run("cmake", "--install", str(build), "--prefix", str(prefix))
    assert (prefix / "include" / "mmclip" / "ops.h").is_file()
    consumer = tmp_path / "consumer"
    _run(
        "cmake",
        "-S",
        str(REPO_ROOT / "examples" / "cpp_consumer"),
        "-B",
        str(consumer),
        f"-DCMAKE_PREFIX_PATH={prefix};{torch_prefix}",
    )
    _run("cmake", "--build", str(consumer), "-j", jobs)
    output = _run(str(consumer / "consumer"))
    assert output.startswith("ok masked=8"), output
