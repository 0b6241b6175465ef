"""``cross_modal_attention_score``: how much attention each patch receives from the text."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import _validation as v
from . import reference
from ._dispatch import compiled_for
from ._library import has_ops

__all__ = ["CrossModalAttentionScore", "cross_modal_attention_score"]


def cross_modal_attention_score(
    q: Tensor, k: Tensor, weight: Tensor, scale: float | None = None
) -> Tensor:
    """Attention each image patch receives from the text tokens.

    For every text token, a softmax over the ``P`` patches of ``scale · q·k``; the result
    is the ``weight``-normalised mean of those distributions over tokens, so each row
    sums to 1 (however large the finite weights: they are divided by their row maximum
    first). A row whose weights are all zero gives ``1 / P`` everywhere. The compiled
    kernels never build the ``[B, T, P]`` attention tensor.

    The operator is **not differentiable**: it is the no-grad guidance of AttMIM, and
    its inputs are detached.

    Args:
        q (Tensor[B, T, D]): text token queries (float32, float16, bfloat16 or float64).
        k (Tensor[B, P, D]): patch keys, same dtype as ``q``.
        weight (Tensor[B, T]): finite non-negative token weights; 0 ignores a token
            (padding).
        scale: logit scale; defaults to ``1 / sqrt(D)``.

    Returns:
        Tensor[B, P] float32.

    Raises:
        ValueError: a bad rank, dtype, device or shape, a non-finite ``scale``, or a
            negative / NaN / infinite weight (on every device, before any kernel runs).
    """
    v.check_tensor("q", q, 3)
    v.check_tensor("k", k, 3)
    v.check_tensor("weight", weight, 2)
    v.check_dtype("q", q, v.FLOAT_DTYPES)
    v.check_dtype("k", k, (q.dtype,))
    v.check_dtype("weight", weight, v.FLOAT_DTYPES)
    v.check_device("q", q, k=k, weight=weight)
    batch, tokens, dim = q.shape
    v.check_shape("k", k, (batch, k.shape[1], dim), "batch and feature sizes of q")
    v.check_shape("weight", weight, (batch, tokens), "batch and token sizes of q")
    if scale is None:
        scale = 1.0 / math.sqrt(dim) if dim > 0 else 1.0
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite; got {scale}")
    q, k, weight = q.detach(), k.detach(), weight.detach()
    v.check_finite_nonnegative("weight", weight, "0 ignores a token")
    if compiled_for("cross_modal_attention_score", q.device):
        return torch.ops.mmclip.cross_modal_attention_score(q, k, weight, scale)
    return reference.cross_modal_attention_score(q, k, weight, scale)


class CrossModalAttentionScore(nn.Module):
    """Module form of :func:`cross_modal_attention_score` with a fixed ``scale``."""

    def __init__(self, scale: float | None = None) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, q: Tensor, k: Tensor, weight: Tensor) -> Tensor:
        """q (Tensor[B, T, D]), k (Tensor[B, P, D]), weight (Tensor[B, T]) → Tensor[B, P]."""
        return cross_modal_attention_score(q, k, weight, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


if has_ops():

    @torch.library.register_fake("mmclip::cross_modal_attention_score")
    def _(q: Tensor, k: Tensor, weight: Tensor, scale: float) -> Tensor:
        torch._check(k.shape[0] == q.shape[0], lambda: "k and q batch sizes differ")
        return q.new_empty((q.shape[0], k.shape[1]), dtype=torch.float32)
