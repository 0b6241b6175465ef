"""The flags of the commands that train (``pretrain``, ``demo``, ``finetune``), declared once.

Each convenience flag names the training-config key it sets; its argparse type is that key's
field type in :class:`~mmclip.train.TrainConfig` (a bool field makes a switch), and
:func:`train_overrides` turns the flags given into ``key=value`` overrides from the same table.
``finetune`` takes its flags (:data:`FINETUNE_FLAGS`) as fields of
:class:`~mmclip.eval.finetune.FinetuneConfig` (:func:`finetune_config`). A flag's help is the
same in every command (:data:`FLAG_HELP`).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "FINETUNE_FLAGS",
    "FLAG_HELP",
    "TRAIN_FLAGS",
    "add_finetune_flags",
    "add_register_args",
    "add_set_arg",
    "add_train_flags",
    "finetune_config",
    "train_overrides",
]

FLAG_HELP: dict[str, str] = {
    "--out": "run directory",
    "--model": "registered model name",
    "--steps": "optimiser steps",
    "--epochs": "passes over the training images",
    "--batch-size": "samples per optimiser step, all ranks",
    "--grad-accum": "micro-steps per optimiser step",
    "--lr": "peak learning rate",
    "--seed": "seed of data, model and training",
    "--device": "auto, cpu or cuda",
    "--precision": "autocast precision",
    "--tokenizer": "a local tokenizer directory",
    "--save-every": "steps between checkpoints",
    "--log-every": "steps between log lines",
    "--compile": "torch.compile the model",
}
"""The help of every training flag, whichever command has it (one meaning per flag)."""


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _rows(pairs: Sequence[tuple[str, str]]) -> tuple[tuple[str, str, str], ...]:
    """(flag, key) → (flag, key, help): :data:`FLAG_HELP`, naming the key when the flag's
    name differs from it (``--lr`` → ``peak learning rate (optim.lr)``)."""
    return tuple(
        (flag, key, FLAG_HELP[flag] + ("" if key == _dest(flag) else f" ({key})"))
        for flag, key in pairs
    )


TRAIN_FLAGS: tuple[tuple[str, str, str], ...] = _rows(
    (
        ("--out", "out_dir"),
        ("--model", "model.name"),
        ("--steps", "steps"),
        ("--batch-size", "batch_size"),
        ("--grad-accum", "grad_accum"),
        ("--lr", "optim.lr"),
        ("--seed", "seed"),
        ("--device", "device"),
        ("--precision", "precision"),
        ("--tokenizer", "model.tokenizer"),
        ("--save-every", "save_every"),
        ("--log-every", "log_every"),
        ("--compile", "compile"),  # a bool field: a switch, key=true
    )
)
"""(flag, training-config key, help) of every convenience flag of the pre-training commands."""

FINETUNE_FLAGS: tuple[tuple[str, str, str], ...] = _rows(
    (("--epochs", "epochs"), ("--lr", "lr"), ("--batch-size", "batch_size"))
)
"""(flag, :class:`~mmclip.eval.finetune.FinetuneConfig` field, help) of ``mmclip finetune``;
type and default: the field's."""

# what validate() accepts, offered to argparse where the flag lists the values
_CHOICES = {"precision": ("auto", "bf16", "fp32")}


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


def add_finetune_flags(p: argparse.ArgumentParser) -> None:
    """Add the flags of :data:`FINETUNE_FLAGS`, typed and defaulted as FinetuneConfig's fields."""
    from mmclip.eval.finetune import FinetuneConfig

    fields = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    hints = typing.get_type_hints(FinetuneConfig)
    for flag, key, help_text in FINETUNE_FLAGS:
        p.add_argument(flag, type=hints[key], default=fields[key].default, help=help_text)


def finetune_config(args: argparse.Namespace) -> Any:
    """The :class:`~mmclip.eval.finetune.FinetuneConfig` of the :data:`FINETUNE_FLAGS` given
    (the other fields at their defaults)."""
    from mmclip.eval.finetune import FinetuneConfig

    return FinetuneConfig(**{key: getattr(args, _dest(flag)) for flag, key, _ in FINETUNE_FLAGS})


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
