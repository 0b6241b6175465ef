"""Training configuration: YAML files mapped onto dataclasses, with ``key.sub=value`` overrides.

A config file is a (partial) nested mapping of :class:`TrainConfig`; missing keys keep their
defaults, unknown keys are a :class:`ConfigError` naming the key. Overrides use dotted paths
(``optim.lr=3e-4``, ``data.sources.0.ratio=0.3``, ``model.overrides.attmim.tau_final=inf``);
values are parsed as YAML scalars (``true``, ``null``, ``1e-3``, ``[0.9, 0.98]``).

Example::

    config = load_config("configs/demo.yaml", ["steps=50", "optim.lr=1e-3"])
    save_config(config, "runs/demo/config.yaml")
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

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

_T = TypeVar("_T")


class ConfigError(ValueError):
    """A bad config file, key or value; the message names the key."""


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
        root: the dataset folder (or manifest file); relative paths are taken from the
            working directory.
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
        backend: image decoding, ``auto`` (DALI when installed), ``dali`` or ``pil``.
        num_threads: decoding threads per rank.
        prefetch: batches prepared ahead in a background thread (0 = none).
        on_error: ``raise`` on a bad image / row, or ``skip`` it (counted and logged).
        augment: random crop / rotation / intensity augmentation.
        hflip_prob: probability of a horizontal flip (0: laterality matters in reports).
        steps_per_epoch: batches per loader epoch (``None``: one pass of the largest source).
    """

    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
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
            apply_overrides(base, flatten_overrides(self.model.overrides))
        except ValueError as err:
            raise ConfigError(f"config key 'model.overrides': {err}") from None


# --------------------------------------------------------------------------------------------
# dict <-> dataclass
# --------------------------------------------------------------------------------------------


def flatten_overrides(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"attmim": {"tau_final": 1}}`` → ``{"attmim__tau_final": 1}`` (create_model form)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}__{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten_overrides(value, path))
        else:
            out[path] = value
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """Nested dataclass → plain dict (YAML / JSON safe)."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"config key {key!r} must not be null")
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(key, option, value)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if value is None:
        raise ConfigError(f"config key {key!r} must not be null")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key!r} must be a mapping; got {value!r}")
        return config_from_dict(hint, value, prefix=f"{key}.")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list; got {value!r}")
        (item,) = args or (Any,)
        return [_coerce(f"{key}.{i}", item, v) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key!r} must be a mapping; got {value!r}")
        return {str(k): v for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"config key {key!r} must be {_type_name(hint)}; got {value!r}")


def config_from_dict(cls: type[_T], data: Mapping[str, Any], prefix: str = "") -> _T:
    """Build dataclass ``cls`` from a partial nested mapping, checking every key and type."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {prefix.rstrip('.') or 'file'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"unknown config key {prefix + str(key)!r} (valid keys here: {', '.join(names)})"
            )
    kwargs = {k: _coerce(prefix + k, hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


# --------------------------------------------------------------------------------------------
# overrides and files
# --------------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A command-line value as YAML (``1e-3`` and ``inf`` become floats)."""
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value) if value.lower() in ("inf", "-inf", "nan") else _number(value)
        except ValueError:
            return value
    return value


def _number(text: str) -> Any:
    lowered = text.lower()
    if any(c in lowered for c in "e.") and not lowered.startswith(("0x",)):
        return float(text)  # raises ValueError for plain words
    raise ValueError(text)


def apply_set(tree: dict[str, Any], assignment: str) -> None:
    """Apply one ``key.sub=value`` assignment to a nested dict (lists by index)."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like key.sub=value")
    key, text = assignment.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"override {assignment!r} has an empty key")
    node: Any = tree
    for i, part in enumerate(parts[:-1]):
        here = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"unknown config key {here!r} (list of {len(node)} items)")
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                node[part] = {}
            elif not isinstance(node[part], (dict, list)):
                raise ConfigError(f"config key {here!r} is a value, not a section")
            node = node[part]
    last = parts[-1]
    value = parse_value(text)
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"unknown config key {key!r} (list of {len(node)} items)")
        node[int(last)] = value
    else:
        node[last] = value


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
        _merge(tree, dict(base), "")
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
        _merge(tree, data, "")
    for assignment in overrides:
        apply_set(tree, assignment)
    return config_from_dict(TrainConfig, tree).validate()


def _merge(tree: dict[str, Any], data: Mapping[str, Any], prefix: str) -> None:
    """Merge ``data`` into ``tree``; mappings merge key by key, everything else replaces."""
    for key, value in data.items():
        if key in tree and isinstance(tree[key], dict) and isinstance(value, Mapping):
            if prefix + key in ("model.overrides", "data.sources"):
                tree[key] = dict(value)
            else:
                _merge(tree[key], value, f"{prefix}{key}.")
        else:
            tree[key] = value


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""
    return atomic_write_text(
        path, yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)
    )


def sources_summary(sources: Sequence[SourceConfig]) -> str:
    """``name (source, ratio)`` of each source, for log lines."""
    return ", ".join(f"{s.name} ({s.source}, {s.ratio:g})" for s in sources)
