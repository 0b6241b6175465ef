"""The batch contract between the data pipeline and the model.

A batch holds ``B`` samples of four kinds (:class:`SampleKind`), **sorted by kind**: first the
image–report pairs, then the image + prompt samples, the image-only and the text-only samples
(``counts`` says how many of each). Images and texts are stored as separate stacks without
padding rows, so the rows of each group are contiguous and in the order the objective uses
them::

    images     [ PAIRED | IMAGE_PROMPT | IMAGE_ONLY ]
    input_ids  [ PAIRED | IMAGE_PROMPT | TEXT_ONLY  ]
    prompt_*   [ TEXT_ONLY ]                       (optional: the text–prompt term)

:func:`row_groups` slices a batch into those groups (entity spans included).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

__all__ = ["MMCLIPBatch", "RowGroups", "SampleKind", "TextRows", "row_groups"]


class SampleKind(enum.IntEnum):
    """What a sample holds and which loss terms it feeds (the order of a batch's samples)."""

    PAIRED = 0
    """Image + report: contrastive, AttMIM (text-guided), EntMLM (image-conditioned)."""
    IMAGE_PROMPT = 1
    """Image + disease-kind prompt built from its labels: takes the paired path."""
    IMAGE_ONLY = 2
    """Image without text or labels: AttMIM with uniform masking (MAE loss) only."""
    TEXT_ONLY = 3
    """Report without image: EntMLM without image, optional text–prompt contrastive term."""


@dataclass
class MMCLIPBatch:
    """One training batch, its samples sorted by :class:`SampleKind`.

    Attributes:
        kind (Tensor[B] int64): :class:`SampleKind` of each sample (non-decreasing).
        counts: samples of each kind, ``(PAIRED, IMAGE_PROMPT, IMAGE_ONLY, TEXT_ONLY)``;
            None = counted from ``kind`` when the batch is made.
        images (Tensor[Bi, C, H, W] float | None): the images of the samples that have one
            (``Bi = counts[0] + counts[1] + counts[2]``), in sample order.
        input_ids (Tensor[Bt, L] int64 | None): tokenised texts (report or prompt) of the
            samples that have one (``Bt = counts[0] + counts[1] + counts[3]``).
        attention_mask (Tensor[Bt, L] int64 | None): 1 = real token, 0 = padding.
        special_tokens_mask (Tensor[Bt, L] int64 | None): 1 = [CLS]/[SEP]/….
        span_offsets (Tensor[Bt + 1] int64 | None), spans (Tensor[S, 2] int64 | None):
            entity token spans of each text row in CSR form (start, end exclusive).
        focus_offsets (Tensor[Bt + 1] int64 | None), focus_spans (Tensor[F, 2] int64 | None):
            token spans (CSR) of the mentions that say where to look — present / uncertain
            findings and their laterality / anatomy words; negated mentions are left out.
            They weight AttMIM's guidance and the local alignment term. None: every entity
            span counts (no assertion information).
        prompt_label (Tensor[B] int64 | None): id of the sample's disease kind (equal ids are
            not each other's contrastive negatives); -1 when unknown.
        prompt_input_ids, prompt_attention_mask (Tensor[counts[3], L] | None): the
            disease-kind prompt of each text-only report, for the text–prompt term.

    Raises:
        ValueError: when the rows do not match ``counts`` (checked once, when the batch is
            made; shapes only, so it costs no device synchronisation).
    """

    kind: Tensor
    counts: tuple[int, int, int, int] | None = None
    images: Tensor | None = None
    input_ids: Tensor | None = None
    attention_mask: Tensor | None = None
    special_tokens_mask: Tensor | None = None
    span_offsets: Tensor | None = None
    spans: Tensor | None = None
    focus_offsets: Tensor | None = None
    focus_spans: Tensor | None = None
    prompt_label: Tensor | None = None
    prompt_input_ids: Tensor | None = None
    prompt_attention_mask: Tensor | None = None

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = _count_sorted_kinds(self.kind)
        self.counts = tuple(int(c) for c in self.counts)  # type: ignore[assignment]
        _check_rows(self)

    @property
    def batch_size(self) -> int:
        """B, the number of samples."""
        return int(self.kind.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MMCLIPBatch:
        """A copy with every tensor moved to ``device``."""
        moved = {
            f.name: value.to(device, non_blocking=non_blocking)
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)


def _count_sorted_kinds(kind: Tensor) -> tuple[int, int, int, int]:
    if kind.ndim != 1:
        raise ValueError(f"batch.kind must be 1-D; got shape {tuple(kind.shape)}")
    values = kind.tolist()
    if values != sorted(values):
        raise ValueError(
            "batch samples must be sorted by kind (PAIRED, IMAGE_PROMPT, IMAGE_ONLY, "
            f"TEXT_ONLY); got kinds {values}"
        )
    if any(v not in (0, 1, 2, 3) for v in values):
        raise ValueError(f"batch.kind holds values outside SampleKind: {values}")
    return tuple(values.count(k) for k in range(4))  # type: ignore[return-value]


def _rows(tensor: Tensor | None) -> int:
    return 0 if tensor is None else int(tensor.shape[0])


def _check_rows(batch: MMCLIPBatch) -> None:
    """Shapes against ``counts``: one image row per image sample, one text row per text
    sample, one prompt row per text-only sample (or none at all)."""
    assert batch.counts is not None
    paired, prompted, image_only, text_only = batch.counts
    if min(batch.counts) < 0 or sum(batch.counts) != batch.batch_size:
        raise ValueError(f"batch.counts {batch.counts} do not add up to {batch.batch_size} samples")
    expected = {
        "images": paired + prompted + image_only,
        "input_ids": paired + prompted + text_only,
        "attention_mask": paired + prompted + text_only,
    }
    for name, rows in expected.items():
        if _rows(getattr(batch, name)) != rows:
            raise ValueError(
                f"batch.{name} has {_rows(getattr(batch, name))} rows; its counts "
                f"{batch.counts} (PAIRED, IMAGE_PROMPT, IMAGE_ONLY, TEXT_ONLY) need {rows}"
            )
    if batch.prompt_input_ids is not None and _rows(batch.prompt_input_ids) != text_only:
        raise ValueError(
            f"batch.prompt_input_ids has {_rows(batch.prompt_input_ids)} rows, one per "
            f"text-only sample needs {text_only}"
        )
    for offsets in (batch.span_offsets, batch.focus_offsets):
        if offsets is not None and _rows(offsets) != expected["input_ids"] + 1:
            raise ValueError(
                f"span offsets have {_rows(offsets)} entries; {expected['input_ids']} text "
                f"rows need {expected['input_ids'] + 1}"
            )


@dataclass
class TextRows:
    """A contiguous group of text rows with their spans re-based (CSR).

    Attributes:
        input_ids, attention_mask (Tensor[R, L] int64).
        special_tokens_mask (Tensor[R, L] | None).
        span_offsets (Tensor[R + 1] | None), spans (Tensor[S, 2] | None): entity spans.
        focus_offsets (Tensor[R + 1] | None), focus_spans (Tensor[F, 2] | None).
    """

    input_ids: Tensor
    attention_mask: Tensor
    special_tokens_mask: Tensor | None = None
    span_offsets: Tensor | None = None
    spans: Tensor | None = None
    focus_offsets: Tensor | None = None
    focus_spans: Tensor | None = None

    @property
    def rows(self) -> int:
        """R, the number of texts."""
        return int(self.input_ids.shape[0])


@dataclass
class RowGroups:
    """A batch sliced into the groups the objective uses (views, no copies but the spans).

    Attributes:
        pair_images (Tensor[Np, C, H, W] | None), pair_texts (TextRows | None),
        pair_labels (Tensor[Np] | None): the image–text samples (reports and prompts).
        image_only (Tensor[Ni, C, H, W] | None): images without text.
        text_only (TextRows | None), text_only_labels (Tensor[Nt] | None): texts without image.
        prompts (TextRows | None): the disease-kind prompt of each text-only text.
    """

    pair_images: Tensor | None = None
    pair_texts: TextRows | None = None
    pair_labels: Tensor | None = None
    image_only: Tensor | None = None
    text_only: TextRows | None = None
    text_only_labels: Tensor | None = None
    prompts: TextRows | None = None

    @property
    def num_pairs(self) -> int:
        """Np."""
        return 0 if self.pair_images is None else int(self.pair_images.shape[0])


def _slice_csr(
    offsets: Tensor | None, spans: Tensor | None, start: int, stop: int
) -> tuple[Tensor | None, Tensor | None]:
    if offsets is None or spans is None:
        return None, None
    part = offsets[start : stop + 1]
    first, last = (int(v) for v in part[[0, -1]].tolist())
    return part - first, spans[first:last]


def _text_rows(batch: MMCLIPBatch, start: int, stop: int) -> TextRows | None:
    if stop <= start or batch.input_ids is None or batch.attention_mask is None:
        return None
    special = batch.special_tokens_mask
    span_offsets, spans = _slice_csr(batch.span_offsets, batch.spans, start, stop)
    focus_offsets, focus_spans = _slice_csr(batch.focus_offsets, batch.focus_spans, start, stop)
    return TextRows(
        input_ids=batch.input_ids[start:stop],
        attention_mask=batch.attention_mask[start:stop],
        special_tokens_mask=None if special is None else special[start:stop],
        span_offsets=span_offsets,
        spans=spans,
        focus_offsets=focus_offsets,
        focus_spans=focus_spans,
    )


def row_groups(batch: MMCLIPBatch, *, use_unpaired: bool = True) -> RowGroups:
    """The groups of ``batch`` in the order of its rows.

    Args:
        batch: a sorted :class:`MMCLIPBatch`.
        use_unpaired: False keeps the image–report pairs only (no image + prompt, image-only
            or text-only sample).

    Returns:
        :class:`RowGroups`; an empty group is None.
    """
    assert batch.counts is not None
    paired, prompted, image_only, text_only = batch.counts
    if not use_unpaired:
        prompted = image_only = text_only = 0
    pairs = paired + prompted
    labels = batch.prompt_label
    groups = RowGroups()
    if pairs and batch.images is not None:
        groups.pair_images = batch.images[:pairs]
        groups.pair_texts = _text_rows(batch, 0, pairs)
        groups.pair_labels = None if labels is None else labels[:pairs]
    if image_only and batch.images is not None:
        groups.image_only = batch.images[pairs : pairs + image_only]
    if text_only:
        groups.text_only = _text_rows(batch, pairs, pairs + text_only)
        groups.text_only_labels = None if labels is None else labels[batch.batch_size - text_only :]
        if batch.prompt_input_ids is not None:
            prompt_mask = batch.prompt_attention_mask
            if prompt_mask is None:
                prompt_mask = torch.ones_like(batch.prompt_input_ids)
            groups.prompts = TextRows(batch.prompt_input_ids, prompt_mask)
    return groups
