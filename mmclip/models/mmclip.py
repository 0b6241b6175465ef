"""MMCLIPModel: the whole objective of DESIGN §1.1–1.2 on an :class:`~mmclip.batch.MMCLIPBatch`.

Which samples feed which term:

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

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batch import MMCLIPBatch, SampleKind, check_batch_rows
from .attmim import AttMIM, MIMOutput
from .config import MMCLIPConfig
from .contrastive import ContrastiveLoss
from .ddp import connected_zero, is_distributed
from .encoding import ImageTextEncoding
from .entmlm import EntMLM, MLMOutput
from .local import LocalAlignmentLoss
from .pretrained import CheckpointMismatchError, PretrainedModelIO
from .text import TextEncoder, load_tokenizer, resolve_text_checkpoint
from .token_weights import entity_token_weights, guidance_token_weights, select_spans
from .vit import VisionTransformer

__all__ = [
    "CheckpointMismatchError",
    "MMCLIPModel",
    "MMCLIPOutput",
    "entity_token_weights",
    "guidance_token_weights",
]

logger = logging.getLogger(__name__)


@dataclass
class MMCLIPOutput:
    """Output of :meth:`MMCLIPModel.forward`.

    Attributes:
        loss: weighted sum of the present terms (a graph-attached 0 when none).
        clip, clip_masked, local, mim, mlm, tp: scalar terms, ``None`` when absent or
            switched off (:class:`~mmclip.models.LossWeights`).
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
class _RowGroups:
    """Where each sample's rows are (-1: none) and the samples of each group."""

    img_row: Tensor
    txt_row: Tensor
    paired: Tensor
    image_only: Tensor
    text_only: Tensor


@dataclass
class _PairViews:
    """What :meth:`MMCLIPModel._encode_pairs` computed for the paired samples."""

    text_states: Tensor | None = None
    text_pooled: Tensor | None = None
    text_mask: Tensor | None = None
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


class MMCLIPModel(ImageTextEncoding, PretrainedModelIO):
    """Contrastive image–text model with AttMIM and EntMLM.

    Args:
        config: the model (:class:`~mmclip.models.MMCLIPConfig`); ``config.text.pretrained``
            loads the text encoder (and its tokenizer) from that local directory.
        tokenizer: a ``transformers.PreTrainedTokenizerFast`` (or a directory to load one
            from) used by :meth:`encode_text`; it fixes ``text.mask_token_id`` /
            ``pad_token_id`` and must fit in ``text.vocab_size``. Without one (and without
            ``text.pretrained``) the packaged CXR-BERT vocabulary is attached
            (:func:`mmclip.text.default_tokenizer`), ``text.vocab_size`` raised to fit it,
            so ``MMCLIPModel().encode(...)`` works offline on a fresh install.
        default_tokenizer: False keeps a model without tokenizer (loading a saved model
            that had none).

    Towers (state-dict keys ``visual.*``, ``text.*``, ``image_proj.*``, ``text_proj.*``, as
    open_clip's CLIP): ``visual`` (ViT), ``text`` (BERT), ``image_proj`` (Pv), ``text_proj``
    (Pt). Objectives, heads that use the towers: ``contrastive`` (image–text loss),
    ``local`` (token–patch alignment), ``attmim``, ``entmlm``, ``tp_loss`` (text–prompt).
    The step of the τ schedule is set with :meth:`set_step` (or ``forward(step=…)``).
    """

    def __init__(
        self,
        config: MMCLIPConfig | None = None,
        tokenizer: Any = None,
        *,
        default_tokenizer: bool = True,
    ) -> None:
        super().__init__()
        config = copy.deepcopy(config) if config is not None else MMCLIPConfig()
        if tokenizer is None and default_tokenizer and not config.text.pretrained:
            from mmclip.text import default_tokenizer as packaged_tokenizer

            tokenizer = packaged_tokenizer(config.text.max_position_embeddings)
            if len(tokenizer) > config.text.vocab_size:
                logger.info(
                    "no tokenizer given: the packaged CXR-BERT vocabulary (%d tokens) is "
                    "attached and text.vocab_size raised from %d",
                    len(tokenizer),
                    config.text.vocab_size,
                )
                config.text.vocab_size = len(tokenizer)
        if config.text.pretrained:
            text = TextEncoder.from_pretrained(config.text.pretrained, config.text)
            config.text = text.config
            if tokenizer is None:
                tokenizer = load_tokenizer(resolve_text_checkpoint(config.text.pretrained))
        else:
            text = TextEncoder(config.text)
        if isinstance(tokenizer, (str, Path)):
            tokenizer = load_tokenizer(tokenizer)
        if tokenizer is not None:
            if len(tokenizer) > text.vocab_size:
                raise ValueError(
                    f"the tokenizer has {len(tokenizer)} tokens, more than text.vocab_size="
                    f"{text.vocab_size}"
                )
            if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
                raise ValueError("the tokenizer needs a [MASK] and a [PAD] token")
            config.text.mask_token_id = int(tokenizer.mask_token_id)
            config.text.pad_token_id = int(tokenizer.pad_token_id)
            text.config = config.text
        self.config = config
        self.tokenizer = tokenizer
        c = config.contrastive
        visual = VisionTransformer.from_config(config.vision)
        # The towers (open_clip's layout); the objectives below borrow them.
        self.visual = visual
        self.text = text
        self.image_proj = nn.Linear(visual.width, c.embed_dim, bias=False)
        self.text_proj = nn.Linear(text.hidden_size, c.embed_dim, bias=False)
        nn.init.normal_(self.image_proj.weight, std=visual.width**-0.5)
        nn.init.normal_(self.text_proj.weight, std=text.hidden_size**-0.5)
        # The objectives (heads).
        self.contrastive = ContrastiveLoss(
            c.init_temperature, c.max_logit_scale, c.learn_temperature, c.label_aware
        )
        self.local = LocalAlignmentLoss(config.local, label_aware=c.label_aware)
        self.attmim = AttMIM(
            visual,
            config.attmim,
            text_dim=text.hidden_size,
            image_proj=self.image_proj,
            text_proj=self.text_proj,
            borrow_towers=True,
            scale_source=self.learned_guide_scale,
        )
        self.entmlm = EntMLM(
            text,
            config.entmlm,
            image_dim=visual.width,
            mask_token_id=config.text.mask_token_id,
            borrow_encoder=True,
        )
        self.tp_loss = ContrastiveLoss(
            c.init_temperature, c.max_logit_scale, c.learn_temperature, c.label_aware
        )

    def set_step(self, step: int) -> None:
        """Set the optimiser step driving the τ schedule (call once per step)."""
        self.attmim.set_step(step)

    # ------------------------------------------------------------------ training
    def forward(
        self,
        batch: MMCLIPBatch,
        *,
        step: int | None = None,
        generator: torch.Generator | None = None,
    ) -> MMCLIPOutput:
        """All loss terms of a mixed batch (docs/batch-flow.md follows one batch through).

        Args:
            batch: an :class:`~mmclip.batch.MMCLIPBatch` on the model's device.
            step: optimiser step for the τ schedule (default: :meth:`set_step`'s).
            generator: random source of the masks (image and text).

        Returns:
            :class:`MMCLIPOutput`.
        """
        check_batch_rows(batch)
        rows = self._row_groups(batch)
        tau = self.attmim.current_tau(step)
        out = MMCLIPOutput(loss=torch.zeros((), device=batch.kind.device), tau=tau)
        out.logit_scale = self.contrastive.scale().detach()
        views = self._encode_pairs(batch, rows, tau, generator)
        terms: dict[str, Tensor] = {}
        if views.local is not None:
            terms["local"] = views.local
        if views.mim is not None:
            out.mim_mask, out.guidance = views.mim.mask, views.mim.scores
        weights = self.config.loss_weights
        if weights.clip != 0 and (rows.paired.numel() or is_distributed()):
            terms.update(self._contrastive_terms(batch, rows, views, out))
        if weights.mim != 0:
            mim = self._mim_term(batch, rows, views, generator)
            if mim is not None:
                terms["mim"] = mim
        if weights.mlm != 0:
            mlm = self._mlm_term(batch, rows, views, generator, out)
            if mlm is not None:
                terms["mlm"] = mlm
        if weights.tp != 0 and (rows.text_only.numel() or is_distributed()):
            tp = self._text_prompt(batch, rows.text_only, rows.txt_row)
            if tp is not None:
                terms["tp"] = tp
        out.loss = self._weighted_total(terms, out)
        return out

    def _row_groups(self, batch: MMCLIPBatch) -> _RowGroups:
        """The samples of each group and the image / text row of every sample."""
        kind = batch.kind
        n, device = kind.shape[0], kind.device
        allowed = torch.ones(n, dtype=torch.bool, device=device)
        if not self.config.use_unpaired:
            allowed = kind == SampleKind.PAIRED
        img_row = torch.full((n,), -1, dtype=torch.int64, device=device)
        txt_row = torch.full((n,), -1, dtype=torch.int64, device=device)
        if batch.images is not None and batch.image_index is not None:
            img_row[batch.image_index] = torch.arange(batch.images.shape[0], device=device)
        if batch.input_ids is not None and batch.text_index is not None:
            txt_row[batch.text_index] = torch.arange(batch.input_ids.shape[0], device=device)
        has_img, has_txt = img_row >= 0, txt_row >= 0
        return _RowGroups(
            img_row=img_row,
            txt_row=txt_row,
            paired=(has_img & has_txt & allowed).nonzero().flatten(),
            image_only=(has_img & ~has_txt & allowed).nonzero().flatten(),
            text_only=(~has_img & has_txt & allowed).nonzero().flatten(),
        )

    def _encode_pairs(
        self,
        batch: MMCLIPBatch,
        rows: _RowGroups,
        tau: float,
        generator: torch.Generator | None,
    ) -> _PairViews:
        """The paired samples' towers: the text, the whole image once, AttMIM's masked view.

        The whole view (all patches, with grad) feeds the local term, the guidance, the
        contrastive term and EntMLM's image memory; AttMIM then masks from that guidance and
        encodes its own masked view. Without the local term the whole view runs only when the
        guidance or EntMLM needs it (no grad unless EntMLM trains the image tower).
        """
        views = _PairViews()
        if not rows.paired.numel():
            return views
        cfg, weights = self.config, self.config.loss_weights
        assert batch.images is not None and batch.input_ids is not None
        assert batch.attention_mask is not None
        want_local, want_mim = weights.local != 0, weights.mim != 0
        images = batch.images[rows.img_row[rows.paired]]
        txt = rows.txt_row[rows.paired]
        views.text_mask = batch.attention_mask[txt]
        if weights.clip != 0 or want_mim or want_local:
            text = self.text(batch.input_ids[txt], views.text_mask)
            views.text_states, views.text_pooled = text.tokens, text.pooled
        guide_weight = self.guidance_weights(batch, txt) if (want_mim or want_local) else None
        mlm_cross = weights.mlm != 0 and bool(self.entmlm.blocks)
        mlm_cross = mlm_cross and self.entmlm.blocks[0].cross is not None
        depth = cfg.attmim.guide_depth
        guide_states = cells = None
        guided = want_mim and not math.isinf(tau)
        if want_local or guided or mlm_cross:
            whole_depth = want_local or mlm_cross  # else the guidance needs `depth` blocks only
            grad = want_local or not cfg.entmlm.detach_image
            with torch.set_grad_enabled(torch.is_grad_enabled() and grad):
                if whole_depth:
                    whole = self.visual(images, intermediate=depth)
                else:
                    whole = self.visual(images, depth=depth)
            cells = whole.cells
            if whole_depth:
                views.patch_states = whole.tokens
            guide_states = whole.intermediate if whole.intermediate is not None else whole.tokens
            if want_local:
                views.whole_pooled = whole.pooled
                assert views.text_states is not None and guide_weight is not None
                labels = batch.prompt_label[rows.paired] if batch.prompt_label is not None else None
                views.local = self.local(
                    self.text_proj(views.text_states),
                    guide_weight,
                    self.image_proj(guide_states),
                    labels,
                )
        if want_mim:
            assert views.text_states is not None
            views.mim = self.attmim(
                images,
                views.text_states,
                guide_weight,
                text_mask=views.text_mask.bool(),
                guide_states=guide_states,
                tau=tau,
                guide_scale=self.guide_scale(),
                generator=generator,
                target_cells=cells,
            )
        return views

    def _contrastive_terms(
        self, batch: MMCLIPBatch, rows: _RowGroups, views: _PairViews, out: MMCLIPOutput
    ) -> dict[str, Tensor]:
        """``clip`` (the whole view, else the masked one) and ``clip_masked`` of the pairs.

        A rank with no pair joins the all-gathers with empty embeddings.
        """
        labels = batch.prompt_label
        device = batch.kind.device
        if rows.paired.numel():
            assert views.text_pooled is not None and batch.images is not None
            if views.whole_pooled is not None:
                pooled = views.whole_pooled
            elif views.mim is not None:
                pooled = views.mim.pooled
            else:
                pooled = self.visual(batch.images[rows.img_row[rows.paired]]).pooled
            z_img, z_txt = self.image_proj(pooled), self.text_proj(views.text_pooled)
            clip_labels = labels[rows.paired] if labels is not None else None
        else:
            empty = self.visual.cls_token.new_zeros(0, self.visual.width)
            z_img = self.image_proj(empty)
            z_txt = self.text_proj(empty.new_zeros(0, self.text.hidden_size))
            clip_labels = (
                None if labels is None else torch.zeros(0, dtype=torch.int64, device=device)
            )
        if clip_labels is None and self.contrastive.label_aware and is_distributed():
            # every rank must join the labels' all-gather: -1 = unknown disease kind
            clip_labels = torch.full((z_img.shape[0],), -1, dtype=torch.int64, device=device)
        terms = {"clip": self.contrastive(z_img, z_txt, clip_labels)}
        if self.config.loss_weights.clip_masked != 0 and (
            views.mim is not None or not rows.paired.numel()
        ):
            # XLIP: the masked view is aligned with the report too, so the masked pass
            # carries the contrastive gradient as well as the reconstruction's.
            z_masked = z_img[:0] if views.mim is None else self.image_proj(views.mim.pooled)
            terms["clip_masked"] = self.contrastive(z_masked, z_txt, clip_labels)
        out.image_embeds = F.normalize(z_img.detach().float(), dim=-1)
        out.text_embeds = F.normalize(z_txt.detach().float(), dim=-1)
        return terms

    def _mim_term(
        self,
        batch: MMCLIPBatch,
        rows: _RowGroups,
        views: _PairViews,
        generator: torch.Generator | None,
    ) -> Tensor | None:
        """AttMIM over the pairs (guided, text cross-attention) and the image-only samples
        (uniform, no cross-attention), weighted by their masked patches."""
        parts: list[tuple[Tensor, float]] = []
        if views.mim is not None:
            parts.append((views.mim.loss, float(views.mim.mask.sum())))
        if rows.image_only.numel():
            assert batch.images is not None
            alone = self.attmim(
                batch.images[rows.img_row[rows.image_only]], None, generator=generator
            )
            parts.append((alone.loss, float(alone.mask.sum())))
        return _weighted_mean([(loss, count) for loss, count in parts])

    def _mlm_term(
        self,
        batch: MMCLIPBatch,
        rows: _RowGroups,
        views: _PairViews,
        generator: torch.Generator | None,
        out: MMCLIPOutput,
    ) -> Tensor | None:
        """EntMLM over the paired texts (image memory) and the text-only texts (none)."""
        parts: list[MLMOutput] = []
        if rows.paired.numel():
            parts.append(self._mlm(batch, rows.txt_row[rows.paired], views.patch_states, generator))
        if rows.text_only.numel():
            parts.append(self._mlm(batch, rows.txt_row[rows.text_only], None, generator))
        if not parts:
            return None
        counts = [(p, float(p.num_masked)) for p in parts]
        if sum(c for _, c in counts):
            out.mlm_accuracy = _weighted_mean([(p.accuracy, c) for p, c in counts])
        return _weighted_mean([(p.loss, c) for p, c in counts])

    def _weighted_total(self, terms: dict[str, Tensor], out: MMCLIPOutput) -> Tensor:
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
            total = total + connected_zero(self)
        return total

    def guide_scale(self) -> float:
        """Logit scale of the guidance's token → patch softmax: ``self.attmim.guide_scale()``.

        ``attmim.guide_scale`` when set (as in a standalone :class:`AttMIM` of that config);
        else :meth:`learned_guide_scale`, the model's ``scale_source`` of the block.
        """
        return self.attmim.guide_scale()

    def learned_guide_scale(self) -> float:
        """The learned scale the guidance follows without ``attmim.guide_scale``.

        The local term's attention scale when the local term is on (the guidance reads
        what it trains), else the contrastive logit scale.
        """
        if self.config.loss_weights.local != 0:
            return float(self.local.attention_scale().detach())
        return float(self.contrastive.scale().detach())

    @torch.no_grad()
    def guidance_scores(
        self, images: Tensor, input_ids: Tensor, attention_mask: Tensor, weight: Tensor
    ) -> Tensor:
        """The attention each patch receives from its report, as in training (no grad).

        Args:
            images (Tensor[B, C, S, S]): model-sized images.
            input_ids, attention_mask (Tensor[B, L]): the reports.
            weight (Tensor[B, L]): token weights (:func:`guidance_token_weights`).

        Returns:
            Tensor[B, P] float32, rows summing to 1.
        """
        states = self.text(input_ids, attention_mask).tokens
        patches = self.visual(images, depth=self.config.attmim.guide_depth).tokens
        return self.attmim.guidance_scores(
            images, states, weight, guide_states=patches, scale=self.guide_scale()
        ).float()

    def guidance_weights(self, batch: MMCLIPBatch, rows: Tensor) -> Tensor:
        """:func:`guidance_token_weights` of the text rows ``rows``: Tensor[R, L] float32."""
        assert batch.attention_mask is not None
        special = batch.special_tokens_mask[rows] if batch.special_tokens_mask is not None else None
        offsets, spans = select_spans(batch.span_offsets, batch.spans, rows)
        focus_offsets, focus_spans = select_spans(batch.focus_offsets, batch.focus_spans, rows)
        return guidance_token_weights(
            self.config.attmim,
            batch.attention_mask[rows],
            special,
            offsets,
            spans,
            focus_offsets,
            focus_spans,
        )

    def _mlm(
        self,
        batch: MMCLIPBatch,
        rows: Tensor,
        image_states: Tensor | None,
        generator: torch.Generator | None,
    ) -> MLMOutput:
        assert batch.input_ids is not None and batch.attention_mask is not None
        special = batch.special_tokens_mask[rows] if batch.special_tokens_mask is not None else None
        offsets, spans = select_spans(batch.span_offsets, batch.spans, rows)
        return self.entmlm(
            batch.input_ids[rows],
            batch.attention_mask[rows],
            special,
            offsets,
            spans,
            image_states=image_states,
            generator=generator,
        )

    def _empty_text_prompt(self) -> Tensor:
        """This rank's share of the text–prompt all-gather when it has no sample: 0 rows."""
        empty = self.text_proj(self.visual.cls_token.new_zeros(0, self.text.hidden_size))
        labels = None
        if self.tp_loss.label_aware:
            labels = torch.zeros(0, dtype=torch.int64, device=empty.device)
        return self.tp_loss(empty, empty, labels)

    def _text_prompt(self, batch: MMCLIPBatch, text_only: Tensor, txt_row: Tensor) -> Tensor | None:
        """The text–prompt loss of the text-only reports that have a prompt (None when there
        are none and this is a single process)."""
        n = batch.kind.shape[0]
        device = batch.kind.device
        samples = text_only[:0]
        if batch.prompt_input_ids is not None and text_only.numel():
            prompt_index = batch.prompt_index
            if prompt_index is None or prompt_index.shape[0] != batch.prompt_input_ids.shape[0]:
                raise ValueError("batch.prompt_index must give the sample of every prompt row")
            prompt_row = torch.full((n,), -1, dtype=torch.int64, device=device)
            prompt_row[prompt_index] = torch.arange(prompt_index.shape[0], device=device)
            samples = text_only[prompt_row[text_only] >= 0]
        if not samples.numel():
            return self._empty_text_prompt() if is_distributed() else None
        assert batch.prompt_input_ids is not None and batch.input_ids is not None
        assert batch.attention_mask is not None
        rows = txt_row[samples]
        report = self.text(batch.input_ids[rows], batch.attention_mask[rows]).pooled
        p_rows = prompt_row[samples]
        p_mask = batch.prompt_attention_mask
        prompt = self.text(
            batch.prompt_input_ids[p_rows], p_mask[p_rows] if p_mask is not None else None
        ).pooled
        labels = batch.prompt_label[samples] if batch.prompt_label is not None else None
        if labels is None and self.tp_loss.label_aware and is_distributed():
            labels = torch.full((samples.numel(),), -1, dtype=torch.int64, device=device)
        return self.tp_loss(self.text_proj(report), self.text_proj(prompt), labels)
