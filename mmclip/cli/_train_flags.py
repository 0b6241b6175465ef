"""The flags of the commands that train (``pretrain``, ``demo``), declared once.

Each convenience flag names the training-config key it sets; its argparse type is that key's
field type in :class:`~mmclip.train.TrainConfig` (a bool field makes a switch), and
:func:`train_overrides` turns the flags given into ``key=value`` overrides from the same table.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "TRAIN_FLAGS",
    "add_register_args",
    "add_set_arg",
    "add_train_flags",
    "train_overrides",
]

TRAIN_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--out", "out_dir", "run directory (out_dir)"),
    ("--model", "model.name", "registered model name (model.name)"),
    ("--steps", "steps", "optimiser steps"),
    ("--batch-size", "batch_size", "samples per optimiser step, all ranks"),
    ("--grad-accum", "grad_accum", "micro-steps per optimiser step"),
    ("--lr", "optim.lr", "peak learning rate (optim.lr)"),
    ("--seed", "seed", "seed of data, model and training"),
    ("--device", "device", "auto, cpu or cuda"),
    ("--precision", "precision", "autocast precision"),
    ("--tokenizer", "model.tokenizer", "a local tokenizer directory (model.tokenizer)"),
    ("--save-every", "save_every", "steps between checkpoints"),
    ("--log-every", "log_every", "steps between log lines"),
    ("--compile", "compile", "torch.compile the model"),  # a bool field: a switch, key=true
)
"""(flag, training-config key, help) of every convenience flag of the training commands."""

# what validate() accepts, offered to argparse where the flag lists the values
_CHOICES = {"precision": ("auto", "bf16", "fp32")}


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _flag_type(key: str) -> type:
    """The scalar type of config key ``key`` in TrainConfig (``str | None`` → ``str``)."""
    from mmclip.config import field_type
    from mmclip.train.config import TrainConfig

    hint = field_type(TrainConfig, key)
    options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if len(options) != 1 or options[0] not in (bool, int, float, str):
        raise TypeError(f"flag for config key {key!r} of type {hint} is not a scalar")
    return options[0]


def add_train_flags(
    p: argparse.ArgumentParser,
    only: Sequence[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add the flags of :data:`TRAIN_FLAGS` (those in ``only``; all by default).

    ``defaults`` gives a command's own default per flag (``{"--steps": 1600}``); a flag
    without one defaults to None (the config's value).
    """
    defaults = defaults or {}
    for flag, key, help_text in TRAIN_FLAGS:
        if only is not None and flag not in only:
            continue
        kind = _flag_type(key)
        if kind is bool:
            p.add_argument(flag, action="store_true", help=help_text)
        else:
            p.add_argument(
                flag, type=kind, choices=_CHOICES.get(key), default=defaults.get(flag),
                help=help_text,
            )  # fmt: skip


def train_overrides(args: argparse.Namespace) -> list[str]:
    """The flags given, as ``key=value`` overrides, then the ``--set`` ones."""
    overrides = []
    for flag, key, _ in TRAIN_FLAGS:
        value = getattr(args, _dest(flag), None)
        if value is not None and value is not False:  # False: a switch not given
            overrides.append(f"{key}={'true' if value is True else value}")
    return overrides + list(args.set)


def add_set_arg(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE`` (repeatable): any key of the training config."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def add_register_args(
    p: argparse.ArgumentParser, default_tag: str | None, tag_default: str
) -> None:
    """``--tag`` and ``--no-register``: the local model directory's entry of the result."""
    p.add_argument(
        "--tag",
        default=default_tag,
        help="register the trained model as <model>:<tag> in $MMCLIP_HOME (~/.cache/mmclip) "
        f"(default: {tag_default})",
    )
    p.add_argument("--no-register", action="store_true", help="do not register the trained model")
