"""The training progress display: no ETA from the first (warm-up) step."""

from __future__ import annotations

import io

from mmclip.train import logging as run_logging
from mmclip.train.logging import ETA_AFTER_STEPS, ProgressDisplay


def test_the_eta_waits_for_timed_steps_and_leaves_out_the_first_one(monkeypatch) -> None:
    now = [0.0]
    monkeypatch.setattr(run_logging.time, "perf_counter", lambda: now[0])
    display = ProgressDisplay(total=1003, stream=io.StringIO(), tty=False)
    lines = []
    for step, seconds in ((1, 100.0), (2, 101.0), (3, 102.0), (4, 103.0)):  # 100 s, then 1 s
        now[0] = seconds
        lines.append(display.line(step, {"loss": 1.0}))
    assert ETA_AFTER_STEPS == 3
    assert all("ETA" not in line for line in lines[:3])  # before: 'ETA 27:51:40' at step 1
    assert lines[3].endswith("ETA 16:39")  # 999 steps left at 1 s each
