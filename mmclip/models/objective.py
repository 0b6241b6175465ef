"""The pre-training objective of DESIGN §1.1–1.2: every loss term of a batch, on tensors.

:class:`PretrainingObjective` owns the heads (contrastive, local, AttMIM's decoder, EntMLM's
decoder, text–prompt) and no tower: :class:`~mmclip.models.MMCLIPModel` holds the towers and
calls ``self.objective(self, batch)``. The objective encodes each paired image **once** for
the whole view, builds the masked view from the guidance of that pass, and hands tensors to
the heads. docs/batch-flow.md follows one batch through.

Which samples feed which term (groups of :func:`mmclip.batch.row_groups`):

=================  ======  ============================  ==========================  =====
kind               clip    mim                           mlm                         tp
=================  ======  ============================  ==========================  =====
PAIRED             yes     guided, text cross-attention  image cross-attention       no
IMAGE_PROMPT       yes     guided, text cross-attention  image cross-attention       no
IMAGE_ONLY         no      uniform, no cross-attention   —                           no
TEXT_ONLY          no      —                             no cross-attention          yes*
=================  ======  ============================  ==========================  =====

(*) text-only reports that come with a disease-kind prompt. With ``use_unpaired=False``
only PAIRED samples are used. A term with weight 0 is not computed; a term with no
sample in the batch is ``None`` in the output and left out of the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batch import MMCLIPBatch, RowGroups, TextRows, row_groups
from .attmim import MIMHead, MIMOutput, PatchGrid, text_guidance
from .config import MMCLIPConfig
from .contrastive import ContrastiveLoss
from .ddp import connected_zero, is_distributed
from .entmlm import MLMHead, MLMOutput
from .local import LocalAlignmentLoss
from .token_weights import guidance_token_weights

if TYPE_CHECKING:
    from .mmclip import MMCLIPModel

__all__ = ["MMCLIPOutput", "PretrainingObjective"]


@dataclass
class MMCLIPOutput:
    """Output of :meth:`PretrainingObjective.forward` (and ``MMCLIPModel.forward``).

    Attributes:
        loss: weighted sum of the present terms (a graph-attached 0 when none).
        clip, clip_masked, local, mim, mlm, tp: scalar terms (the names of
            :data:`~mmclip.models.config.LOSS_TERMS`), ``None`` when absent or switched off.
        logit_scale: the clamped contrastive logit scale (detached).
        tau: masking temperature of the step.
        mlm_accuracy: accuracy on the masked tokens (detached) or None.
        mim_mask (Tensor[Np, P] bool | None): masks of the paired images.
        guidance (Tensor[Np, P] float32 | None): the guidance scores of the paired images.
        image_embeds, text_embeds (Tensor[Np, E] | None): normalised paired embeddings.
    """

    loss: Tensor
    clip: Tensor | None = None
    clip_masked: Tensor | None = None
    local: Tensor | None = None
    mim: Tensor | None = None
    mlm: Tensor | None = None
    tp: Tensor | None = None
    logit_scale: Tensor | None = None
    tau: float = math.inf
    mlm_accuracy: Tensor | None = None
    mim_mask: Tensor | None = None
    guidance: Tensor | None = None
    image_embeds: Tensor | None = None
    text_embeds: Tensor | None = None


@dataclass
class _PairViews:
    """What :meth:`PretrainingObjective._encode_pairs` computed for the paired samples."""

    text_states: Tensor | None = None
    text_pooled: Tensor | None = None
    patch_states: Tensor | None = None
    whole_pooled: Tensor | None = None
    local: Tensor | None = None
    mim: MIMOutput | None = None


def _weighted_mean(parts: list[tuple[Tensor, float]]) -> Tensor | None:
    """Σ value · count / Σ count (the plain sum when every count is 0); None when empty."""
    if not parts:
        return None
    total = sum(count for _, count in parts)
    if total <= 0:
        return sum(value for value, _ in parts)  # type: ignore[return-value]
    return sum(value * (count / total) for value, count in parts)  # type: ignore[return-value]


class PretrainingObjective(nn.Module):
    """The heads and the loss of pre-training (state-dict keys ``objective.*`` of a model).

    Args:
        config: the model's :class:`~mmclip.models.MMCLIPConfig` (shared, not copied).
        grid: the image tower's :class:`~mmclip.models.attmim.PatchGrid`.
        text_hidden, vocab_size: the text tower's width H and vocabulary V.

    Heads: ``contrastive`` (image–text), ``local`` (token–patch), ``attmim``
    (:class:`~mmclip.models.attmim.MIMHead`), ``entmlm``
    (:class:`~mmclip.models.entmlm.MLMHead`), ``tp_loss`` (text–prompt).
    """

    def __init__(
        self, config: MMCLIPConfig, grid: PatchGrid, text_hidden: int, vocab_size: int
    ) -> None:
        super().__init__()
        self.config = config
        c = config.contrastive
        self.contrastive = ContrastiveLoss(
            c.init_temperature, c.max_logit_scale, c.learn_temperature, c.label_aware
        )
        self.local = LocalAlignmentLoss(config.local, label_aware=c.label_aware)
        self.attmim = MIMHead(grid, config.attmim, text_hidden)
        self.entmlm = MLMHead(
            text_hidden, vocab_size, config.text.mask_token_id, config.entmlm, grid.width
        )
        self.tp_loss = ContrastiveLoss(
            c.init_temperature, c.max_logit_scale, c.learn_temperature, c.label_aware
        )

    def guide_scale(self) -> float:
        """Logit scale of the guidance's token → patch softmax.

        ``attmim.guide_scale`` when set; else the local term's attention scale when the local
        term is on (the guidance reads what it trains); else the contrastive logit scale.
        """
        if self.config.attmim.guide_scale is not None:
            return float(self.config.attmim.guide_scale)
        if self.config.loss_weights.local != 0:
            return float(self.local.attention_scale().detach())
        return float(self.contrastive.scale().detach())

    def guidance_weights(self, text: TextRows) -> Tensor:
        """:func:`~mmclip.models.token_weights.guidance_token_weights` of ``text``:
        Tensor[R, L] float32."""
        return guidance_token_weights(
            self.config.attmim,
            text.attention_mask,
            text.special_tokens_mask,
            text.span_offsets,
            text.spans,
            text.focus_offsets,
            text.focus_spans,
        )

    def forward(
        self,
        model: MMCLIPModel,
        batch: MMCLIPBatch,
        *,
        step: int | None = None,
        generator: torch.Generator | None = None,
    ) -> MMCLIPOutput:
        """All loss terms of a mixed batch.

        Args:
            model: the towers (``visual``, ``text``, ``image_proj``, ``text_proj``).
            batch: an :class:`~mmclip.batch.MMCLIPBatch` on the model's device.
            step: optimiser step for the τ schedule (default: ``attmim.set_step``'s).
            generator: random source of the masks (image and text).

        Returns:
            :class:`MMCLIPOutput`.
        """
        groups = row_groups(batch, use_unpaired=self.config.use_unpaired)
        tau = self.attmim.current_tau(step)
        out = MMCLIPOutput(loss=torch.zeros((), device=batch.kind.device), tau=tau)
        out.logit_scale = self.contrastive.scale().detach()
        views = self._encode_pairs(model, groups, tau, generator)
        terms: dict[str, Tensor] = {}
        if views.local is not None:
            terms["local"] = views.local
        if views.mim is not None:
            out.mim_mask, out.guidance = views.mim.mask, views.mim.scores
        weights = self.config.loss_weights
        if weights.clip != 0 and (groups.num_pairs or is_distributed()):
            terms.update(self._contrastive_terms(model, groups, views, out))
        if weights.mim != 0:
            mim = self._mim_term(model, groups, views, generator)
            if mim is not None:
                terms["mim"] = mim
        if weights.mlm != 0:
            mlm = self._mlm_term(model, groups, views, generator, out)
            if mlm is not None:
                terms["mlm"] = mlm
        if weights.tp != 0 and (groups.text_only is not None or is_distributed()):
            tp = self._text_prompt(model, groups)
            if tp is not None:
                terms["tp"] = tp
        out.loss = self._weighted_total(model, terms, out)
        return out

    def _encode_pairs(
        self,
        model: MMCLIPModel,
        groups: RowGroups,
        tau: float,
        generator: torch.Generator | None,
    ) -> _PairViews:
        """The paired samples' towers: the text, the whole image once, AttMIM's masked view.

        The whole view (all patches, with grad) feeds the local term, the guidance, the
        contrastive term and EntMLM's image memory; the masked view is drawn from that
        guidance. Without the local term the whole view runs only when the guidance or
        EntMLM needs it (no grad unless EntMLM trains the image tower).
        """
        views = _PairViews()
        text, images = groups.pair_texts, groups.pair_images
        if text is None or images is None:
            return views
        cfg, weights = self.config, self.config.loss_weights
        want_local, want_mim = weights.local != 0, weights.mim != 0
        if weights.clip != 0 or want_mim or want_local:
            encoded = model.text(text.input_ids, text.attention_mask)
            views.text_states, views.text_pooled = encoded.tokens, encoded.pooled
        weight = self.guidance_weights(text) if (want_mim or want_local) else None
        mlm_cross = weights.mlm != 0 and self.entmlm.cross_attends
        guided = want_mim and not math.isinf(tau)
        scores = cells = None
        if want_local or guided or mlm_cross:
            whole_depth = want_local or mlm_cross  # else the guidance needs `depth` blocks only
            depth = cfg.attmim.guide_depth
            grad = want_local or not cfg.entmlm.detach_image
            with torch.set_grad_enabled(torch.is_grad_enabled() and grad):
                if whole_depth:
                    whole = model.visual(images, intermediate=depth)
                else:
                    whole = model.visual(images, depth=depth)
            cells = whole.cells
            if whole_depth:
                views.patch_states = whole.tokens
            guide_states = whole.intermediate if whole.intermediate is not None else whole.tokens
            assert views.text_states is not None and weight is not None
            with torch.set_grad_enabled(torch.is_grad_enabled() and want_local):
                text_keys = model.text_proj(views.text_states)
                patch_keys = model.image_proj(guide_states)
            if want_local:
                views.whole_pooled = whole.pooled
                views.local = self.local(text_keys, weight, patch_keys, groups.pair_labels)
            if guided:
                scores = text_guidance(text_keys, patch_keys, weight, self.guide_scale())
        if want_mim:
            assert views.text_states is not None
            views.mim = self.attmim.masked_view(
                model.visual,
                images,
                scores,
                tau,
                generator,
                cells,
                views.text_states,
                text.attention_mask.bool(),
            )
        return views

    def _contrastive_terms(
        self, model: MMCLIPModel, groups: RowGroups, views: _PairViews, out: MMCLIPOutput
    ) -> dict[str, Tensor]:
        """``clip`` (the whole view, else the masked one) and ``clip_masked`` of the pairs.

        A rank with no pair joins the all-gathers with empty embeddings.
        """
        labels = groups.pair_labels
        if groups.pair_images is not None:
            assert views.text_pooled is not None
            if views.whole_pooled is not None:
                pooled = views.whole_pooled
            elif views.mim is not None:
                pooled = views.mim.pooled
            else:
                pooled = model.visual(groups.pair_images).pooled
            z_img, z_txt = model.image_proj(pooled), model.text_proj(views.text_pooled)
        else:
            empty = model.visual.cls_token.new_zeros(0, model.visual.width)
            z_img = model.image_proj(empty)
            z_txt = model.text_proj(empty.new_zeros(0, model.text.hidden_size))
            labels = torch.zeros(0, dtype=torch.int64, device=z_img.device)
        if labels is None and self.contrastive.label_aware and is_distributed():
            # every rank must join the labels' all-gather: -1 = unknown disease kind
            labels = torch.full((z_img.shape[0],), -1, dtype=torch.int64, device=z_img.device)
        terms = {"clip": self.contrastive(z_img, z_txt, labels)}
        if self.config.loss_weights.clip_masked != 0 and (
            views.mim is not None or groups.pair_images is None
        ):
            # XLIP: the masked view is aligned with the report too, so the masked pass
            # carries the contrastive gradient as well as the reconstruction's.
            z_masked = z_img[:0] if views.mim is None else model.image_proj(views.mim.pooled)
            terms["clip_masked"] = self.contrastive(z_masked, z_txt, labels)
        out.image_embeds = F.normalize(z_img.detach().float(), dim=-1)
        out.text_embeds = F.normalize(z_txt.detach().float(), dim=-1)
        return terms

    def _mim_term(
        self,
        model: MMCLIPModel,
        groups: RowGroups,
        views: _PairViews,
        generator: torch.Generator | None,
    ) -> Tensor | None:
        """AttMIM over the pairs (guided, text cross-attention) and the image-only samples
        (uniform, no cross-attention), weighted by their masked patches."""
        parts: list[tuple[Tensor, float]] = []
        if views.mim is not None:
            parts.append((views.mim.loss, float(views.mim.mask.sum())))
        if groups.image_only is not None:
            alone = self.attmim.masked_view(
                model.visual, groups.image_only, None, math.inf, generator
            )
            parts.append((alone.loss, float(alone.mask.sum())))
        return _weighted_mean(parts)

    def _mlm_term(
        self,
        model: MMCLIPModel,
        groups: RowGroups,
        views: _PairViews,
        generator: torch.Generator | None,
        out: MMCLIPOutput,
    ) -> Tensor | None:
        """EntMLM over the paired texts (image memory) and the text-only texts (none)."""
        parts: list[MLMOutput] = []
        if groups.pair_texts is not None:
            parts.append(self._mlm(model, groups.pair_texts, views.patch_states, generator))
        if groups.text_only is not None:
            parts.append(self._mlm(model, groups.text_only, None, generator))
        if not parts:
            return None
        counts = [(p, float(p.num_masked)) for p in parts]
        if sum(c for _, c in counts):
            out.mlm_accuracy = _weighted_mean([(p.accuracy, c) for p, c in counts])
        return _weighted_mean([(p.loss, c) for p, c in counts])

    def _mlm(
        self,
        model: MMCLIPModel,
        text: TextRows,
        image_states: Tensor | None,
        generator: torch.Generator | None,
    ) -> MLMOutput:
        """EntMLM of ``text``: mask its entities, encode, decode with ``image_states``."""
        head = self.entmlm
        masked_ids, labels = head.mask(
            text.input_ids,
            text.attention_mask,
            text.special_tokens_mask,
            text.span_offsets,
            text.spans,
            generator,
        )
        encoded = model.text(masked_ids, text.attention_mask).tokens
        return head.predict(
            encoded,
            text.attention_mask,
            masked_ids,
            labels,
            image_states,
            word_embeddings=model.text.word_embeddings.weight,
        )

    def _text_prompt(self, model: MMCLIPModel, groups: RowGroups) -> Tensor | None:
        """The text–prompt loss of the text-only reports against their prompts (None when
        there are none and this is a single process)."""
        text, prompts = groups.text_only, groups.prompts
        if text is None or prompts is None:
            if not is_distributed():
                return None
            # this rank's share of the all-gather: 0 rows
            empty = model.text_proj(model.visual.cls_token.new_zeros(0, model.text.hidden_size))
            labels = None
            if self.tp_loss.label_aware:
                labels = torch.zeros(0, dtype=torch.int64, device=empty.device)
            return self.tp_loss(empty, empty, labels)
        report = model.text(text.input_ids, text.attention_mask).pooled
        prompt = model.text(prompts.input_ids, prompts.attention_mask).pooled
        labels = groups.text_only_labels
        if labels is None and self.tp_loss.label_aware and is_distributed():
            labels = torch.full((text.rows,), -1, dtype=torch.int64, device=report.device)
        return self.tp_loss(model.text_proj(report), model.text_proj(prompt), labels)

    def _weighted_total(
        self, model: MMCLIPModel, terms: dict[str, Tensor], out: MMCLIPOutput
    ) -> Tensor:
        """Σ weight · term over the present terms (each also set on ``out``); a loss that
        ``backward()`` accepts even when no term is present."""
        weights = self.config.loss_weights
        total = self.contrastive.logit_scale.sum() * 0.0
        for name, value in terms.items():  # names of LOSS_TERMS
            setattr(out, name, value)
            total = total + getattr(weights, name) * value
        if torch.is_grad_enabled() and (not terms or not total.requires_grad):
            # No active term: still a loss that backward() accepts (with a fixed temperature
            # the logit scale above is a buffer, without graph).
            total = total + connected_zero(model)
        return total
