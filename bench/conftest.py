"""Benchmark set-up: devices and sizes (run with `pytest bench`)."""

from __future__ import annotations

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
