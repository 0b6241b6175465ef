"""Benchmark set-up: devices and sizes (run with `pytest bench`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

CPU_SIZES = {"B": 64, "T": 128, "P": 196, "D": 768, "L": 128, "spans": 8}
CUDA_SIZES = {"B": 256, "T": 128, "P": 196, "D": 768, "L": 128, "spans": 8}

BENCH_DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


@pytest.fixture(params=BENCH_DEVICES)
def bench_device(request) -> str:
    return request.param


def sizes_for(device: str) -> dict[str, int]:
    return CUDA_SIZES if device == "cuda" else CPU_SIZES


def dtype_for(device: str) -> torch.dtype:
    """bf16 on CUDA (the training precision), fp32 on CPU."""
    return torch.bfloat16 if device == "cuda" else torch.float32


def run_timed(benchmark, device: str, fn, *args, rounds: int = 30):
    """pytest-benchmark pedantic run with CUDA synchronisation around each call."""

    def call():
        out = fn(*args)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    call()  # warm-up (allocations, lazy init)
    return benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=2)


# ---------------------------------------------------------------- recorded figures
RECORDED = Path(__file__).with_name("recorded.json")
"""Medians recorded in docs/benchmarks.md, by benchmark (test id), for the comparison that
``pytest bench`` prints at the end: ``{test id: {"median_ms": …, "section": …}}``."""

_COMPARISONS: list[tuple[str, float, float]] = []


def recorded_medians() -> dict[str, dict]:
    """The figures of :data:`RECORDED` (empty when the file is absent)."""
    if not RECORDED.is_file():
        return {}
    return json.loads(RECORDED.read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _compare_with_recorded(request):
    """After each benchmark: its median beside the one recorded in docs/benchmarks.md."""
    yield
    benchmark = request.node.funcargs.get("benchmark")
    recorded = recorded_medians().get(request.node.name)
    if benchmark is None or recorded is None or benchmark.stats is None:
        return
    median_ms = 1000.0 * benchmark.stats.stats.median
    _COMPARISONS.append((request.node.name, median_ms, float(recorded["median_ms"])))


def pytest_terminal_summary(terminalreporter) -> None:
    """A table: benchmark | median now | recorded | now / recorded."""
    if not _COMPARISONS:
        return
    terminalreporter.section("against docs/benchmarks.md")
    for name, now, then in _COMPARISONS:
        terminalreporter.write_line(
            f"{name}: {now:.3f} ms now, {then:.3f} ms recorded ({now / then:.2f}x)"
        )
