"""MMCLIPModel: the towers of DESIGN §1.1 (as open_clip's CLIP) and its pre-training objective.

The model owns the image tower ``visual`` (ViT), the text tower ``text`` (BERT) and the
projections ``image_proj`` / ``text_proj`` into the shared space, with the ``encode*``
methods (:class:`~mmclip.models.encoding.ImageTextEncoding`). The loss terms live apart, in
``objective`` (:class:`~mmclip.models.objective.PretrainingObjective`): ``model(batch)``
is ``model.objective(model, batch)``.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..batch import MMCLIPBatch
from .attmim import PatchGrid, text_guidance
from .config import MMCLIPConfig
from .encoding import ImageTextEncoding
from .objective import MMCLIPOutput, PretrainingObjective
from .pretrained import CheckpointMismatchError, PretrainedModelIO
from .text import TextEncoder, load_tokenizer, resolve_text_checkpoint
from .token_weights import entity_token_weights, guidance_token_weights
from .vit import VisionTransformer

__all__ = [
    "CheckpointMismatchError",
    "MMCLIPModel",
    "MMCLIPOutput",
    "entity_token_weights",
    "guidance_token_weights",
]

logger = logging.getLogger(__name__)


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
        self.visual = visual
        self.text = text
        self.image_proj = nn.Linear(visual.width, c.embed_dim, bias=False)
        self.text_proj = nn.Linear(text.hidden_size, c.embed_dim, bias=False)
        nn.init.normal_(self.image_proj.weight, std=visual.width**-0.5)
        nn.init.normal_(self.text_proj.weight, std=text.hidden_size**-0.5)
        self.objective = PretrainingObjective(
            config,
            PatchGrid.of(visual, config.attmim.target),
            text.hidden_size,
            text.vocab_size,
        )

    def set_step(self, step: int) -> None:
        """Set the optimiser step driving the τ schedule (call once per step)."""
        self.objective.attmim.set_step(step)

    def forward(
        self,
        batch: MMCLIPBatch,
        *,
        step: int | None = None,
        generator: torch.Generator | None = None,
    ) -> MMCLIPOutput:
        """All loss terms of a mixed batch: ``self.objective(self, batch)``
        (:meth:`~mmclip.models.objective.PretrainingObjective.forward`)."""
        return self.objective(self, batch, step=step, generator=generator)

    def logit_scale(self) -> Tensor:
        """The contrastive logit scale (clamped; a scalar), as the zero-shot scores use it."""
        return self.objective.contrastive.scale()

    @torch.no_grad()
    def guidance_scores(
        self,
        images: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        weight: Tensor,
        patch_states: Tensor | None = None,
    ) -> Tensor:
        """The attention each patch receives from its report, as in training (no grad).

        Args:
            images (Tensor[B, C, S, S]): model-sized images.
            input_ids, attention_mask (Tensor[B, L]): the reports.
            weight (Tensor[B, L]): token weights (:func:`guidance_token_weights`).
            patch_states (Tensor[B, P, D] | None): the images' states after
                ``attmim.guide_depth`` blocks (:meth:`guidance_patch_states`) when already
                computed, e.g. to score one image against several texts.

        Returns:
            Tensor[B, P] float32, rows summing to 1.
        """
        states = self.text(input_ids, attention_mask).tokens
        if patch_states is None:
            patch_states = self.guidance_patch_states(images)
        return text_guidance(
            self.text_proj(states),
            self.image_proj(patch_states),
            weight,
            self.objective.guide_scale(),
        )

    @torch.no_grad()
    def guidance_patch_states(self, images: Tensor) -> Tensor:
        """The patch states the guidance reads: Tensor[B, P, D] after ``guide_depth`` blocks."""
        return self.visual(images, depth=self.config.attmim.guide_depth).tokens
