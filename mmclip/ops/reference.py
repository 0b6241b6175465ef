"""Pure-PyTorch references of the mmclip operators.

These functions are the fallback when the compiled library is absent and the oracle
the compiled kernels are tested against. They take exactly the arguments of the
``torch.ops.mmclip`` schemas: the random operators receive their random numbers as
tensors (drawn by the public wrappers in :mod:`mmclip.ops`), so a reference and a
kernel fed the same noise must produce the same integers.

Semantics are documented in ``docs/operators.md``; argument validation lives in
:mod:`mmclip.ops._validation` and is applied by the public wrappers, not here.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "IGNORE_INDEX",
    "attention_guided_mask",
    "cross_modal_attention_score",
    "entity_span_counts",
    "entity_span_mask",
    "masked_gather",
    "masked_gather_backward",
    "masked_scatter",
    "masked_scatter_backward",
    "normalized_weights",
]

IGNORE_INDEX = -100
_COUNT_EPS = 1e-9  # absorbs binary rounding in ratio * n before floor/ceil


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half types, the dtype itself otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def cross_modal_attention_score(q: Tensor, k: Tensor, weight: Tensor, scale: float) -> Tensor:
    """Attention each patch receives from the text, averaged over weighted tokens.

    Args:
        q (Tensor[B, T, D]): text token queries.
        k (Tensor[B, P, D]): patch keys.
        weight (Tensor[B, T]): non-negative token weights, 0 = ignore the token.
        scale: logit scale.

    Returns:
        Tensor[B, P] float32: ``sum_t w_t softmax_p(scale q_t.k_p) / sum_t w_t``; rows
        whose weights are all zero are ``1 / P``.

    The weights are divided by their row maximum (:func:`normalized_weights`) before anything is
    summed, as in the compiled kernels: the float32 sums then add values in ``[0, 1]``,
    so a row of huge finite weights still sums to 1 instead of overflowing.
    """
    batch, num_patches = k.shape[0], k.shape[1]
    if num_patches == 0:
        return torch.empty(batch, 0, dtype=torch.float32, device=k.device)
    with torch.autocast(k.device.type, enabled=False):  # float32 sums, as the kernels'
        logits = torch.bmm(q.float(), k.float().transpose(1, 2)) * scale  # [B, T, P]
        attention = logits.softmax(dim=-1)
        w = normalized_weights(weight)  # [B, T], row maxima 1
        total = w.sum(dim=1, keepdim=True)  # [B, 1], in [1, T] or 0
        scores = torch.bmm(w.unsqueeze(1), attention).squeeze(1) / total.clamp_min(1e-30)
    uniform = torch.full_like(scores, 1.0 / num_patches)
    return torch.where(total > 0, scores, uniform)


def normalized_weights(weight: Tensor) -> Tensor:
    """``weight`` (Tensor[B, T]) divided by its row maximum, as float32.

    The division runs in float64 for float64 weights (which may exceed the float32
    range), in float32 otherwise; the quotients lie in ``[0, 1]``. Rows whose maximum is
    not ``> 0`` (all zero) are returned unchanged. Mirrors ``normalized_attention_weights``
    of the C++ operators.
    """
    w = weight if weight.dtype == torch.float64 else weight.float()
    if w.shape[1] == 0:
        return w.float()
    row_max = w.amax(dim=1, keepdim=True)
    return (w / torch.where(row_max > 0, row_max, torch.ones_like(row_max))).float()


def gumbel_keys(scores: Tensor, noise: Tensor, tau: float) -> Tensor:
    """Sort keys of Gumbel-top-k, in float64: ``log(s) / tau + gumbel(noise)``.

    ``tau == 0`` returns the scores themselves (no noise), ``tau == inf`` the Gumbel
    noise alone. NaN keys become ``-inf`` so they are masked last.
    """
    if tau == 0.0:
        keys = scores.double()
    else:
        gumbel = -torch.log(-torch.log(noise.double()))
        keys = gumbel if tau == float("inf") else torch.log(scores.double()) / tau + gumbel
    return torch.nan_to_num(keys, nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))


def attention_guided_mask(
    scores: Tensor, noise: Tensor, n_mask: int, tau: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Gumbel-top-k patch masking.

    Args:
        scores (Tensor[B, P]): non-negative patch scores.
        noise (Tensor[B, P]): uniform [0, 1) noise (ignored when ``tau == 0``).
        n_mask: patches to mask per row, ``0 <= n_mask <= P``.
        tau: temperature, ``0 <= tau <= inf``.

    Returns:
        keep_idx (Tensor[B, P - n_mask] int64, ascending), mask_idx (Tensor[B, n_mask]
        int64, ascending), mask (Tensor[B, P] bool, True = masked). The ``n_mask``
        largest keys are masked; equal keys are taken in index order.
    """
    batch, num_patches = scores.shape
    keys = gumbel_keys(scores, noise, tau)
    order = torch.sort(keys, dim=1, descending=True, stable=True).indices
    mask_idx = order[:, :n_mask].sort(dim=1).values
    keep_idx = order[:, n_mask:].sort(dim=1).values
    mask = torch.zeros(batch, num_patches, dtype=torch.bool, device=scores.device)
    mask.scatter_(1, mask_idx, True)
    return keep_idx, mask_idx, mask


def masked_gather(x: Tensor, idx: Tensor) -> Tensor:
    """``out[b, j] = x[b, idx[b, j]]``: x (Tensor[B, P, D]), idx (Tensor[B, K]) → [B, K, D]."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def masked_gather_backward(grad: Tensor, idx: Tensor, num_patches: int) -> Tensor:
    """Gradient of :func:`masked_gather` w.r.t. x: scatter-add of grad [B, K, D] → [B, P, D]."""
    batch, _, dim = grad.shape
    acc_dtype = _accumulation_dtype(grad.dtype)
    out = torch.zeros(batch, num_patches, dim, dtype=acc_dtype, device=grad.device)
    out.scatter_add_(1, idx.unsqueeze(-1).expand(-1, -1, dim), grad.to(acc_dtype))
    return out.to(grad.dtype)


def masked_scatter(
    visible: Tensor, keep_idx: Tensor, mask_token: Tensor, num_patches: int
) -> Tensor:
    """Put visible tokens back in place and ``mask_token`` everywhere else.

    Args:
        visible (Tensor[B, K, D]), keep_idx (Tensor[B, K], unique per row),
        mask_token (Tensor[D]), num_patches: P.

    Returns:
        Tensor[B, P, D].
    """
    batch, _, dim = visible.shape
    out = mask_token.to(visible.dtype).expand(batch, num_patches, dim).clone()
    out.scatter_(1, keep_idx.unsqueeze(-1).expand(-1, -1, dim), visible)
    return out


def masked_scatter_backward(grad: Tensor, keep_idx: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`masked_scatter`.

    Args:
        grad (Tensor[B, P, D]), keep_idx (Tensor[B, K]).

    Returns:
        grad_visible (Tensor[B, K, D]) and grad_mask_token (Tensor[D]): the sum of
        ``grad`` over the positions not in ``keep_idx`` (half types accumulate in float32).
    """
    batch, num_patches, _ = grad.shape
    grad_visible = masked_gather(grad, keep_idx)
    masked = torch.ones(batch, num_patches, dtype=torch.bool, device=grad.device)
    masked.scatter_(1, keep_idx, False)
    acc_dtype = _accumulation_dtype(grad.dtype)
    grad_token = (grad.to(acc_dtype) * masked.unsqueeze(-1)).sum(dim=(0, 1))
    return grad_visible, grad_token.to(grad.dtype)


def entity_span_counts(
    n_maskable: Tensor, target_ratio: float, min_ratio: float, max_ratio: float
) -> tuple[Tensor, Tensor]:
    """Per-sample token budget of :func:`entity_span_mask`.

    Args:
        n_maskable (Tensor[B] int64): maskable tokens per sample.

    Returns:
        n_target, n_max (Tensor[B] int64): ``clamp(round(target·n), ceil(min·n),
        floor(max·n))`` with both bounds at least 1 when ``n > 0``; 0 when ``n == 0``.
    """
    n = n_maskable.double()
    n_max = torch.floor(max_ratio * n + _COUNT_EPS).clamp_min(1.0)
    n_min = torch.ceil(min_ratio * n - _COUNT_EPS).clamp_min(1.0).minimum(n_max)
    n_target = torch.round(target_ratio * n).clamp(min=n_min, max=n_max)
    has_tokens = n_maskable > 0
    zero = torch.zeros_like(n)
    return (
        torch.where(has_tokens, n_target, zero).long(),
        torch.where(has_tokens, n_max, zero).long(),
    )


def entity_span_mask(
    input_ids: Tensor,
    attention_mask: Tensor,
    special_tokens_mask: Tensor,
    span_offsets: Tensor,
    spans: Tensor,
    span_noise: Tensor,
    token_noise: Tensor,
    action_noise: Tensor,
    random_ids: Tensor,
    entity_prob: float,
    target_ratio: float,
    min_ratio: float,
    max_ratio: float,
    mask_token_id: int,
) -> tuple[Tensor, Tensor]:
    """Whole-entity masking topped up with random tokens, BERT 80/10/10 replacement.

    Args:
        input_ids (Tensor[B, L] int64); attention_mask, special_tokens_mask (Tensor[B, L]
        bool); span_offsets (Tensor[B + 1] int64) and spans (Tensor[S, 2] int64, token
        start, end exclusive): the CSR entity spans; span_noise (Tensor[S]), token_noise,
        action_noise (Tensor[B, L]) float32 uniform [0, 1); random_ids (Tensor[B, L] int64).

    Algorithm per sample: maskable = attended and not special, n = their count, budget
    from :func:`entity_span_counts`. Spans in listed order whose ``span_noise <
    entity_prob`` are masked whole (their maskable tokens) if the count stays within
    ``n_max``; then the unchosen maskable tokens with the smallest ``token_noise`` (ties by
    index) top the count up to ``n_target``. A chosen token becomes ``mask_token_id`` when
    ``action_noise < 0.8``, ``random_ids`` when ``< 0.9``, else stays.

    Returns:
        masked_ids (Tensor[B, L] int64), labels (Tensor[B, L] int64, −100 where not chosen).
    """
    batch, length = input_ids.shape
    device = input_ids.device
    maskable = attention_mask & ~special_tokens_mask
    n_target, n_max = entity_span_counts(maskable.sum(dim=1), target_ratio, min_ratio, max_ratio)
    chosen = torch.zeros(batch, length, dtype=torch.bool, device=device)
    positions = torch.arange(length, device=device)
    span_chosen = (span_noise < entity_prob).tolist()
    offsets = span_offsets.tolist()
    spans_list = spans.tolist()
    for b in range(batch):
        count = 0
        limit = int(n_max[b])
        for s in range(offsets[b], offsets[b + 1]):
            if not span_chosen[s]:
                continue
            start, end = spans_list[s]
            new = maskable[b] & ~chosen[b] & (positions >= start) & (positions < end)
            added = int(new.sum())
            if count + added <= limit:
                chosen[b] |= new
                count += added
        need = int(n_target[b]) - count
        if need > 0:
            candidates = maskable[b] & ~chosen[b]
            keys = torch.where(candidates, token_noise[b].double(), float("inf"))
            order = torch.sort(keys, stable=True).indices[:need]
            chosen[b, order] = True
    replace_mask = chosen & (action_noise < 0.8)
    replace_random = chosen & (action_noise >= 0.8) & (action_noise < 0.9)
    masked_ids = torch.where(replace_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    masked_ids = torch.where(replace_random, random_ids, masked_ids)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return masked_ids, labels
