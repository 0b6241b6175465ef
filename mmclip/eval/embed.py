"""Embeddings of records with a trained model: images through the evaluation transform (the
model's image size and normalisation, no augmentation), texts through the model's tokenizer."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from mmclip.data import LoaderConfig, TransformConfig, XrayLoader, XrayRecord
from mmclip.data.records import NO_FINDING
from mmclip.progress import progress

__all__ = [
    "embedding_arrays",
    "encode_records",
    "encode_texts",
    "label_matrix",
    "load_images",
    "model_device",
    "no_finding_label",
]

logger = logging.getLogger(__name__)


def model_device(model: Any) -> torch.device:
    """The device of a model's parameters."""
    return next(model.parameters()).device


def _image_records(records: Sequence[XrayRecord]) -> list[XrayRecord]:
    out = []
    for i, r in enumerate(records):
        if r.image_path is None:
            raise ValueError(f"record {i} ({r.source}) has no image")
        out.append(dataclasses.replace(r, report=None, labels={}))
    return out


def load_images(
    model: Any,
    records: Sequence[XrayRecord],
    batch_size: int = 64,
    backend: str = "auto",
    num_threads: int = 1,
) -> Tensor:
    """Decode the records' images as the model sees them at evaluation.

    Returns:
        Tensor[N, C, S, S] float32 on the CPU (S = the model's ``vision.image_size``).
    """
    v = model.config.vision
    config = LoaderConfig(
        batch_size=batch_size,
        shuffle=False,
        drop_last=False,
        backend=backend,  # type: ignore[arg-type]
        num_threads=num_threads,
        transform=TransformConfig(
            image_size=v.image_size, train=False, mean=v.image_mean, std=v.image_std
        ),
    )
    loader = XrayLoader(_image_records(records), config)
    batches = progress(loader, total=len(loader), desc="decoding images", unit="batch")
    parts = [batch.images for batch in batches if batch.images is not None]
    if not parts:
        return torch.zeros(0, v.in_chans, v.image_size, v.image_size)
    images = torch.cat(parts)
    if images.shape[1] != v.in_chans:
        images = images.expand(-1, v.in_chans, -1, -1).contiguous()
    return images


@torch.no_grad()
def encode_records(
    model: Any,
    records: Sequence[XrayRecord],
    batch_size: int = 64,
    backend: str = "auto",
    num_threads: int = 1,
    images: Tensor | None = None,
) -> Tensor:
    """L2-normalised image embeddings of the records.

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` (put in eval mode here).
        records: records with images.
        images (Tensor[N, C, S, S] | None): already decoded images (see :func:`load_images`).

    Returns:
        Tensor[N, E] float32 on the CPU.
    """
    model.eval()
    if images is None:
        images = load_images(model, records, batch_size, backend, num_threads)
    device = model_device(model)
    starts = range(0, images.shape[0], batch_size)
    out = [
        model.encode_pixels(images[i : i + batch_size].to(device)).float().cpu()
        for i in progress(starts, desc="encoding images", unit="batch")
    ]
    embed = model.config.contrastive.embed_dim
    return torch.cat(out) if out else torch.zeros(0, embed)


@torch.no_grad()
def encode_texts(model: Any, texts: Sequence[str], batch_size: int = 256) -> Tensor:
    """L2-normalised text embeddings: Tensor[N, E] float32 on the CPU."""
    model.eval()
    out = [
        model.encode_text(list(texts[i : i + batch_size])).float().cpu()
        for i in progress(range(0, len(texts), batch_size), desc="encoding texts", unit="batch")
    ]
    embed = model.config.contrastive.embed_dim
    return torch.cat(out) if out else torch.zeros(0, embed)


def label_matrix(
    records: Sequence[XrayRecord], findings: Sequence[str], uncertain: str = "ignore"
) -> NDArray[np.float64]:
    """Ground truth per finding: 1 positive, 0 negative or unmentioned, NaN = left out.

    ``No Finding`` is normal vs abnormal (:func:`no_finding_label`).

    Args:
        uncertain: what an uncertain (-1) label counts as: ``positive``, ``negative`` or
            ``ignore`` (NaN: the sample is left out of that finding's metrics).

    Returns:
        array[N, F] float64.
    """
    if uncertain not in ("positive", "negative", "ignore"):
        raise ValueError(f"uncertain must be positive, negative or ignore; got {uncertain!r}")
    mapped = {"positive": 1.0, "negative": 0.0, "ignore": np.nan}[uncertain]
    out = np.zeros((len(records), len(findings)), dtype=np.float64)
    for i, record in enumerate(records):
        for j, finding in enumerate(findings):
            if finding == NO_FINDING:
                out[i, j] = no_finding_label(record.labels)
                continue
            value = record.labels.get(finding, 0)
            out[i, j] = mapped if value == -1 else float(value)
    return out


def no_finding_label(labels: Mapping[str, Any]) -> float:
    """Normal (1) vs abnormal (0) of a record's labels; NaN when it has no labels.

    An explicit ``No Finding`` label wins; otherwise a record is abnormal when any finding is
    positive or uncertain, and normal when every labelled finding is negative.
    """
    explicit = labels.get(NO_FINDING)
    if explicit is not None and explicit == explicit:
        return 1.0 if explicit == 1 else 0.0
    values = [v for k, v in labels.items() if k != NO_FINDING and v is not None and v == v]
    if not values:
        return math.nan
    return 0.0 if any(v in (1, -1) for v in values) else 1.0


def embedding_arrays(
    model: Any,
    *,
    images: Sequence[Any] | None = None,
    texts: Sequence[str] | None = None,
    records: Sequence[XrayRecord] | None = None,
    backend: str = "auto",
) -> dict[str, NDArray[Any]]:
    """The embeddings ``mmclip encode`` writes, by array name (for
    :func:`mmclip.io.atomic_save_arrays`).

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` (in eval mode, as loaded).
        images: image files (or any input of :mod:`mmclip.models.preprocess`).
        texts: texts.
        records: dataset records with images (instead of ``images``).
        backend: image decoding of ``records``.

    Returns:
        ``image_embeds`` (array[N, E] float32) of ``images`` or of ``records``,
        ``image_paths`` (array[N] str: the records' image paths) with ``records``,
        ``text_embeds`` (array[T, E] float32) with ``texts``; all L2-normalised.

    Raises:
        ValueError: both ``images`` and ``records`` (both would be ``image_embeds``).
    """
    if images and records:
        raise ValueError("give images or records, not both (both fill image_embeds)")
    arrays: dict[str, NDArray[Any]] = {}
    if images:
        with torch.no_grad():
            arrays["image_embeds"] = model.encode_image(list(images)).cpu().numpy()
    if texts:
        arrays["text_embeds"] = encode_texts(model, list(texts)).numpy()
    if records:
        arrays["image_embeds"] = encode_records(model, records, backend=backend).numpy()
        arrays["image_paths"] = np.asarray([str(r.image_path) for r in records])
    return arrays
