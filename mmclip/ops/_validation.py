"""Argument checks shared by the operator wrappers.

Every check raises ``ValueError`` (or ``TypeError`` for a non-tensor) with a message
that names the argument, before any kernel touches memory. Checks that need tensor
values (index ranges) run on CPU tensors only; on CUDA the kernels guard every read
and write themselves so that a bad index never corrupts memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = [
    "check_device",
    "check_dtype",
    "check_index_range",
    "check_ratio",
    "check_shape",
    "check_tensor",
]

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def check_tensor(name: str, value: object, ndim: int) -> Tensor:
    """Require a tensor of rank ``ndim``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}")
    return value


def check_dtype(name: str, value: Tensor, allowed: Iterable[torch.dtype]) -> None:
    """Require ``value.dtype`` to be one of ``allowed``."""
    allowed = tuple(allowed)
    if value.dtype not in allowed:
        names = ", ".join(str(d).removeprefix("torch.") for d in allowed)
        raise ValueError(
            f"{name} must have dtype {names}; got {str(value.dtype).removeprefix('torch.')}"
        )


def check_device(reference_name: str, reference: Tensor, **others: Tensor) -> None:
    """Require every tensor of ``others`` on the device of ``reference``."""
    for name, value in others.items():
        if value.device != reference.device:
            raise ValueError(
                f"{name} is on {value.device} but {reference_name} is on {reference.device}; "
                "all inputs must be on one device"
            )


def check_shape(name: str, value: Tensor, expected: tuple[int, ...], why: str) -> None:
    """Require ``value.shape == expected``; ``why`` says where the sizes come from."""
    if tuple(value.shape) != tuple(expected):
        raise ValueError(
            f"{name} must have shape {tuple(expected)} ({why}); got {tuple(value.shape)}"
        )


def check_ratio(name: str, value: float) -> float:
    """Require a finite number in [0, 1]."""
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1]; got {value}")
    return value


def check_index_range(name: str, idx: Tensor, upper: int) -> None:
    """Require ``0 <= idx < upper`` (CPU tensors only; a no-op on other devices)."""
    if idx.device.type != "cpu" or idx.numel() == 0:
        return
    low, high = int(idx.min()), int(idx.max())
    if low < 0 or high >= upper:
        raise ValueError(f"{name} must index into [0, {upper}); found values in [{low}, {high}]")
