"""What the objective needs to stay safe under DistributedDataParallel.

DDP waits for a gradient of every trainable parameter and every rank must join each
collective. A rank whose batch activates no loss term still has to return a loss whose
backward reaches every parameter (:func:`connected_zero`), and the terms that all-gather
must know whether other ranks exist (:func:`is_distributed`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["connected_zero", "is_distributed"]


def is_distributed() -> bool:
    """True under an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def connected_zero(module: nn.Module) -> Tensor:
    """A float32 scalar 0 connected to every trainable parameter of ``module``.

    ``.backward()`` on it gives each trainable parameter a zero gradient (so DDP, which
    waits for each one, does not hang); a zero with no graph when nothing is trainable.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    device = next(module.parameters()).device if params else torch.device("cpu")
    zero = torch.zeros((), dtype=torch.float32, device=device)
    for p in params:
        zero = zero + p.reshape(-1)[:1].float().sum() * 0.0
    return zero
