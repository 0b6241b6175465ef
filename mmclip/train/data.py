"""From the ``data`` section of a config to records, a tokenizer and a mixing loader."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmclip.data import (
    LoaderConfig,
    MixingLoader,
    TransformConfig,
    XrayRecord,
    load_source,
)
from mmclip.data.records import DataError

from .config import DataConfig, SourceConfig

__all__ = [
    "DATA_ROOT_ENV",
    "build_loader",
    "load_records",
    "load_source_records",
    "resolve_data_path",
    "tokenizer_corpus",
    "train_tokenizer",
]

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "MMCLIP_DATA"
"""The environment variable naming the folder that relative dataset paths are read from
(``--data-root`` sets it for one command; it takes the place of a config's ``data.root``)."""


def resolve_data_path(path: str | Path, data_root: str | Path | None = None) -> Path:
    """Where a dataset path (a dataset folder or a manifest file) points.

    An absolute path is itself. A relative one is looked for under the data root —
    ``$MMCLIP_DATA`` when set (``--data-root`` sets it), else ``data_root`` (a config's
    ``data.root``) — and then under the working directory (so that ``data/synthetic`` made
    there keeps working with a data root set); the first that exists is returned.

    Raises:
        FileNotFoundError: none exists; the message gives the absolute paths looked at and
            how to set the data root.
    """
    path = Path(path).expanduser()
    env = os.environ.get(DATA_ROOT_ENV) or None
    base = env or (str(data_root) if data_root else None)
    candidates: list[Path] = [path]
    if not path.is_absolute():
        candidates = ([Path(base).expanduser() / path] if base else []) + [path]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    looked: list[str] = []
    for candidate in candidates:
        text = str(candidate.resolve())
        if text not in looked:
            looked.append(text)
    if path.is_absolute():
        raise FileNotFoundError(f"dataset path {str(path)!r} does not exist")
    where = (
        f"{DATA_ROOT_ENV}={env}"
        if env
        else f"data.root={data_root}"
        if data_root
        else f"{DATA_ROOT_ENV} not set"
    )
    raise FileNotFoundError(
        f"dataset path {str(path)!r} does not exist (looked at {' and '.join(looked)}); "
        f"relative dataset paths are read from the data root ({where}), then from the "
        f"working directory: set {DATA_ROOT_ENV} or pass --data-root to the folder that holds "
        "the datasets"
    )


def load_records(
    source: str,
    root: str | Path,
    split: str = "all",
    data_root: str | Path | None = None,
    **options: Any,
) -> list[XrayRecord]:
    """Records of one dataset: ``synthetic`` (a prepared folder), ``manifest`` or an adapter.

    Args:
        source: ``synthetic``, ``manifest`` or a name of ``mmclip.data.list_sources()``.
        root: the dataset folder (the manifest file for ``manifest``); a relative one is
            resolved by :func:`resolve_data_path`.
        split: keep only ``train`` / ``val`` / ``test`` records, or ``all``.
        data_root: the folder relative roots are read from when ``$MMCLIP_DATA`` is not set
            (a config's ``data.root``).
        **options: keyword arguments of the adapter.

    Raises:
        FileNotFoundError: ``root`` does not exist (the message gives the absolute paths).
        ValueError: an unknown source or split.
    """
    root = resolve_data_path(root, data_root)
    if split not in ("train", "val", "test", "all"):
        raise ValueError(f"split must be train, val, test or all; got {split!r}")
    records = load_source(source, root, **options)
    if split != "all":
        records = [r for r in records if r.split == split]
    return records


def _transform(record: XrayRecord, spec: SourceConfig) -> XrayRecord | None:
    changes: dict[str, Any] = {}
    if spec.drop_reports:
        changes["report"] = None
    if spec.drop_images:
        changes["image_path"] = None
    if spec.drop_labels:
        changes["labels"] = {}
    if not changes:
        return record
    image = changes.get("image_path", record.image_path)
    report = changes.get("report", record.report)
    if image is None and report is None:
        return None
    return dataclasses.replace(record, **changes)


def load_source_records(
    spec: SourceConfig, data_root: str | Path | None = None
) -> list[XrayRecord]:
    """The records of one configured source, with its split, drops and limit applied
    (``data_root``: the config's ``data.root``)."""
    records = load_records(spec.source, spec.root, spec.split, data_root, **spec.options)
    out = [r for r in (_transform(r, spec) for r in records) if r is not None]
    if spec.limit is not None:
        out = out[: spec.limit]
    if not out and spec.ratio > 0:
        raise DataError(
            f"data source {spec.name!r} ({spec.source} at {spec.root}, split {spec.split}) "
            "has no usable records"
        )
    kinds: dict[str, int] = {}
    for r in out:
        kinds[r.kind.name] = kinds.get(r.kind.name, 0) + 1
    logger.info("source %s: %d records %s", spec.name, len(out), kinds)
    return out


def tokenizer_corpus(sources: Iterable[Sequence[XrayRecord]]) -> list[str]:
    """Texts to train a vocabulary on: the reports, plus every prompt template filled in."""
    from mmclip.text import CHEXPERT_FINDINGS, zero_shot_prompts
    from mmclip.text.prompts import FINDING_PHRASES, NORMAL_PROMPTS, UNCERTAIN_TEMPLATES

    texts: list[str] = []
    for records in sources:
        texts.extend(r.report for r in records if r.report)
    for finding in sorted(set(CHEXPERT_FINDINGS) | set(FINDING_PHRASES)):
        if finding not in FINDING_PHRASES:
            continue
        prompts = zero_shot_prompts(finding)
        texts.extend(prompts["positive"] + prompts["negative"])
        for phrase in FINDING_PHRASES[finding]:
            texts.extend(
                t.format(phrase=phrase, Phrase=phrase.capitalize()) for t in UNCERTAIN_TEMPLATES
            )
            texts.extend(f"{side} {phrase}" for side in ("right", "left", "bilateral"))
    texts.extend(NORMAL_PROMPTS)
    return texts


def train_tokenizer(
    sources: Iterable[Sequence[XrayRecord]], vocab_size: int, save_dir: str | Path | None = None
) -> Any:
    """A WordPiece tokenizer trained on :func:`tokenizer_corpus` (saved to ``save_dir``)."""
    from mmclip.text import train_wordpiece_tokenizer

    corpus = tokenizer_corpus(sources)
    return train_wordpiece_tokenizer(
        corpus, vocab_size=vocab_size, min_frequency=1, save_dir=save_dir
    )


def build_loader(
    config: DataConfig,
    sources: Mapping[str, Sequence[XrayRecord]],
    *,
    batch_size: int,
    seed: int,
    image_size: int,
    image_mean: float,
    image_std: float,
    max_text_length: int,
    tokenizer: Any,
    shard_id: int = 0,
    num_shards: int = 1,
    device: str = "cpu",
) -> MixingLoader:
    """The training :class:`~mmclip.data.MixingLoader` of this rank.

    ``image_mean`` / ``image_std`` / ``image_size`` come from the model's vision config, so
    training images are normalised exactly as :meth:`MMCLIPModel.encode_image` does.
    """
    transform = TransformConfig(
        image_size=image_size,
        train=config.augment,
        hflip_prob=config.hflip_prob,
        mean=image_mean,
        std=image_std,
    )
    loader_config = LoaderConfig(
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        seed=seed,
        shard_id=shard_id,
        num_shards=num_shards,
        on_error=config.on_error,  # type: ignore[arg-type]
        backend=config.backend,  # type: ignore[arg-type]
        device=device,
        num_threads=config.num_threads,
        max_text_length=max_text_length,
        prefetch=config.prefetch,
        transform=transform,
    )
    ratios = {s.name: s.ratio for s in config.sources}
    return MixingLoader(
        sources,
        ratios,
        loader_config,
        steps_per_epoch=config.steps_per_epoch,
        tokenizer=tokenizer,
    )
