"""Progress bars: drawn on a terminal at INFO, quiet under -q, in pipes and when forced off."""

from __future__ import annotations

import io
import logging

from mmclip import progress as progress_module
from mmclip.progress import progress, progress_enabled


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_follow_the_terminal_and_the_log_level(monkeypatch) -> None:
    monkeypatch.delenv("MMCLIP_PROGRESS", raising=False)
    logger = logging.getLogger("mmclip")
    level = logger.level  # restored at the end
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(progress_module.sys, "stderr", _Terminal())
    assert progress_enabled()
    logger.setLevel(logging.WARNING)  # -q
    assert not progress_enabled()
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(progress_module.sys, "stderr", io.StringIO())  # a pipe
    assert not progress_enabled()
    monkeypatch.setenv("MMCLIP_PROGRESS", "1")
    assert progress_enabled()
    logger.setLevel(level)


def test_progress_yields_every_item_and_draws_only_when_enabled(monkeypatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(progress_module.sys, "stderr", terminal)
    monkeypatch.setenv("MMCLIP_PROGRESS", "0")
    assert list(progress(range(5), desc="x")) == [0, 1, 2, 3, 4]
    assert terminal.getvalue() == ""
    monkeypatch.setenv("MMCLIP_PROGRESS", "1")
    assert list(progress(iter(range(3)), total=3, desc="encoding")) == [0, 1, 2]
    assert "encoding" in terminal.getvalue()
