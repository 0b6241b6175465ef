"""Learning-rate schedule: linear warm-up, then cosine decay to a floor.

``lr(step) = lr_peak · f(step)`` with::

    f(step) = (step + 1) / warmup                                    step <  warmup
    f(step) = r + (1 - r) · ½ (1 + cos(π · (step - warmup) / (total - warmup)))   otherwise

where ``r = min_lr_ratio``. ``f`` is evaluated at the optimiser step about to be taken, so the
first step already has a non-zero learning rate.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["WarmupCosine", "build_scheduler"]


class WarmupCosine:
    """The multiplier ``f(step)`` of the module docstring (a picklable callable object).

    Args:
        warmup_steps: steps of the linear warm-up.
        total_steps: steps of the whole run.
        min_lr_ratio: the multiplier reached at ``total_steps``.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> None:
        if warmup_steps < 0 or total_steps < 1:
            raise ValueError(
                f"need warmup_steps >= 0 and total_steps >= 1; got {warmup_steps}, {total_steps}"
            )
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must lie in [0, 1]; got {min_lr_ratio}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_lr_ratio = float(min_lr_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.0,
) -> LambdaLR:
    """A ``LambdaLR`` with :class:`WarmupCosine` (its ``state_dict`` holds plain numbers)."""
    return LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_lr_ratio))
