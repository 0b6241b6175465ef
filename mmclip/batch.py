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

__all__ = ["MMCLIPBatch", "SampleKind"]


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
