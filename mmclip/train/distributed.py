"""``torch.distributed`` set-up for ``torchrun``: one process per device, DDP by default.

:func:`init_distributed` reads the variables ``torchrun`` exports (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and joins the process group: NCCL when the
run uses CUDA devices, Gloo on CPUs. Every collective has a timeout (``timeout_s``): a peer that
dies or hangs makes the others fail with an error after that long instead of waiting for
ever (NCCL's watchdog aborts the communicator; ``TORCH_NCCL_ASYNC_ERROR_HANDLING`` is on).

Single node, 8 GPUs::

    torchrun --standalone --nproc-per-node 8 -m mmclip pretrain --config configs/mimic-base.yaml

Two nodes (the same command on each, the address of node 0 as endpoint; the c10d
rendezvous assigns the node ranks)::

    torchrun --nnodes 2 --nproc-per-node 8 \\
        --rdzv-backend c10d --rdzv-endpoint node0.example.org:29500 --rdzv-id mmclip-run1 \\
        -m mmclip pretrain --config configs/mimic-base.yaml
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_reduce_mean",
    "barrier",
    "cleanup_distributed",
    "init_distributed",
    "resolve_device",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the run.

    Attributes:
        rank: global rank (0 … world_size - 1).
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        device: this process's device.
        backend: ``nccl`` / ``gloo``, or ``None`` for a single process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes logs, configs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but CUDA is not available")
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return torch.device(device)


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by the ``torchrun`` environment (or run alone).

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        timeout_s: timeout of every collective (and of the rendezvous).

    Returns:
        :class:`DistInfo`. Without ``WORLD_SIZE`` > 1 no process group is created.

    Raises:
        ValueError: inconsistent environment (rank outside the world, missing master address).
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}")
    dev = resolve_device(device, local_rank)
    if world == 1:
        return DistInfo(0, 1, 0, dev, None)
    if dist.is_initialized():
        if dist.get_world_size() != world or dist.get_rank() != rank:
            raise ValueError(
                f"a process group of rank {dist.get_rank()}/{dist.get_world_size()} exists, "
                f"but the environment says {rank}/{world}"
            )
        return DistInfo(rank, world, local_rank, dev, dist.get_backend())
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ValueError(f"WORLD_SIZE={world} but {name} is not set (launch with torchrun)")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    timeout = datetime.timedelta(seconds=float(timeout_s))
    kwargs = {"device_id": dev} if dev.type == "cuda" else {}
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=rank,
        world_size=world,
        timeout=timeout,
        **kwargs,
    )
    logger.info(
        "rank %d/%d (local %d) on %s, backend %s, timeout %ss",
        rank,
        world,
        local_rank,
        dev,
        backend,
        timeout_s,
    )
    return DistInfo(rank, world, local_rank, dev, backend)


def cleanup_distributed() -> None:
    """Leave the process group (when one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if info.distributed:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index or 0])
        else:
            dist.barrier()


def all_reduce_mean(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (a copy; the input is left alone)."""
    out = tensor.detach().clone()
    if info.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= info.world_size
    return out
