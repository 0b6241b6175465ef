"""Training configuration: YAML files mapped onto dataclasses, with ``key.sub=value`` overrides.

A config file is a (partial) nested mapping of :class:`TrainConfig`; missing keys keep their
defaults, unknown keys are a :class:`ConfigError` naming the key. Overrides use dotted paths
(``optim.lr=3e-4``, ``data.sources.0.ratio=0.3``, ``model.overrides.attmim.tau_final=inf``);
values are parsed as YAML scalars (``true``, ``null``, ``1e-3``, ``[0.9, 0.98]``). The mapping,
the checks and the overrides are :mod:`mmclip.config`'s (shared with the model config);
``ConfigError``, ``apply_set``, ``config_from_dict``, ``config_to_dict`` and ``parse_value``
are re-exported here.

Example::

    config = load_config("configs/demo.yaml", ["steps=50", "optim.lr=1e-3"])
    save_config(config, "runs/demo/config.yaml")
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmclip.config import (
    ConfigError,
    apply_set,
    config_from_dict,
    config_to_dict,
    merge,
    parse_value,
)
from mmclip.io import atomic_write_text

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelSection",
    "OptimConfig",
    "ScheduleConfig",
    "SourceConfig",
    "TrainConfig",
    "apply_set",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_value",
    "save_config",
]


@dataclass
class ModelSection:
    """Which model to train.

    Attributes:
        name: a registered model (``mmclip.models.list_models()``), e.g. ``mmclip-tiny``.
        overrides: nested changes of its :class:`~mmclip.models.MMCLIPConfig`, e.g.
            ``{"attmim": {"tau_final": "inf"}}`` (random masking).
        tokenizer: a local tokenizer directory or ``vocab.txt``; ``None`` trains a WordPiece
            vocabulary on the training texts (saved under ``<out_dir>/tokenizer``), unless
            ``overrides.text.pretrained`` brings its own.
        tokenizer_vocab_size: the size of that trained vocabulary (at most ``text.vocab_size``).
        init: a saved model directory (``save_pretrained``) whose weights start the run.
    """

    name: str = "mmclip-tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    tokenizer: str | None = None
    tokenizer_vocab_size: int = 4096
    init: str | None = None


@dataclass
class SourceConfig:
    """One data source of the mixing loader.

    Attributes:
        name: the source's name in the mix (unique).
        source: ``synthetic`` (a folder written by ``mmclip data prepare synthetic``),
            ``manifest`` (``root`` is a ``.jsonl`` / ``.csv`` file) or a dataset adapter
            (``mmclip.data.list_sources()``: ``mimic-cxr``, ``chexpert``, ``kermany``, …).
        root: the dataset folder (or manifest file); a relative path is read from the data
            root (``$MMCLIP_DATA``, else ``data.root``) and then from the working directory.
        ratio: its share of every batch (normalised over the sources).
        split: ``train`` / ``val`` / ``test`` / ``all``.
        drop_reports: keep images (+ labels) only: image-prompt or image-only samples.
        drop_images: keep reports only: text-only samples.
        drop_labels: forget the labels (image-only samples when the report is dropped too).
        limit: use at most this many records (the first ones), ``None`` = all.
        options: keyword arguments of the adapter (e.g. ``{"label_columns": [...]}``).
    """

    name: str = "train"
    source: str = "synthetic"
    root: str = "data/synthetic"
    ratio: float = 1.0
    split: str = "train"
    drop_reports: bool = False
    drop_images: bool = False
    drop_labels: bool = False
    limit: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """The input pipeline.

    Attributes:
        sources: the mixed sources (see :class:`SourceConfig`).
        root: the folder that the sources' relative ``root`` paths are read from (itself
            relative to the working directory); ``$MMCLIP_DATA`` / ``--data-root`` take its
            place. ``None``: the working directory.
        backend: image decoding, ``auto`` (DALI when installed), ``dali`` or ``pil``.
        num_threads: decoding threads per rank.
        prefetch: batches prepared ahead in a background thread (0 = none).
        on_error: ``raise`` on a bad image / row, or ``skip`` it (counted and logged).
        augment: random crop / rotation / intensity augmentation.
        hflip_prob: probability of a horizontal flip (0: laterality matters in reports).
        steps_per_epoch: batches per loader epoch (``None``: one pass of the largest source).
    """

    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    root: str | None = None
    backend: str = "auto"
    num_threads: int = 1
    prefetch: int = 0
    on_error: str = "raise"
    augment: bool = True
    hflip_prob: float = 0.0
    steps_per_epoch: int | None = None


@dataclass
class OptimConfig:
    """AdamW.

    Attributes:
        lr: peak learning rate (after the warm-up).
        weight_decay: decoupled weight decay of matrices (biases, norms, embeddings of
            special tokens and the logit scale get none).
        beta1, beta2, eps: Adam moments.
        grad_clip: clip the global gradient norm to this (0 = off).
        fused: fused AdamW kernel (``None`` = on CUDA only).
    """

    lr: float = 5e-4
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    grad_clip: float = 1.0
    fused: bool | None = None


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: linear warm-up, then cosine decay to ``min_lr_ratio · lr``.

    Attributes:
        warmup_steps: steps of the linear warm-up from 0.
        min_lr_ratio: the final learning rate as a fraction of the peak.
    """

    warmup_steps: int = 100
    min_lr_ratio: float = 0.0


@dataclass
class TrainConfig:
    """A pre-training run.

    Attributes:
        model, data, optim, schedule: the sections above.
        steps: optimiser steps of the run.
        batch_size: samples per optimiser step, summed over ranks and accumulation steps
            (each rank loads ``batch_size / (world_size · grad_accum)`` per micro-step).
        grad_accum: micro-steps per optimiser step.
        seed: seeds the model initialisation, the data order and the masks.
        out_dir: where the run is written (config, metrics, checkpoints, final model).
        device: ``auto`` (this rank's GPU when there is one, else the CPU), ``cpu``, ``cuda``.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``bf16`` or ``fp32``.
        compile: ``torch.compile`` the model.
        log_every: steps between log lines (and TensorBoard points); JSONL gets every step.
        save_every: steps between checkpoints (the last step is always saved).
        keep_checkpoints: how many recent checkpoints to keep.
        dist_timeout_s: collective timeout; a lost peer fails the run after this long.
        tensorboard: write TensorBoard events when ``tensorboard`` is installed.
    """

    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    steps: int = 1000
    batch_size: int = 64
    grad_accum: int = 1
    seed: int = 0
    out_dir: str = "runs/mmclip"
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    log_every: int = 10
    save_every: int = 500
    keep_checkpoints: int = 2
    dist_timeout_s: int = 1800
    tensorboard: bool = True

    def validate(self) -> TrainConfig:
        """Check values that the types cannot (raises :class:`ConfigError` naming the key)."""
        positive = {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "log_every": self.log_every,
            "save_every": self.save_every,
            "keep_checkpoints": self.keep_checkpoints,
            "dist_timeout_s": self.dist_timeout_s,
            "data.num_threads": self.data.num_threads,
            "model.tokenizer_vocab_size": self.model.tokenizer_vocab_size,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"config key {key!r} must be >= 1; got {value}")
        if self.schedule.warmup_steps < 0:
            raise ConfigError("config key 'schedule.warmup_steps' must be >= 0")
        if not 0.0 <= self.schedule.min_lr_ratio <= 1.0:
            raise ConfigError("config key 'schedule.min_lr_ratio' must lie in [0, 1]")
        if not (self.optim.lr > 0 and math.isfinite(self.optim.lr)):
            raise ConfigError(f"config key 'optim.lr' must be > 0; got {self.optim.lr}")
        if self.optim.grad_clip < 0:
            raise ConfigError("config key 'optim.grad_clip' must be >= 0")
        choices = {
            "device": (self.device, ("auto", "cpu", "cuda")),
            "precision": (self.precision, ("auto", "bf16", "fp32")),
            "data.backend": (self.data.backend, ("auto", "dali", "pil")),
            "data.on_error": (self.data.on_error, ("raise", "skip")),
        }
        for key, (value, allowed) in choices.items():
            if value not in allowed and not (key == "device" and value.startswith("cuda:")):
                raise ConfigError(
                    f"config key {key!r} must be one of {list(allowed)}; got {value!r}"
                )
        if not self.data.sources:
            raise ConfigError("config key 'data.sources' is empty")
        names = [s.name for s in self.data.sources]
        if len(set(names)) != len(names):
            raise ConfigError(f"config key 'data.sources' has repeated names {names}")
        for i, s in enumerate(self.data.sources):
            if s.split not in ("train", "val", "test", "all"):
                raise ConfigError(
                    f"config key 'data.sources.{i}.split' must be train/val/test/all; "
                    f"got {s.split!r}"
                )
            if s.ratio < 0:
                raise ConfigError(f"config key 'data.sources.{i}.ratio' must be >= 0")
        if sum(s.ratio for s in self.data.sources) <= 0:
            raise ConfigError("the ratios of 'data.sources' must have a positive sum")
        self._validate_model()
        return self

    def _validate_model(self) -> None:
        from mmclip.models import apply_overrides, get_model_config

        try:
            base = get_model_config(self.model.name)
        except ValueError as err:
            raise ConfigError(f"config key 'model.name': {err}") from None
        try:
            apply_overrides(base, self.model.overrides)
        except ValueError as err:
            raise ConfigError(f"config key 'model.overrides': {err}") from None


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------

#: Mappings that a config file replaces whole instead of merging key by key.
_REPLACED_WHOLE = ("model.overrides", "data.sources")


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Defaults ← ``base`` ← the YAML file ← ``overrides`` (``key.sub=value`` strings).

    Raises:
        ConfigError: a missing file, bad YAML, an unknown key or a wrongly typed value.
    """
    tree = config_to_dict(TrainConfig())
    if base:
        merge(tree, base, _REPLACED_WHOLE)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config file {str(path)!r}{where} is not valid YAML") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys")
        merge(tree, data, _REPLACED_WHOLE)
    for assignment in overrides:
        apply_set(tree, assignment)
    return config_from_dict(TrainConfig, tree).validate()


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""
    return atomic_write_text(
        path, yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)
    )
