"""``entity_span_mask``: mask whole medical-entity spans, top up with random tokens."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import _validation as v
from . import reference
from ._dispatch import compiled_for
from ._library import has_ops

__all__ = ["EntitySpanMask", "entity_span_mask"]


def _as_bool(name: str, mask: Tensor, ids: Tensor) -> Tensor:
    v.check_tensor(name, mask, 2)
    v.check_device("input_ids", ids, **{name: mask})
    v.check_shape(name, mask, tuple(ids.shape), "the shape of input_ids")
    if mask.is_floating_point() or mask.is_complex():
        raise ValueError(f"{name} must be bool or integer; got {mask.dtype}")
    return mask if mask.dtype == torch.bool else mask != 0


def _check_spans(span_offsets: Tensor, spans: Tensor, batch: int, length: int) -> None:
    """Require well-formed CSR spans (every device with values: the CUDA kernels would
    skip malformed spans silently where the CPU kernel raises)."""
    if not v.has_values(span_offsets):
        return
    offsets = span_offsets.tolist()
    if offsets[0] != 0 or offsets[-1] != spans.shape[0]:
        raise ValueError(
            f"span_offsets must start at 0 and end at the span count {spans.shape[0]}; "
            f"got {offsets[0]} … {offsets[-1]}"
        )
    if any(a > b for a, b in itertools.pairwise(offsets)):
        raise ValueError("span_offsets must be non-decreasing")
    if v.has_values(spans):
        starts, ends = spans[:, 0], spans[:, 1]
        bad = (starts < 0) | (ends < starts) | (ends > length)
        if bool(bad.any()):
            s = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"spans[{s}] = {tuple(spans[s].tolist())} lies outside the sequence [0, {length}) "
                "or ends before it starts"
            )


# The noise draw and the validation run eagerly under torch.compile (dynamo cannot trace
# torch.rand with a generator over symbolic sizes); the rest of a compiled model is traced.
@torch.compiler.disable
def entity_span_mask(
    input_ids: Tensor,
    attention_mask: Tensor,
    special_tokens_mask: Tensor,
    span_offsets: Tensor,
    spans: Tensor,
    *,
    entity_prob: float,
    target_ratio: float,
    min_ratio: float,
    max_ratio: float,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Mask whole entity spans, top up with random tokens, replace BERT-style.

    Each entity span is masked whole with probability ``entity_prob`` (as long as the
    sample stays within ``max_ratio``); random single tokens then top the sample up to
    ``target_ratio`` of its maskable tokens; the count always lies in
    ``[min_ratio, max_ratio]`` of them, and is at least one when any token is maskable.
    Chosen tokens become ``mask_token_id`` (80 %), a random id in ``[0, vocab_size)``
    (10 %) or stay (10 %). Special and padding tokens are never chosen. The random
    numbers come from ``generator`` on the device of ``input_ids``.

    Args:
        input_ids (Tensor[B, L] int64): token ids.
        attention_mask (Tensor[B, L] bool or integer): 0 = padding.
        special_tokens_mask (Tensor[B, L] bool or integer): 1 = [CLS]/[SEP]/… .
        span_offsets (Tensor[B + 1] int64): CSR offsets of each sample's spans.
        spans (Tensor[S, 2] int64): token start and end (exclusive) of each span.
        entity_prob, target_ratio, min_ratio, max_ratio: probabilities / ratios in [0, 1],
            ``min_ratio <= max_ratio``.
        mask_token_id: id of [MASK]; vocab_size: size of the vocabulary (random ids).

    Returns:
        masked_ids (Tensor[B, L] int64), labels (Tensor[B, L] int64: the original id at
        chosen tokens, -100 elsewhere).
    """
    ids = v.check_tensor("input_ids", input_ids, 2)
    v.check_dtype("input_ids", ids, (torch.int64,))
    attended = _as_bool("attention_mask", attention_mask, ids)
    special = _as_bool("special_tokens_mask", special_tokens_mask, ids)
    batch, length = ids.shape
    v.check_tensor("span_offsets", span_offsets, 1)
    v.check_dtype("span_offsets", span_offsets, (torch.int64,))
    v.check_shape("span_offsets", span_offsets, (batch + 1,), "batch size + 1")
    v.check_tensor("spans", spans, 2)
    v.check_dtype("spans", spans, (torch.int64,))
    if spans.shape[1] != 2:
        raise ValueError(
            f"spans must have shape (S, 2) (token start, end); got {tuple(spans.shape)}"
        )
    v.check_device("input_ids", ids, span_offsets=span_offsets, spans=spans)
    settings = _MaskSettings.checked(entity_prob, target_ratio, min_ratio, max_ratio)
    vocab_size, mask_token_id = int(vocab_size), int(mask_token_id)
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1; got {vocab_size}")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(
            f"mask_token_id must lie in [0, vocab_size={vocab_size}); got {mask_token_id}"
        )
    _check_spans(span_offsets, spans, batch, length)
    device = ids.device
    span_noise = torch.rand(spans.shape[0], generator=generator, device=device)
    token_noise = torch.rand(batch, length, generator=generator, device=device)
    action_noise = torch.rand(batch, length, generator=generator, device=device)
    random_ids = torch.randint(vocab_size, (batch, length), generator=generator, device=device)
    args = (
        ids,
        attended,
        special,
        span_offsets,
        spans,
        span_noise,
        token_noise,
        action_noise,
        random_ids,
        *settings.as_tuple(),
        mask_token_id,
    )
    if compiled_for("entity_span_mask", device):
        return torch.ops.mmclip.entity_span_mask(*args)
    return reference.entity_span_mask(*args)


@dataclass(frozen=True)
class _MaskSettings:
    entity_prob: float
    target_ratio: float
    min_ratio: float
    max_ratio: float

    @classmethod
    def checked(cls, entity_prob: float, target_ratio: float, min_ratio: float, max_ratio: float):
        settings = cls(
            v.check_ratio("entity_prob", entity_prob),
            v.check_ratio("target_ratio", target_ratio),
            v.check_ratio("min_ratio", min_ratio),
            v.check_ratio("max_ratio", max_ratio),
        )
        if settings.min_ratio > settings.max_ratio:
            raise ValueError(
                f"min_ratio ({settings.min_ratio}) must not exceed max_ratio ({settings.max_ratio})"
            )
        return settings

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.entity_prob, self.target_ratio, self.min_ratio, self.max_ratio)


class EntitySpanMask(nn.Module):
    """Module form of :func:`entity_span_mask` holding the masking settings.

    Defaults follow the design: ``entity_prob=0.6``, ``target_ratio=0.3`` clipped to
    ``[0.15, 0.5]``.
    """

    def __init__(
        self,
        mask_token_id: int,
        vocab_size: int,
        entity_prob: float = 0.6,
        target_ratio: float = 0.3,
        min_ratio: float = 0.15,
        max_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        _MaskSettings.checked(entity_prob, target_ratio, min_ratio, max_ratio)
        self.mask_token_id = mask_token_id
        self.vocab_size = vocab_size
        self.entity_prob = entity_prob
        self.target_ratio = target_ratio
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        special_tokens_mask: Tensor,
        span_offsets: Tensor,
        spans: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """input_ids (Tensor[B, L]) … → masked_ids [B, L], labels [B, L]."""
        return entity_span_mask(
            input_ids,
            attention_mask,
            special_tokens_mask,
            span_offsets,
            spans,
            entity_prob=self.entity_prob,
            target_ratio=self.target_ratio,
            min_ratio=self.min_ratio,
            max_ratio=self.max_ratio,
            mask_token_id=self.mask_token_id,
            vocab_size=self.vocab_size,
            generator=generator,
        )

    def extra_repr(self) -> str:
        return (
            f"entity_prob={self.entity_prob}, target_ratio={self.target_ratio}, "
            f"ratio_range=[{self.min_ratio}, {self.max_ratio}], mask_token_id={self.mask_token_id}"
        )


if has_ops():

    @torch.library.register_fake("mmclip::entity_span_mask")
    def _(input_ids: Tensor, *args) -> tuple[Tensor, Tensor]:
        return torch.empty_like(input_ids), torch.empty_like(input_ids)
