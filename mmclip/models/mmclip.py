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
        """All loss terms of a mixed batch.

        Args:
            batch: an :class:`~mmclip.batch.MMCLIPBatch` on the model's device.
            step: optimiser step for the τ schedule (default: :meth:`set_step`'s).
            generator: random source of the masks (image and text).

        Returns:
            :class:`MMCLIPOutput`.
        """
        check_batch_rows(batch)
        cfg = self.config
        weights = cfg.loss_weights
        kind = batch.kind
        device = kind.device
        n = kind.shape[0]
        allowed = torch.ones(n, dtype=torch.bool, device=device)
        if not cfg.use_unpaired:
            allowed = kind == SampleKind.PAIRED
        img_row = torch.full((n,), -1, dtype=torch.int64, device=device)
        txt_row = torch.full((n,), -1, dtype=torch.int64, device=device)
        if batch.images is not None and batch.image_index is not None:
            img_row[batch.image_index] = torch.arange(batch.images.shape[0], device=device)
        if batch.input_ids is not None and batch.text_index is not None:
            txt_row[batch.text_index] = torch.arange(batch.input_ids.shape[0], device=device)
        paired = ((img_row >= 0) & (txt_row >= 0) & allowed).nonzero().flatten()
        image_only = ((img_row >= 0) & (txt_row < 0) & allowed).nonzero().flatten()
        text_only = ((img_row < 0) & (txt_row >= 0) & allowed).nonzero().flatten()
        labels = batch.prompt_label
        step_tau = self.attmim.current_tau(step)
        terms: dict[str, Tensor] = {}
        out = MMCLIPOutput(loss=torch.zeros((), device=device), tau=step_tau)
        out.logit_scale = self.contrastive.scale().detach()

        # -------- paired path: text pass, all-patch image pass, local term, AttMIM, CLIP
        n_pair = int(paired.numel())
        pair_img, pair_txt = img_row[paired], txt_row[paired]
        pair_labels = labels[paired] if labels is not None else None
        want_clip = weights.clip != 0 and (n_pair > 0 or is_distributed())
        want_local = weights.local != 0
        want_mim = weights.mim != 0
        want_mlm = weights.mlm != 0
        text_states = text_pooled = None
        patch_states = guide_states = full_pooled = full_cells = None
        mim_paired: MIMOutput | None = None
        if n_pair:
            assert batch.images is not None and batch.input_ids is not None
            assert batch.attention_mask is not None
            images = batch.images[pair_img]
            ids, attn = batch.input_ids[pair_txt], batch.attention_mask[pair_txt]
            if want_clip or want_mim or want_local:
                text_out = self.text(ids, attn)
                text_states, text_pooled = text_out.tokens, text_out.pooled
            guide_weight = None
            if want_mim or want_local:
                guide_weight = self.guidance_weights(batch, pair_txt)
            guided = want_mim and not math.isinf(step_tau)
            mlm_cross = (
                want_mlm and bool(self.entmlm.blocks) and (self.entmlm.blocks[0].cross is not None)
            )
            if want_local:
                # All patches with grad: the local term must see the lesions that the guided
                # mask hides from the masked pass. The local term and the guidance read the
                # states after `guide_depth` blocks (all blocks when None); EntMLM the last.
                assert text_states is not None and guide_weight is not None
                depth = cfg.attmim.guide_depth
                full_view = self.visual(images, intermediate=depth)
                patch_states, full_pooled = full_view.tokens, full_view.pooled
                full_cells = full_view.cells
                if full_view.intermediate is not None:
                    guide_states = full_view.intermediate
                else:
                    guide_states = patch_states
                terms["local"] = self.local(
                    self.text_proj(text_states),
                    guide_weight,
                    self.image_proj(guide_states),
                    pair_labels,
                )
            elif guided or mlm_cross:
                # The guidance reads `guide_depth` blocks; EntMLM's memory is always the last
                # block's states (a speed knob of the guidance must not change the MLM task).
                depth = cfg.attmim.guide_depth
                with torch.set_grad_enabled(
                    torch.is_grad_enabled() and not cfg.entmlm.detach_image
                ):
                    if mlm_cross:
                        view = self.visual(images, intermediate=depth)
                        patch_states = view.tokens
                        guide_states = view.intermediate if depth is not None else view.tokens
                    else:
                        guide_states = self.visual(images, depth=depth).tokens
            if want_mim:
                assert text_states is not None
                mim_paired = self.attmim(
                    images,
                    text_states,
                    guide_weight,
                    text_mask=attn.bool(),
                    guide_states=guide_states,
                    tau=step_tau,
                    guide_scale=self.guide_scale(),
                    generator=generator,
                    target_cells=full_cells,
                )
                out.mim_mask = mim_paired.mask
                out.guidance = mim_paired.scores
        if want_clip:
            if n_pair:
                assert text_pooled is not None and batch.images is not None
                # The whole image when the local term has encoded it (what zero-shot sees, and
                # the lesion a guided mask hides); else the visible patches of the MIM pass.
                if full_pooled is not None:
                    pooled = full_pooled
                elif mim_paired is not None:
                    pooled = mim_paired.pooled
                else:
                    pooled = self.visual(batch.images[pair_img]).pooled
                z_img = self.image_proj(pooled)
                z_txt = self.text_proj(text_pooled)
                clip_labels = pair_labels
            else:  # this rank has no pair but others may: join the all-gather
                z_img = self.image_proj(self.visual.cls_token.new_zeros(0, self.visual.width))
                z_txt = self.text_proj(self.visual.cls_token.new_zeros(0, self.text.hidden_size))
                clip_labels = (
                    torch.zeros(0, dtype=torch.int64, device=device) if labels is not None else None
                )
            if clip_labels is None and self.contrastive.label_aware and is_distributed():
                # every rank must join the labels' all-gather: -1 = unknown disease kind
                clip_labels = torch.full((z_img.shape[0],), -1, dtype=torch.int64, device=device)
            terms["clip"] = self.contrastive(z_img, z_txt, clip_labels)
            if weights.clip_masked != 0 and (mim_paired is not None or not n_pair):
                # XLIP: the masked view is aligned with the report too, so the masked pass
                # carries the contrastive gradient as well as the reconstruction's.
                z_masked = z_img[:0] if mim_paired is None else self.image_proj(mim_paired.pooled)
                terms["clip_masked"] = self.contrastive(z_masked, z_txt, clip_labels)
            out.image_embeds = F.normalize(z_img.detach().float(), dim=-1)
            out.text_embeds = F.normalize(z_txt.detach().float(), dim=-1)

        # -------- AttMIM on image-only samples: uniform masking, no cross-attention
        mim_parts: list[tuple[Tensor, float]] = []
        if mim_paired is not None:
            mim_parts.append((mim_paired.loss, float(mim_paired.mask.sum())))
        if want_mim and image_only.numel():
            assert batch.images is not None
            mim_io = self.attmim(batch.images[img_row[image_only]], None, generator=generator)
            mim_parts.append((mim_io.loss, float(mim_io.mask.sum())))
        if mim_parts:
            total = sum(c for _, c in mim_parts)
            terms["mim"] = (
                sum(loss * (c / total) for loss, c in mim_parts)
                if total > 0
                else sum(loss for loss, _ in mim_parts)
            )

        # -------- EntMLM: paired texts with image memory, text-only texts without
        if want_mlm:
            mlm_parts: list[MLMOutput] = []
            if n_pair:
                mlm_parts.append(self._mlm(batch, pair_txt, patch_states, generator))
            if text_only.numel():
                mlm_parts.append(self._mlm(batch, txt_row[text_only], None, generator))
            if mlm_parts:
                total = sum(p.num_masked for p in mlm_parts)
                if total:
                    terms["mlm"] = sum(p.loss * (p.num_masked / total) for p in mlm_parts)
                    out.mlm_accuracy = sum(p.accuracy * (p.num_masked / total) for p in mlm_parts)
                else:
                    terms["mlm"] = sum(p.loss for p in mlm_parts)

        # -------- text–prompt contrastive term for text-only reports. An all-gather: under
        # several ranks every rank joins it, with an empty batch when it has no such sample.
        if weights.tp != 0 and (text_only.numel() or is_distributed()):
            tp = self._text_prompt(batch, text_only, txt_row)
            if tp is not None:
                terms["tp"] = tp

        total_loss = self.contrastive.logit_scale.sum() * 0.0
        for name, value in terms.items():
            setattr(out, name, value)
            total_loss = total_loss + getattr(weights, name) * value
        if torch.is_grad_enabled() and (not terms or not total_loss.requires_grad):
            # No active term: still a loss that backward() accepts (with a fixed temperature
            # the logit scale above is a buffer, without graph).
            total_loss = total_loss + connected_zero(self)
        out.loss = total_loss
        return out

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
