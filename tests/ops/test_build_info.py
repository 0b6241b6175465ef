"""The record of the torch the operators were built with, and the refusal of a mismatch."""

from __future__ import annotations

import json

import pytest
import torch

from mmclip.ops import _library
from mmclip.ops._library import build_mismatch


def _record(tmp_path, torch_version: str, cuda: str | None = None):
    path = tmp_path / "_build_info.json"
    path.write_text(json.dumps({"torch": torch_version, "cuda": cuda}), encoding="utf-8")
    return path


def test_a_matching_or_missing_record_is_accepted(tmp_path) -> None:
    assert build_mismatch(tmp_path / "absent.json", "2.13.0", None) is None
    assert build_mismatch(_record(tmp_path, "2.13.0"), "2.13.0", None) is None
    assert build_mismatch(_record(tmp_path, "2.13.0", "13.0"), "2.13.0", "13.0") is None


def test_another_torch_or_cuda_is_named_with_both_versions(tmp_path) -> None:
    message = build_mismatch(_record(tmp_path, "2.11.0"), "2.13.0", None)
    assert message == "mmclip._C was built against torch 2.11.0 but torch 2.13.0 is installed"
    message = build_mismatch(_record(tmp_path, "2.13.0", "12.8"), "2.13.0", "13.0")
    assert "CUDA 12.8" in message and "CUDA 13.0" in message


def test_an_unreadable_record_is_a_mismatch(tmp_path) -> None:
    path = tmp_path / "_build_info.json"
    path.write_text("{not json", encoding="utf-8")
    assert "unreadable" in build_mismatch(path, "2.13.0", None)


def test_a_mismatch_leaves_the_operators_off_with_one_warning_and_the_rebuild_command(
    tmp_path,
) -> None:
    path = _record(tmp_path, "1.0.0")
    with pytest.warns(RuntimeWarning) as caught:
        loaded, error = _library._load(path)
    assert len(caught) == 1 and not loaded
    assert f"torch 1.0.0 but torch {torch.__version__} is installed" in error
    assert "pip install --no-build-isolation" in error and error == str(caught[0].message)


def test_the_installed_build_recorded_the_running_torch() -> None:
    if not _library.has_ops():
        pytest.skip(f"the compiled operators are not loaded: {_library.load_error()}")
    if not _library.BUILD_INFO.is_file():
        pytest.fail(f"the build did not write {_library.BUILD_INFO}")
    info = json.loads(_library.BUILD_INFO.read_text(encoding="utf-8"))
    assert info["torch"] == torch.__version__
