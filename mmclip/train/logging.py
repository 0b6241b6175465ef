"""Run logging: JSONL metrics, TensorBoard, a progress display and model-FLOPs utilisation.

Only rank 0 logs. :class:`MetricsLogger` appends one JSON object per optimiser step to
``<out_dir>/metrics.jsonl`` (a resumed run appends; the last line of a step wins), writes
TensorBoard scalars when ``tensorboard`` is installed, and shows progress: a one-line bar with
loss, pairs/s and ETA on a terminal, plain ``logging`` lines every ``log_every`` steps
otherwise.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..models.config import LOSS_TERMS

__all__ = [
    "ETA_AFTER_STEPS",
    "MetricsLogger",
    "ProgressDisplay",
    "estimate_step_flops",
    "peak_flops",
    "read_metrics",
]

logger = logging.getLogger(__name__)

# Dense bf16 tensor-core peaks (FLOP/s) by device-name fragment; MMCLIP_PEAK_TFLOPS overrides.
_PEAK_BF16: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),
    ("H100", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A10", 125e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),
    ("T4", 65e12),
)


def peak_flops(device: torch.device) -> float | None:
    """Peak bf16 FLOP/s of a CUDA device (``None`` when unknown or not CUDA)."""
    env = os.environ.get("MMCLIP_PEAK_TFLOPS")
    if env:
        return float(env) * 1e12
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, value in _PEAK_BF16:
        if fragment in name:
            return value
    return None


def estimate_step_flops(run_step: Any) -> float | None:
    """FLOPs of one call of ``run_step()`` (forward + backward), counted by PyTorch.

    Uses ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and attention; the custom
    operators are not counted, so the estimate is a slight under-count).
    """
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover
        return None
    counter = FlopCounterMode(display=False)
    with counter:
        run_step()
    return float(counter.get_total_flops())


def _format_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


ETA_AFTER_STEPS = 3
"""Steps timed after the first one (which holds the warm-up: first batches, lazy set-up)
before the progress shows an ETA: an ETA from the first step alone can be hours off."""


class ProgressDisplay:
    """A one-line progress bar (terminal) or periodic log lines (files, CI).

    The ETA is the time per step since the end of the first step, shown once
    :data:`ETA_AFTER_STEPS` steps have been timed that way.

    Args:
        total: the last step.
        start: the first step of this process (after a resume).
        log_every: steps between log lines when not on a terminal.
        stream: where the bar goes (default ``sys.stderr``); ``tty`` forces the mode.
    """

    def __init__(
        self,
        total: int,
        start: int = 0,
        log_every: int = 10,
        stream: Any = None,
        tty: bool | None = None,
    ) -> None:
        self.total, self.start, self.log_every = total, start, max(1, log_every)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(tty if tty is not None else getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self._first: tuple[int, float] | None = None  # (step, time) when the first step ended

    def _mark(self, step: int) -> None:
        if self._first is None:
            self._first = (step, time.perf_counter())

    def line(self, step: int, metrics: Mapping[str, Any]) -> str:
        """``step 12/300 | loss 3.21 | 118 pairs/s | ETA 1:02`` (no ETA for the first steps)."""
        self._mark(step)
        assert self._first is not None
        timed = step - self._first[0]
        parts = [f"step {step}/{self.total}", f"loss {metrics.get('loss', math.nan):.4f}"]
        for key in LOSS_TERMS:
            if metrics.get(key) is not None:
                parts.append(f"{key} {metrics[key]:.3f}")
        if metrics.get("pairs_per_s"):
            parts.append(f"{metrics['pairs_per_s']:.0f} pairs/s")
        if metrics.get("mfu") is not None:
            parts.append(f"MFU {100 * metrics['mfu']:.1f}%")
        if timed >= ETA_AFTER_STEPS:
            eta = (time.perf_counter() - self._first[1]) / timed * (self.total - step)
            parts.append(f"ETA {_format_time(eta)}")
        return " | ".join(parts)

    def update(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Show step ``step`` (1-based count of steps done)."""
        self._mark(step)
        if self.tty:
            width = 24
            frac = step / max(1, self.total)
            bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
            self.stream.write(f"\r[{bar}] {self.line(step, metrics)}\x1b[K")
            if step >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif step % self.log_every == 0 or step >= self.total or step == self.start + 1:
            logger.info("%s", self.line(step, metrics))

    def close(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class MetricsLogger:
    """JSONL + TensorBoard + progress for rank 0 (every method is a no-op on other ranks).

    Args:
        out_dir: the run directory.
        total_steps, start_step: for the progress display.
        enabled: False on ranks other than 0.
        tensorboard: write ``<out_dir>/tensorboard`` events when the package is installed.
        log_every: TensorBoard and log-line interval.
    """

    def __init__(
        self,
        out_dir: str | Path,
        total_steps: int,
        start_step: int = 0,
        enabled: bool = True,
        tensorboard: bool = True,
        log_every: int = 10,
        tty: bool | None = None,
    ) -> None:
        self.enabled = enabled
        self.log_every = max(1, log_every)
        self.path = Path(out_dir) / "metrics.jsonl"
        self._file = None
        self._tb = None
        self.progress = ProgressDisplay(total_steps, start_step, log_every, tty=tty)
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.info("tensorboard is not installed: metrics go to %s only", self.path)
            else:
                self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=start_step)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Record the metrics of optimiser step ``step`` (1-based: steps done)."""
        if not self.enabled or self._file is None:
            return
        record = {"step": step, **{k: v for k, v in metrics.items() if v is not None}}
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        if self._tb is not None and (step % self.log_every == 0 or step == 1):
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"train/{key}", value, step)
        self.progress.update(step, metrics)

    def close(self) -> None:
        """Flush and close the files."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(path: str | Path) -> dict[int, dict[str, Any]]:
    """``metrics.jsonl`` → ``{step: record}`` (for a step logged twice, the last record)."""
    out: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                out[int(record["step"])] = record
    return out
