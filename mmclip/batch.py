"""The batch contract between the data pipeline and the model.

A batch holds ``B`` samples of four kinds (:class:`SampleKind`). Images and texts are
stored as separate stacks, each row pointing back at its sample, so a batch that
mixes paired, image-only and text-only samples carries no padding images or texts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

__all__ = ["MMCLIPBatch", "SampleKind", "check_batch_rows"]


class SampleKind(enum.IntEnum):
    """What a sample holds and which loss terms it feeds."""

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
    """One training batch.

    Attributes:
        kind (Tensor[B] int64): :class:`SampleKind` of each sample.
        images (Tensor[Bi, C, H, W] float | None): images of the samples that have one.
        image_index (Tensor[Bi] int64): sample index of each image row (ascending).
        input_ids (Tensor[Bt, L] int64 | None): tokenised text (report or prompt).
        attention_mask (Tensor[Bt, L] int64 | None): 1 = real token, 0 = padding.
        special_tokens_mask (Tensor[Bt, L] int64 | None): 1 = [CLS]/[SEP]/….
        span_offsets (Tensor[Bt + 1] int64 | None), spans (Tensor[S, 2] int64 | None):
            entity token spans of each text row in CSR form (start, end exclusive).
        focus_offsets (Tensor[Bt + 1] int64 | None), focus_spans (Tensor[F, 2] int64 | None):
            token spans (CSR) of the mentions that say where to look — present / uncertain
            findings and their laterality / anatomy words; negated mentions are left out.
            They weight AttMIM's guidance and the local alignment term. None: every entity
            span counts (no assertion information).
        text_index (Tensor[Bt] int64): sample index of each text row (ascending).
        prompt_label (Tensor[B] int64): id of the sample's disease kind (equal ids are not
            each other's contrastive negatives); -1 when unknown.
        prompt_input_ids, prompt_attention_mask (Tensor[Bp, L] | None): the disease-kind
            prompt of text-only reports, for the text–prompt contrastive term.
        prompt_index (Tensor[Bp] int64): sample index of each prompt row.
    """

    kind: Tensor
    images: Tensor | None = None
    image_index: Tensor | None = None
    input_ids: Tensor | None = None
    attention_mask: Tensor | None = None
    special_tokens_mask: Tensor | None = None
    span_offsets: Tensor | None = None
    spans: Tensor | None = None
    focus_offsets: Tensor | None = None
    focus_spans: Tensor | None = None
    text_index: Tensor | None = None
    prompt_label: Tensor | None = None
    prompt_input_ids: Tensor | None = None
    prompt_attention_mask: Tensor | None = None
    prompt_index: Tensor | None = None

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


def check_batch_rows(batch: MMCLIPBatch) -> None:
    """Raise ``ValueError`` when the batch's rows do not match its sample kinds.

    Each PAIRED / IMAGE_PROMPT sample needs an image row and a text row, IMAGE_ONLY an image
    row only, TEXT_ONLY a text row only; ``image_index`` / ``text_index`` give the sample of
    every row. Skipped while ``torch.compile`` traces (dynamo mis-evaluates the enum
    comparisons); the trainer then calls it eagerly on each batch before the compiled forward.
    """
    if torch.compiler.is_compiling():
        return
    kind = batch.kind
    if kind.ndim != 1:
        raise ValueError(f"batch.kind must be 1-D; got shape {tuple(kind.shape)}")
    b = kind.shape[0]
    if batch.images is not None:
        if batch.image_index is None or batch.image_index.shape[0] != batch.images.shape[0]:
            raise ValueError("batch.image_index must give the sample of every image row")
    if batch.input_ids is not None:
        if batch.text_index is None or batch.text_index.shape[0] != batch.input_ids.shape[0]:
            raise ValueError("batch.text_index must give the sample of every text row")
        if batch.attention_mask is None:
            raise ValueError("batch.attention_mask is required with input_ids")
    has_image = torch.zeros(b, dtype=torch.bool, device=kind.device)
    has_text = torch.zeros(b, dtype=torch.bool, device=kind.device)
    if batch.images is not None and batch.image_index is not None:
        has_image = has_image.index_fill(0, batch.image_index, True)
    if batch.input_ids is not None and batch.text_index is not None:
        has_text = has_text.index_fill(0, batch.text_index, True)
    needs_image = (
        (kind == SampleKind.PAIRED)
        | (kind == SampleKind.IMAGE_PROMPT)
        | (kind == SampleKind.IMAGE_ONLY)
    )
    needs_text = (
        (kind == SampleKind.PAIRED)
        | (kind == SampleKind.IMAGE_PROMPT)
        | (kind == SampleKind.TEXT_ONLY)
    )
    bad = (has_image != needs_image) | (has_text != needs_text)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"batch sample {i} of kind {SampleKind(int(kind[i])).name} has "
            f"image={bool(has_image[i])}, text={bool(has_text[i])}, "
            "which its kind does not allow"
        )
