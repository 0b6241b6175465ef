"""Argument checks shared by the operator wrappers.

Every check raises ``ValueError`` (or ``TypeError`` for a non-tensor) with a message
that names the argument, before any kernel touches memory. Checks that need tensor
values (index ranges, distinct indices, finite non-negative weights, span bounds) run
on every device with data, so a bad value is the same error on CPU and CUDA (on CUDA
each such check reads one small result back to the host, a synchronisation). Tensors
on the ``meta`` device hold no values and are not value-checked. The CUDA kernels still
guard every read and write for direct ``torch.ops.mmclip.*`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = [
    "check_device",
    "check_dtype",
    "check_finite_nonnegative",
    "check_index_range",
    "check_ratio",
    "check_shape",
    "check_tensor",
    "has_values",
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


def has_values(value: Tensor) -> bool:
    """True when ``value`` holds data that a value check can read (not ``meta``, not empty)."""
    return value.device.type != "meta" and value.numel() > 0


def check_index_range(name: str, idx: Tensor, upper: int) -> None:
    """Require ``0 <= idx < upper`` (on every device; one host read of the extremes)."""
    if not has_values(idx):
        return
    low, high = torch.stack(tuple(torch.aminmax(idx))).tolist()
    if low < 0 or high >= upper:
        raise ValueError(f"{name} must index into [0, {upper}); found values in [{low}, {high}]")


def check_finite_nonnegative(name: str, value: Tensor, meaning: str) -> None:
    """Require every element of the floating ``value`` finite and ``>= 0`` (every device).

    ``meaning`` completes the message, e.g. ``"0 ignores a token"``. The first bad
    element is named by its index.
    """
    if not has_values(value):
        return
    bad = ~(torch.isfinite(value) & (value >= 0))
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0].tolist())
        found = value[where].item()
        raise ValueError(
            f"{name} must be >= 0 and finite ({meaning}); found {found} at {list(where)}"
        )
