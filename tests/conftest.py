"""Shared test set-up: devices, hypothesis profiles, the shared data folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MMCLIP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

settings.register_profile(
    "default",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each test taking ``device`` runs on the CPU and, when present, on CUDA."""
    return torch.device(request.param)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; the test skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def _restore_logging():
    """Undo the root handler that ``mmclip.cli.main`` installs on the (captured) stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True, scope="session")
def _isolated_mmclip_home(tmp_path_factory) -> None:
    """Every test registers models in a temporary MMCLIP_HOME, never in ~/.cache/mmclip."""
    os.environ["MMCLIP_HOME"] = str(tmp_path_factory.mktemp("mmclip-home"))
