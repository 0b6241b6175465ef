"""Symmetric InfoNCE with a learnable clamped temperature, label-aware targets and ranks.

Distributed semantics (``torch.distributed`` initialised, world size W > 1): every rank
all-gathers the embeddings (and labels) of the global batch — local batch sizes may
differ between ranks — and computes the loss of the *global* batch, so every rank
returns the same value as one process holding the whole batch. In the backward, the
gradients of the gathered embeddings are summed over ranks and each rank keeps its own
slice: the gradient reaching a rank's local embeddings is W times its share of the
global gradient, so gradients **averaged over ranks** (what DDP does) equal the
single-process gradients exactly, consistently with the other (per-rank mean) loss
terms. Every rank must call the loss (with possibly zero local rows) at each step.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ContrastiveLoss", "all_gather_with_grad", "contrastive_targets"]


def _world(group=None) -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(group), dist.get_rank(group)
    return 1, 0


class _GatherWithGrad(torch.autograd.Function):
    """All-gather rows of different counts; backward sums over ranks, keeps own slice."""

    @staticmethod
    def forward(ctx, x: Tensor, group) -> Tensor:  # type: ignore[override]
        world, rank = _world(group)
        count = torch.tensor([x.shape[0]], device=x.device, dtype=torch.int64)
        counts = [torch.zeros_like(count) for _ in range(world)]
        dist.all_gather(counts, count, group=group)
        sizes = [int(c) for c in counts]
        most = max(sizes)
        padded = x.new_zeros((most, *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous(), group=group)
        ctx.group, ctx.sizes, ctx.rank = group, sizes, rank
        return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)], dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def all_gather_with_grad(x: Tensor, group=None) -> Tensor:
    """Concatenate ``x`` of every rank (rank order); identity on a single process.

    Args:
        x (Tensor[N_r, ...]): this rank's rows (``N_r`` may differ between ranks).

    Returns:
        Tensor[sum_r N_r, ...]; differentiable (see the module docstring).
    """
    world, _ = _world(group)
    if world == 1:
        return x
    return _GatherWithGrad.apply(x, group)


def _all_gather_nograd(x: Tensor, group=None) -> Tensor:
    world, _ = _world(group)
    if world == 1:
        return x
    with torch.no_grad():
        return _GatherWithGrad.apply(x, group)


def contrastive_targets(labels: Tensor | None, n: int, device: torch.device) -> Tensor:
    """Row-normalised label-equality targets.

    Args:
        labels (Tensor[N] int64 | None): disease-kind ids, -1 (any negative) = unknown.
        n: N.

    Returns:
        Tensor[N, N] float32: ``T[i, j] ∝ [i == j or labels[i] == labels[j] >= 0]``, rows
        summing to 1 (the identity when ``labels`` is None).
    """
    eye = torch.eye(n, device=device, dtype=torch.float32)
    if labels is None:
        return eye
    labels = labels.to(device)
    same = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
    targets = (same | eye.bool()).float()
    return targets / targets.sum(dim=1, keepdim=True)


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE between two sets of embeddings.

    ``loss = (CE(s·I·Tᵀ, Y) + CE(s·T·Iᵀ, Yᵀ)) / 2`` with soft targets ``Y`` (the identity,
    or row-normalised label equality) and ``s = exp(logit_scale)`` clamped to
    ``max_logit_scale``. Inputs are L2-normalised here.

    Args:
        init_temperature: initial temperature (``s = 1 / T``; 0.07).
        max_logit_scale: upper clamp of ``s`` (100).
        learn_temperature: make ``logit_scale`` a learnable parameter.
        label_aware: use the labels passed to :meth:`forward` (else plain InfoNCE).
        group: the process group to gather over (None = the default group).
    """

    def __init__(
        self,
        init_temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        learn_temperature: bool = True,
        label_aware: bool = True,
        group=None,
    ) -> None:
        super().__init__()
        if not init_temperature > 0:
            raise ValueError(f"init_temperature must be > 0; got {init_temperature}")
        value = torch.tensor(math.log(1.0 / init_temperature))
        if learn_temperature:
            self.logit_scale = nn.Parameter(value)
        else:
            self.register_buffer("logit_scale", value)
        self.max_logit_scale = float(max_logit_scale)
        self.label_aware = label_aware
        self.group = group

    def scale(self) -> Tensor:
        """The clamped logit scale ``min(exp(logit_scale), max_logit_scale)`` (a scalar)."""
        return self.logit_scale.exp().clamp(max=self.max_logit_scale)

    def forward(self, image_emb: Tensor, text_emb: Tensor, labels: Tensor | None = None) -> Tensor:
        """The loss of the (global) batch.

        Args:
            image_emb (Tensor[N, E]): this rank's first-modality embeddings.
            text_emb (Tensor[N, E]): the matching second-modality embeddings.
            labels (Tensor[N] int64 | None): disease-kind ids (-1 unknown).

        Returns:
            Scalar float32 tensor; 0 (still attached to the graph) when the global
            batch is empty.
        """
        if image_emb.ndim != 2 or image_emb.shape != text_emb.shape:
            raise ValueError(
                "image_emb and text_emb must both have shape (N, E); got "
                f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
            )
        if labels is not None and tuple(labels.shape) != (image_emb.shape[0],):
            raise ValueError(
                f"labels must have shape ({image_emb.shape[0]},); got {tuple(labels.shape)}"
            )
        img = F.normalize(image_emb.float(), dim=-1)
        txt = F.normalize(text_emb.float(), dim=-1)
        img = all_gather_with_grad(img, self.group)
        txt = all_gather_with_grad(txt, self.group)
        use_labels = labels if self.label_aware else None
        if use_labels is not None:
            use_labels = _all_gather_nograd(use_labels.long(), self.group)
        n = img.shape[0]
        scale = self.scale()
        if n == 0:
            return scale * 0.0 + img.sum() * 0.0 + txt.sum() * 0.0
        logits = scale * img @ txt.t()
        targets = contrastive_targets(use_labels, n, img.device)
        loss_i = torch.sum(-targets * logits.log_softmax(dim=1), dim=1).mean()
        loss_t = torch.sum(-targets.t() * logits.t().log_softmax(dim=1), dim=1).mean()
        return (loss_i + loss_t) / 2

    def extra_repr(self) -> str:
        return f"max_logit_scale={self.max_logit_scale}, label_aware={self.label_aware}"
