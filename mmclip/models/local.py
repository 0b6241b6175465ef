"""Local image–text alignment: report tokens find the patches that show them (DESIGN §1.1 6b).

The global contrastive term aligns pooled embeddings; nothing in it makes one token's
similarity to one patch mean anything, and AttMIM's guidance reads exactly that similarity.
This term trains it. Three designs are implemented (``LocalConfig.kind``); which one is
the default, and why, is measured in ``docs/models.md``:

``"attention"`` (GLoRIA-style)
    For text ``i``, image ``j`` and focus token ``t`` (weight ``w_it > 0``)::

        a_ijt = softmax_p(s_att · <q_it, k_jp>)          attention of the token over patches
        c_ijt = Σ_p a_ijtp k_jp                          the region the token points at
        r_ijt = cos(c_ijt, q_it)                         how well that region shows the token
        S_ij  = Σ_t w_it r_ijt / Σ_t w_it                 text–image local similarity

    and a symmetric InfoNCE over ``s_loc · S`` with label-aware targets (also for
    ``"max"``). To tell its own image from the others, a token must attend to the patches
    where its image differs from the others — the lesion — so ``a_iit`` becomes a
    localisation map; it is the very map the guidance reads
    (:func:`cross_modal_attention_score` of the same ``q``, ``k``, ``w`` and ``s_att``).

``"max"`` (FILIP-style)
    ``S_ij = Σ_t w_it max_p <q_it, k_jp> / Σ_t w_it``: each token's best patch.

``"mil"`` (multiple-instance NCE, MIL-NCE-style; :func:`mil_token_loss`)
    For focus token ``t`` of text ``i``, one softmax over *all* patches of *all* images of
    the batch, ``s_att · <q_it, k_jp>``; the loss is ``-log`` of its mass on the patches of
    ``i``'s positive images (its own and those of the same disease kind). Mass on a patch
    that every image has (background, normal lung) is mostly spent on negatives, so the
    token must put it on what only its positives show: the lesion. The softmax restricted to
    one image is exactly the map the guidance reads.

``q`` and ``k`` are the L2-normalised projections ``Pt`` / ``Pv`` of the token and patch
states. Only *focus* tokens count (present / uncertain findings and their laterality and
anatomy words, :func:`mmclip.text.focus_spans`); texts without one (normal reports) are left
out of the term. Negatives are the other images of the rank's batch (no collective: the
term never waits on another rank).

Cost: ``O(Bt · Bi · F · P · (P + E))`` for ``F`` focus tokens per text, computed in chunks of
texts so that no ``[chunk, Bi, F, P]`` block exceeds ``chunk_elements``; ``c_ijt`` is never
formed in ``E`` dimensions: ``|c_ijt|² = a_ijtᵀ (K_j K_jᵀ) a_ijt``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import LocalConfig
from .contrastive import contrastive_targets

__all__ = ["LocalAlignmentLoss", "compact_tokens", "local_similarity"]

LOCAL_KINDS = ("attention", "max", "mil")


def compact_tokens(q: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Keep only tokens with a positive weight, left-aligned and zero-padded.

    Args:
        q (Tensor[B, T, E]), weight (Tensor[B, T]).

    Returns:
        ``(q_f, w_f)``: Tensor[B, F, E] and Tensor[B, F] with ``F`` the most focus tokens of
        a row (0 weight on padding).
    """
    keep = weight > 0
    count = int(keep.sum(dim=1).max()) if weight.numel() else 0
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :count]
    q_f = torch.gather(q, 1, order[..., None].expand(-1, -1, q.shape[-1]))
    w_f = torch.gather(weight, 1, order) * torch.gather(keep, 1, order)
    return q_f, w_f


def local_similarity(
    q: Tensor,
    weight: Tensor,
    k: Tensor,
    attention_scale: Tensor | float,
    kind: str = "attention",
    chunk_elements: int = 1 << 24,
) -> Tensor:
    """Local similarity of every text with every image.

    Args:
        q (Tensor[Bt, T, E]): L2-normalised token embeddings.
        weight (Tensor[Bt, T]): token weights (0 = ignored); every row needs one > 0.
        k (Tensor[Bi, P, E]): L2-normalised patch embeddings.
        attention_scale: ``s_att`` of the token → patch softmax (``"attention"``).
        kind: ``"attention"`` or ``"max"`` (see the module docstring).
        chunk_elements: largest ``[chunk, Bi, F, P]`` block computed at once.

    Returns:
        Tensor[Bt, Bi] float32, ``S_ij`` in ``[-1, 1]``.
    """
    if kind not in LOCAL_KINDS:
        raise ValueError(f"kind must be one of {LOCAL_KINDS}; got {kind!r}")
    q_f, w_f = compact_tokens(q.float(), weight.float())
    w_f = w_f / w_f.sum(dim=1, keepdim=True).clamp_min(1e-12)
    k = k.float()
    n_img, n_patch = k.shape[0], k.shape[1]
    per_text = max(1, n_img * q_f.shape[1] * n_patch)
    step = max(1, chunk_elements // per_text)
    gram = k @ k.transpose(1, 2) if kind == "attention" else None  # [Bi, P, P]
    rows = []
    for start in range(0, q_f.shape[0], step):
        qc, wc = q_f[start : start + step], w_f[start : start + step]
        sim = torch.einsum("ite,jpe->ijtp", qc, k)  # [c, Bi, F, P]
        if kind == "attention":
            attn = torch.softmax(sim * attention_scale, dim=-1)
            dot = (attn * sim).sum(dim=-1)  # <c_ijt, q_it>
            norm_sq = (torch.einsum("ijtp,jpr->ijtr", attn, gram) * attn).sum(dim=-1)
            r = dot / norm_sq.clamp_min(1e-12).sqrt()
        else:
            r = sim.amax(dim=-1)
        rows.append((r * wc[:, None, :]).sum(dim=-1))
    if not rows:
        return k.new_zeros((0, n_img))
    return torch.cat(rows, dim=0)


def mil_token_loss(
    q: Tensor,
    weight: Tensor,
    k: Tensor,
    positives: Tensor,
    attention_scale: Tensor | float,
    chunk_elements: int = 1 << 24,
) -> Tensor:
    """Multiple-instance token → patch NCE, averaged over the focus tokens of every text.

    For focus token ``t`` of text ``i``, a softmax over *all* patches of *all* images of the
    batch (``s_att · <q_it, k_jp>``); the loss is ``-log`` of the mass on the patches of the
    positive images of ``i`` (its own, and those of the same disease kind).

    Args:
        q (Tensor[Bt, T, E]), weight (Tensor[Bt, T]), k (Tensor[Bi, P, E]): as in
            :func:`local_similarity`.
        positives (Tensor[Bt, Bi] bool): the positive images of each text.
        attention_scale: ``s_att``.
        chunk_elements: largest ``[chunk, F, Bi, P]`` block computed at once.

    Returns:
        Scalar float32: mean over texts of the focus-weighted mean token loss.
    """
    q_f, w_f = compact_tokens(q.float(), weight.float())
    w_f = w_f / w_f.sum(dim=1, keepdim=True).clamp_min(1e-12)
    k = k.float()
    n_img, n_patch = k.shape[0], k.shape[1]
    step = max(1, chunk_elements // max(1, n_img * q_f.shape[1] * n_patch))
    losses = []
    for start in range(0, q_f.shape[0], step):
        qc, wc = q_f[start : start + step], w_f[start : start + step]
        logits = torch.einsum("ite,jpe->itjp", qc, k) * attention_scale  # [c, F, Bi, P]
        flat = logits.flatten(2)
        pos = positives[start : start + step, None, :, None].expand_as(logits).flatten(2)
        token_loss = torch.logsumexp(flat, dim=-1) - torch.logsumexp(
            flat.masked_fill(~pos, float("-inf")), dim=-1
        )  # [c, F]
        losses.append((token_loss * wc).sum(dim=1))
    return torch.cat(losses).mean()


class LocalAlignmentLoss(nn.Module):
    """Token–patch contrastive loss of paired samples (see the module docstring).

    Args:
        config: :class:`~mmclip.models.LocalConfig`.
        label_aware: samples sharing a non-negative label are not negatives.
    """

    def __init__(self, config: LocalConfig | None = None, label_aware: bool = True) -> None:
        super().__init__()
        config = config or LocalConfig()
        if config.kind not in LOCAL_KINDS:
            raise ValueError(f"local.kind must be one of {LOCAL_KINDS}; got {config.kind!r}")
        for name in ("init_temperature", "init_attention_temperature"):
            if not getattr(config, name) > 0:
                raise ValueError(f"local.{name} must be > 0; got {getattr(config, name)}")
        self.config = config
        self.label_aware = label_aware
        # "mil" has no text–image similarity logits: no s_loc (nothing left untrained).
        scales = {"attention_logit_scale": config.init_attention_temperature}
        if config.kind != "mil":
            scales["logit_scale"] = config.init_temperature
        for name, temperature in scales.items():
            value = torch.tensor(math.log(1.0 / temperature))
            if config.learn_temperature:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def scale(self) -> Tensor:
        """``s_loc``: logit scale of the text–image local similarities (clamped).

        Raises:
            ValueError: for ``kind="mil"``, which has none.
        """
        if self.config.kind == "mil":
            raise ValueError('local.kind="mil" has no text–image logit scale')
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def attention_scale(self) -> Tensor:
        """``s_att``: scale of the token → patch softmax (clamped); the guidance uses it."""
        return self.attention_logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def forward(self, q: Tensor, weight: Tensor, k: Tensor, labels: Tensor | None = None) -> Tensor:
        """The loss of ``N`` pairs (row ``i`` of ``q`` goes with row ``i`` of ``k``).

        Args:
            q (Tensor[N, T, E]): token embeddings (normalised here).
            weight (Tensor[N, T]): focus weights; rows without a positive weight are left
                out.
            k (Tensor[N, P, E]): patch embeddings (normalised here).
            labels (Tensor[N] int64 | None): disease-kind ids (-1 unknown).

        Returns:
            Scalar float32; 0 attached to the graph when fewer than two rows have focus.
        """
        if q.ndim != 3 or k.ndim != 3 or q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
            raise ValueError(
                f"q must be (N, T, E) and k (N, P, E); got {tuple(q.shape)} and {tuple(k.shape)}"
            )
        if tuple(weight.shape) != tuple(q.shape[:2]):
            raise ValueError(
                f"weight must have shape {tuple(q.shape[:2])}; got {tuple(weight.shape)}"
            )
        zero = q.sum() * 0.0 + k.sum() * 0.0
        for _, value in [*self.named_parameters(), *self.named_buffers()]:
            zero = zero + value * 0.0
        valid = (weight > 0).any(dim=1)
        if int(valid.sum()) < 2:
            return zero.float()
        q = F.normalize(q[valid].float(), dim=-1)
        k = F.normalize(k[valid].float(), dim=-1)
        use = labels[valid] if (labels is not None and self.label_aware) else None
        targets = contrastive_targets(use, q.shape[0], q.device)
        if self.config.kind == "mil":
            positives = targets > 0
            loss = mil_token_loss(
                q, weight[valid], k, positives, self.attention_scale(), self.config.chunk_elements
            )
            return loss + zero
        sim = local_similarity(
            q,
            weight[valid],
            k,
            self.attention_scale(),
            self.config.kind,
            self.config.chunk_elements,
        )
        logits = self.scale() * sim
        loss_t = torch.sum(-targets * logits.log_softmax(dim=1), dim=1).mean()
        loss_i = torch.sum(-targets.t() * logits.t().log_softmax(dim=1), dim=1).mean()
        return (loss_t + loss_i) / 2 + zero

    def extra_repr(self) -> str:
        return f"kind={self.config.kind!r}, label_aware={self.label_aware}"
