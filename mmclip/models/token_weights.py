"""Token weights of the guidance and the local term, and CSR span selection.

The report's tokens steer AttMIM's guidance (and the local term) with weights: entity
tokens count more, padding and special tokens not at all (DESIGN §1.1 step 3). Spans
arrive in CSR form: ``span_offsets (Tensor[B + 1] int64)`` and ``spans (Tensor[S, 2]
int64)``, ``[start, end)`` token ranges.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import AttMIMConfig

__all__ = ["entity_token_weights", "guidance_token_weights"]


def _inside_spans(
    shape: tuple[int, int], span_offsets: Tensor, spans: Tensor, device: torch.device
) -> Tensor:
    """Tokens inside any CSR span: Tensor[B, L] bool."""
    batch, length = shape
    if not spans.shape[0]:
        return torch.zeros(batch, length, dtype=torch.bool, device=device)
    counts = span_offsets[1:] - span_offsets[:-1]
    rows = torch.repeat_interleave(torch.arange(batch, device=device), counts)
    delta = torch.zeros(batch, length + 1, device=device)
    starts, ends = spans[:, 0].clamp(0, length), spans[:, 1].clamp(0, length)
    delta.index_put_((rows, starts), torch.ones_like(starts, dtype=delta.dtype), accumulate=True)
    delta.index_put_((rows, ends), -torch.ones_like(ends, dtype=delta.dtype), accumulate=True)
    return delta.cumsum(dim=1)[:, :length] > 0


def entity_token_weights(
    attention_mask: Tensor,
    span_offsets: Tensor | None,
    spans: Tensor | None,
    entity_weight: float = 2.0,
    special_tokens_mask: Tensor | None = None,
    other_weight: float = 1.0,
) -> Tensor:
    """Guidance weight of every token: 0 padding/special, ``other_weight`` token, ``entity_weight``
    inside a span.

    Args:
        attention_mask (Tensor[B, L]): 1 = real token.
        span_offsets (Tensor[B + 1] int64 | None), spans (Tensor[S, 2] int64 | None): CSR
            token spans (entities, or the focus spans of :func:`guidance_token_weights`).
        entity_weight: weight of tokens inside a span.
        special_tokens_mask (Tensor[B, L] | None): 1 = [CLS]/[SEP] (weight 0).
        other_weight: weight of the other real tokens.

    Returns:
        Tensor[B, L] float32.
    """
    valid = attention_mask > 0
    if special_tokens_mask is not None:
        valid = valid & (special_tokens_mask == 0)
    weight = valid.float() * float(other_weight)
    if spans is not None and span_offsets is not None:
        inside = _inside_spans(tuple(weight.shape), span_offsets, spans, weight.device)  # type: ignore[arg-type]
        weight = torch.where(inside & valid, torch.full_like(weight, entity_weight), weight)
    return weight


def guidance_token_weights(
    config: AttMIMConfig,
    attention_mask: Tensor,
    special_tokens_mask: Tensor | None,
    span_offsets: Tensor | None,
    spans: Tensor | None,
    focus_offsets: Tensor | None,
    focus_spans: Tensor | None,
) -> Tensor:
    """The token weights AttMIM's guidance and the local term read (DESIGN §1.1 step 3).

    With ``config.assertion_aware`` and focus spans: focus tokens (present / uncertain
    findings and their laterality / anatomy words) get ``entity_weight``, every other token
    ``context_weight`` (negated mentions included). Otherwise (the ablation, or a batch
    without focus spans): entity tokens ``entity_weight``, other tokens 1.

    Returns:
        Tensor[B, L] float32.
    """
    if config.assertion_aware and focus_offsets is not None and focus_spans is not None:
        return entity_token_weights(
            attention_mask,
            focus_offsets,
            focus_spans,
            config.entity_weight,
            special_tokens_mask,
            other_weight=config.context_weight,
        )
    return entity_token_weights(
        attention_mask, span_offsets, spans, config.entity_weight, special_tokens_mask
    )
