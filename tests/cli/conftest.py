"""Every CLI test runs ``mmclip.cli.main`` in-process: each one undoes its logging set-up."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _cli_logging(_restore_logging):
    yield
