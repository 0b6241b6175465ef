"""Checkpoints that survive a kill at any moment, and exact resume.

Layout of a run directory::

    <out_dir>/checkpoints/step-000500/
        model.safetensors, config.json, tokenizer files   (MMCLIPModel.save_pretrained)
        trainer.pt        optimiser, scheduler, step, world size       (rank 0)
        rank-00000.pt     RNG states (python, numpy, torch, CUDA) and loader position per rank
    <out_dir>/checkpoints/latest    the name of the newest complete checkpoint

A checkpoint is written into a temporary directory; every file is fsync'ed, the directory is
renamed into place, and only then is ``latest`` replaced (temp file + fsync + ``os.replace``).
A run killed at any point therefore leaves ``latest`` naming a complete checkpoint. Non-weight
state holds only tensors and plain Python values and is read with
``torch.load(..., weights_only=True)``; weights are safetensors.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmclip.config import flatten
from mmclip.io import atomic_output, atomic_write_bytes, fsync_dir, fsync_file

from .config import ConfigError, TrainConfig, config_to_dict

__all__ = [
    "RESUME_BREAKING",
    "CheckpointError",
    "LoadedCheckpoint",
    "UnreadableCheckpointError",
    "atomic_write_bytes",
    "capture_rng_state",
    "check_resume_config",
    "checkpoint_dir",
    "find_checkpoint",
    "latest_checkpoint",
    "load_checkpoint",
    "prune_checkpoints",
    "publish_checkpoint",
    "restore_rng_state",
    "step_checkpoints",
    "write_checkpoint_files",
]

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LATEST = "latest"
TRAINER_STATE = "trainer.pt"
FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A missing, incomplete or incompatible checkpoint."""


class UnreadableCheckpointError(CheckpointError):
    """A checkpoint file that is missing, truncated or corrupt."""


def checkpoint_dir(out_dir: str | Path) -> Path:
    """``<out_dir>/checkpoints``."""
    return Path(out_dir) / CHECKPOINTS


def rank_file(rank: int) -> str:
    """File name of one rank's state."""
    return f"rank-{rank:05d}.pt"


# --------------------------------------------------------------------------------------------
# atomic files
# --------------------------------------------------------------------------------------------


def _save_torch(obj: Any, path: Path) -> None:
    with atomic_output(path, durable=True) as tmp:
        torch.save(obj, tmp)


# --------------------------------------------------------------------------------------------
# RNG state as tensors / plain values (weights_only-loadable)
# --------------------------------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """Every RNG this process uses: python ``random``, numpy's global one, torch, CUDA."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global generator
    state: dict[str, Any] = {
        "python": {
            "version": int(version),
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            npst["kind"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = list(state.get("cuda", []))
    if cuda and torch.cuda.is_available():
        if len(cuda) != torch.cuda.device_count():
            logger.warning(
                "checkpoint has %d CUDA RNG states, this machine %d devices: restoring the "
                "first ones",
                len(cuda),
                torch.cuda.device_count(),
            )
        for index, s in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, index)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def staging_dir(out_dir: str | Path, step: int) -> Path:
    """The temporary directory checkpoint ``step`` is written into (same on every rank)."""
    return checkpoint_dir(out_dir) / f".step-{step:06d}.partial"


def write_checkpoint_files(
    out_dir: str | Path,
    step: int,
    rank: int,
    rank_state: Mapping[str, Any],
    model: Any = None,
    trainer_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write this rank's part of checkpoint ``step`` into its staging directory.

    Rank 0 passes the model (``save_pretrained``) and the trainer state; every rank passes its
    own ``rank_state`` (RNG, loader position). Call :func:`publish_checkpoint` on rank 0 once
    every rank has written (after a barrier).
    """
    stage = staging_dir(out_dir, step)
    stage.mkdir(parents=True, exist_ok=True)
    if model is not None:
        model.save_pretrained(stage)
    if trainer_state is not None:
        _save_torch({"format_version": FORMAT_VERSION, **trainer_state}, stage / TRAINER_STATE)
    _save_torch(dict(rank_state), stage / rank_file(rank))
    return stage


def publish_checkpoint(out_dir: str | Path, step: int, world_size: int, keep: int = 2) -> Path:
    """Fsync the staged checkpoint, rename it into place, then point ``latest`` at it."""
    root = checkpoint_dir(out_dir)
    stage = staging_dir(out_dir, step)
    needed = [TRAINER_STATE, "model.safetensors", "config.json"]
    needed += [rank_file(r) for r in range(world_size)]
    missing = [n for n in needed if not (stage / n).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {stage} is incomplete: missing {missing}")
    for path in stage.iterdir():
        if path.is_file():
            fsync_file(path)
    fsync_dir(stage)
    final = root / f"step-{step:06d}"
    if final.exists():  # a re-run of a step after a resume: the old copy is not `latest`
        shutil.rmtree(final)
    os.replace(stage, final)
    fsync_dir(root)
    atomic_write_bytes(root / LATEST, (final.name + "\n").encode())
    logger.info("saved checkpoint %s", final)
    prune_checkpoints(out_dir, keep)
    return final


def prune_checkpoints(out_dir: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest complete checkpoints (never the ``latest`` one)."""
    root = checkpoint_dir(out_dir)
    latest = latest_checkpoint(out_dir)
    steps = sorted(
        (int(m.group(1)), p)
        for p in root.iterdir()
        if p.is_dir() and (m := _STEP_DIR.match(p.name))
    )
    for _, path in steps[: max(0, len(steps) - keep)]:
        if latest is not None and path.resolve() == latest.resolve():
            continue
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def step_checkpoints(out_dir: str | Path) -> list[Path]:
    """The complete ``step-N`` folders of a run (trainer state, weights, config), oldest first."""
    root = checkpoint_dir(out_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        needed = (TRAINER_STATE, "model.safetensors", "config.json")
        if match and path.is_dir() and all((path / n).is_file() for n in needed):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The checkpoint ``latest`` names, or ``None`` when the run has none.

    When ``latest`` is missing but complete ``step-N`` folders exist (a copied or partly
    deleted run), the newest of them, with a warning: the run is not mistaken for an empty
    directory (which a new run would overwrite).
    """
    pointer = checkpoint_dir(out_dir) / LATEST
    if not pointer.is_file():
        steps = step_checkpoints(out_dir)
        if steps:
            logger.warning(
                "%s is missing; using the newest complete checkpoint folder %s",
                pointer,
                steps[-1].name,
            )
            return steps[-1]
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not _STEP_DIR.match(name):
        raise CheckpointError(f"{pointer} names {name!r}, not a checkpoint directory")
    path = checkpoint_dir(out_dir) / name
    if not path.is_dir():
        raise CheckpointError(f"{pointer} names {name}, which does not exist")
    return path


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from itself, or from a run directory (its ``latest``)."""
    path = Path(path)
    if (path / TRAINER_STATE).is_file():
        return path
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is not None:
            return found
    raise CheckpointError(
        f"no checkpoint at {str(path)!r} (expected a run or checkpoint directory)"
    )


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` read.

    Attributes:
        path: the checkpoint directory.
        step: optimiser steps done.
        trainer: optimiser / scheduler / bookkeeping state.
        rank_state: this rank's RNG and loader state.
        weights: the model tensors (CPU).
    """

    path: Path
    step: int
    trainer: dict[str, Any]
    rank_state: dict[str, Any]
    weights: dict[str, torch.Tensor]


def load_checkpoint(path: str | Path, rank: int = 0, world_size: int = 1) -> LoadedCheckpoint:
    """Read a checkpoint for ``rank`` of ``world_size``.

    Raises:
        CheckpointError: missing files, or a checkpoint of a different world size.
    """
    given = Path(path)
    path = find_checkpoint(given)
    if given.resolve() == path.resolve():  # a checkpoint named explicitly: no fallback
        return _read_checkpoint(path, rank, world_size)
    older = [p for p in reversed(step_checkpoints(given)) if p.name < path.name]
    for candidate in older:
        try:
            return _read_checkpoint(path, rank, world_size)
        except UnreadableCheckpointError as error:
            logger.warning("%s; falling back to the previous checkpoint %s", error, candidate.name)
            path = candidate
    return _read_checkpoint(path, rank, world_size)


def _load_file(path: Path) -> Any:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UnreadableCheckpointError(f"{path} is missing") from None
    except Exception as error:  # truncated / corrupt: torch, pickle and safetensors errors
        raise UnreadableCheckpointError(
            f"{path} is unreadable (truncated or corrupt: {type(error).__name__})"
        ) from None


def _read_checkpoint(path: Path, rank: int, world_size: int) -> LoadedCheckpoint:
    trainer = _load_file(path / TRAINER_STATE)
    version = int(trainer.get("format_version", FORMAT_VERSION))
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {version}; this mmclip reads <= 1")
    saved_world = int(trainer["world_size"])
    if saved_world != world_size:
        raise CheckpointError(
            f"{path} was written by a run of {saved_world} process(es); this run has "
            f"{world_size}. Resume with the same world size (data order and RNG streams "
            "are per rank)"
        )
    rank_path = path / rank_file(rank)
    if not rank_path.is_file():
        raise CheckpointError(f"{rank_path} is missing")
    rank_state = _load_file(rank_path)
    weights = _load_file(path / "model.safetensors")
    return LoadedCheckpoint(path, int(trainer["step"]), trainer, rank_state, weights)


RESUME_BREAKING: tuple[str, ...] = ("model.", "data.", "batch_size", "grad_accum", "seed")
"""Config keys whose change on resume breaks the exact continuation of a run."""


def check_resume_config(
    config: TrainConfig, trainer: dict[str, Any], path: Path, force: bool
) -> None:
    """Say what changed since the checkpoint's run; refuse what breaks an exact resume.

    Args:
        config: the config of the run being resumed now.
        trainer: the checkpoint's trainer state (``step`` and the saved ``config``).
        path: the checkpoint, for messages.
        force: accept changes of :data:`RESUME_BREAKING` keys (``--force-resume``).

    Raises:
        ConfigError: the checkpoint is past ``config.steps``, or a breaking key changed.
    """
    done = int(trainer["step"])
    if done > config.steps:
        raise ConfigError(
            f"{path} is at step {done}, past steps={config.steps}: nothing to train "
            f"(raise --steps above {done}, or use the checkpoint's model directly)"
        )
    saved = trainer.get("config")
    if not isinstance(saved, dict):
        return  # checkpoints written before the config was recorded
    now = flatten(config_to_dict(config))
    before = flatten(saved)
    changed = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
    breaking = [k for k in changed if k.startswith(RESUME_BREAKING)]
    if breaking and not force:
        details = "; ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in breaking)
        raise ConfigError(
            f"resuming {path} with a changed run ({details}) would not continue it exactly; "
            "restore those values or pass --force-resume"
        )
    for key in changed:
        logger.warning("resume: %s changed from %r to %r", key, before.get(key), now.get(key))
