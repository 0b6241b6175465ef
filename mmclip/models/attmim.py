"""AttMIM: attention-guided masked image modelling (DESIGN §1.1 steps 2–5 and 7).

The temperature schedule (:func:`tau_schedule`)::

    tau(step) = inf                                   step <  guide_warmup_steps
    1 / tau(step) = (1 / tau_final) · min(1, (step - guide_warmup_steps) / tau_anneal_steps)

i.e. uniform (MAE) masking during the warm-up, then the *inverse* temperature rises
linearly from 0 (uniform) to ``1 / tau_final``. Working on ``1 / tau`` makes the
schedule continuous at the end of the warm-up: Gumbel-top-k keys are
``log(s) / tau + gumbel``, so ``1 / tau`` is the weight of the guidance against the noise.
``tau_final = inf`` keeps uniform masking for ever (the random-masking ablation);
``tau_final = 0`` ends on masking exactly the most text-responsive patches.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import attention_guided_mask, cross_modal_attention_score
from ..ops.masked_gather_scatter import MaskedScatter
from .config import AttMIMConfig
from .fusion import TransformerBlock, init_weights, sincos_pos_embed_2d
from .vit import VisionTransformer, patchify

__all__ = [
    "MIM_TARGETS",
    "AttMIM",
    "MIMDecoder",
    "MIMHead",
    "MIMOutput",
    "PatchGrid",
    "dilate_scores",
    "scale_gradient",
    "stem_cells",
    "target_dim",
    "tau_schedule",
    "text_guidance",
]

MIM_TARGETS = ("pixels", "stem")
"""Values of ``attmim.target`` (see :meth:`AttMIM.target`)."""

DEFAULT_GUIDE_SCALE = 1.0 / 0.07
"""Guidance logit scale of a standalone AttMIM without ``config.guide_scale`` (the model's
objective follows its learned scale instead): ``1 / 0.07``, the logit scale the contrastive loss
starts from by default (``ContrastiveConfig.init_temperature``)."""


def tau_schedule(step: int, tau_final: float, warmup_steps: int, anneal_steps: int) -> float:
    """The masking temperature at ``step`` (see the module docstring).

    Args:
        step: optimiser step (0-based).
        tau_final: the temperature reached after the annealing (``inf`` = always uniform).
        warmup_steps: steps of uniform masking.
        anneal_steps: steps of the linear ramp of ``1 / tau`` (0 = jump to ``tau_final``).

    Returns:
        tau in ``[tau_final, inf]``.
    """
    tau_final = float(tau_final)
    if math.isnan(tau_final) or tau_final < 0:
        raise ValueError(f"tau_final must be >= 0; got {tau_final}")
    if math.isinf(tau_final) or step < warmup_steps:
        return math.inf
    if anneal_steps <= 0:
        return tau_final
    frac = min(1.0, (step - warmup_steps) / anneal_steps)
    if frac <= 0.0:
        return math.inf
    return tau_final / frac


def dilate_scores(scores: Tensor, grid: int, kernel: int) -> Tensor:
    """Spread each patch's guidance to its neighbours before the mask is drawn.

    Morphological dilation on the patch grid: every patch takes the highest score of its
    ``kernel × kernel`` neighbourhood, then rows are renormalised. The text points at part of
    a lesion; a lesion is contiguous, so masking the neighbourhood of what it points at covers
    more of it (``attmim.mask_dilation``; the attention map itself is unchanged).

    Args:
        scores (Tensor[B, P]): guidance scores, ``P = grid²``.
        grid: patches per side.
        kernel: odd neighbourhood size; 1 (or less) returns ``scores`` unchanged.

    Returns:
        Tensor[B, P] float32, rows summing to 1.
    """
    if kernel <= 1:
        return scores
    if kernel % 2 == 0:
        raise ValueError(f"mask_dilation must be odd; got {kernel}")
    if scores.shape[-1] != grid * grid:
        raise ValueError(f"scores have {scores.shape[-1]} patches, not grid² = {grid * grid}")
    spread = F.max_pool2d(
        scores.float().view(-1, 1, grid, grid), kernel, stride=1, padding=kernel // 2
    ).flatten(1)
    return spread / spread.sum(dim=1, keepdim=True).clamp_min(1e-12)


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``scale`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` unchanged, its gradient multiplied by ``scale`` (``attmim.encoder_grad_scale``).

    Between the encoder and the decoder it sets how strongly the reconstruction pulls on the
    encoder without changing the decoder's own learning rate (a larger loss weight would).
    """
    if scale == 1.0 or not x.requires_grad:
        return x
    return _ScaleGradient.apply(x, float(scale))


def target_dim(encoder: VisionTransformer, target: str) -> int:
    """Width of AttMIM's per-patch target for ``encoder``: ``patch² · C`` pixels or the
    stem's channels. Raises ``ValueError`` for an unknown target or a ``stem`` target
    without a frozen CNN stem."""
    if target not in MIM_TARGETS:
        raise ValueError(f"attmim.target must be one of {list(MIM_TARGETS)}; got {target!r}")
    if target == "pixels":
        return encoder.patch_size**2 * encoder.in_chans
    if encoder.stem is None or not encoder.stem.frozen:
        raise ValueError(
            "attmim.target = 'stem' predicts a frozen CNN stem's features: set vision.stem "
            "(e.g. 'efficientnet-lite0-s16') with vision.stem_frozen = true, or use "
            "attmim.target = 'pixels'"
        )
    return encoder.stem.channels


@dataclass
class MIMOutput:
    """Output of :class:`AttMIM`.

    Attributes:
        loss: scalar MSE over the masked patches (0 when nothing is masked).
        pred (Tensor[B, P, target_dim]): the prediction of every patch's target
            (:meth:`AttMIM.target`).
        mask (Tensor[B, P] bool): True = masked.
        scores (Tensor[B, P] float32): guidance scores (uniform ``1 / P`` when unguided).
        keep_idx (Tensor[B, K] int64), mask_idx (Tensor[B, P - K] int64): ascending.
        visible (Tensor[B, K, D]): encoder states of the visible patches (with grad).
        pooled (Tensor[B, D]): pooled state of the visible-patch encoding.
        tau: the temperature used.
    """

    loss: Tensor
    pred: Tensor
    mask: Tensor
    scores: Tensor
    keep_idx: Tensor
    mask_idx: Tensor
    visible: Tensor
    pooled: Tensor
    tau: float


class MIMDecoder(nn.Module):
    """Light image decoder: mask tokens in, per-patch pixels out.

    Args:
        encoder_width: width of the visible-token states.
        grid_size: patches per side (P = grid_size²).
        patch_dim: pixels per patch (patch² · C).
        width, depth, heads: decoder sizes.
        context_dim: width of the cross-attention memory (text); None = self-attention only.
    """

    def __init__(
        self,
        encoder_width: int,
        grid_size: int,
        patch_dim: int,
        width: int = 512,
        depth: int = 4,
        heads: int = 16,
        context_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.num_patches = grid_size**2
        self.scatter = MaskedScatter(encoder_width)
        self.embed = nn.Linear(encoder_width, width)
        self.register_buffer(
            "pos_embed", sincos_pos_embed_2d(width, grid_size)[None], persistent=False
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(width, heads, 4.0, context_dim=context_dim) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, patch_dim)
        init_weights(self)
        nn.init.normal_(self.scatter.mask_token, std=0.02)

    def forward(
        self,
        visible: Tensor,
        keep_idx: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """Decode.

        Args:
            visible (Tensor[B, K, D_enc]): visible-token states.
            keep_idx (Tensor[B, K] int64): their patch positions.
            context (Tensor[B, T, context_dim] | None): text states.
            context_mask (Tensor[B, T] bool | None): True = attend.

        Returns:
            Tensor[B, P, patch_dim].
        """
        x = self.scatter(visible, keep_idx, self.num_patches)
        x = self.embed(x) + self.pos_embed.to(visible.dtype)
        for block in self.blocks:
            x = block(x, context=context, context_mask=context_mask)
        return self.head(self.norm(x))


def text_guidance(
    text_keys: Tensor, patch_keys: Tensor, text_weight: Tensor, scale: float
) -> Tensor:
    """The attention each patch receives from its text: DESIGN §1.1 step 2 (no grad).

    Args:
        text_keys (Tensor[B, T, E]): the text tokens in the shared space (``Pt(states)``).
        patch_keys (Tensor[B, P, E]): the patches in the shared space (``Pv(states)``).
        text_weight (Tensor[B, T]): token weights (0 = padding).
        scale: logit scale of the token → patch softmax.

    Returns:
        Tensor[B, P] float32, rows summing to 1.
    """
    with torch.no_grad():
        q = F.normalize(text_keys.detach(), dim=-1)
        k = F.normalize(patch_keys.detach(), dim=-1)
        if q.shape[-1] != k.shape[-1]:
            raise ValueError(
                f"guidance compares text and patch states of widths {q.shape[-1]} and "
                f"{k.shape[-1]}; pass image_proj/text_proj to AttMIM"
            )
        dtype = torch.promote_types(q.dtype, k.dtype)
        return cross_modal_attention_score(
            q.to(dtype), k.to(dtype), text_weight.float(), float(scale)
        ).float()


@dataclass(frozen=True)
class PatchGrid:
    """The image encoder's geometry a MIM head needs (no reference to the encoder).

    Attributes:
        width: D, the encoder's token width.
        grid_size: patches per side (``P = grid_size²``).
        patch_size: pixels per patch side.
        target_dim: width of the per-patch target (:func:`target_dim`).
    """

    width: int
    grid_size: int
    patch_size: int
    target_dim: int

    @property
    def num_patches(self) -> int:
        """P."""
        return self.grid_size**2

    @classmethod
    def of(cls, encoder: VisionTransformer, target: str) -> PatchGrid:
        """The grid of ``encoder`` for the ``attmim.target`` ``target``."""
        return cls(
            encoder.width,
            encoder.grid_size,
            encoder.patch_size,
            target_dim(encoder, target),
        )


class MIMHead(nn.Module):
    """AttMIM's head on tensors: the mask schedule, the mask, the decoder and the loss.

    It holds no tower: the caller encodes (the whole view for the guidance, the visible
    patches of the masked view) and hands the states in. :class:`AttMIM` is the standalone
    block (head + its own encoder); :class:`~mmclip.models.objective.PretrainingObjective`
    uses the head with the model's towers.

    Args:
        grid: the encoder's :class:`PatchGrid`.
        config: knobs (:class:`~mmclip.models.AttMIMConfig`).
        text_dim: width H of the text states; None = image-only (no cross-attention).
    """

    def __init__(self, grid: PatchGrid, config: AttMIMConfig, text_dim: int | None) -> None:
        super().__init__()
        if not 0.0 <= config.mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must lie in [0, 1]; got {config.mask_ratio}")
        self.config = config
        self.grid = grid
        self.text_dim = text_dim
        context = text_dim if (text_dim is not None and config.decoder_cross_attention) else None
        self.decoder = MIMDecoder(
            grid.width,
            grid.grid_size,
            grid.target_dim,
            width=config.decoder_width,
            depth=config.decoder_depth,
            heads=config.decoder_heads,
            context_dim=context,
        )
        self.step = 0

    def set_step(self, step: int) -> None:
        """Set the optimiser step that drives the temperature schedule."""
        self.step = int(step)

    def current_tau(self, step: int | None = None) -> float:
        """``tau_schedule`` at ``step`` (default: the step set by :meth:`set_step`)."""
        c = self.config
        return tau_schedule(
            self.step if step is None else step,
            c.tau_final,
            c.guide_warmup_steps,
            c.tau_anneal_steps,
        )

    def guide_scale(self) -> float:
        """``config.guide_scale``, else :data:`DEFAULT_GUIDE_SCALE` (``1 / 0.07``).

        :class:`~mmclip.models.objective.PretrainingObjective` passes its learned scale
        instead when ``config.guide_scale`` is None (its :meth:`guide_scale`).
        """
        if self.config.guide_scale is not None:
            return float(self.config.guide_scale)
        return DEFAULT_GUIDE_SCALE

    def choose_mask(
        self,
        scores: Tensor | None,
        batch: int,
        device: torch.device,
        tau: float,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The mask drawn from the guidance at temperature ``tau``.

        Args:
            scores (Tensor[B, P] float32 | None): guidance (:func:`text_guidance`); None or
                ``tau = inf`` masks uniformly.
            batch, device: B and where the mask lives.
            tau: the temperature.
            generator: random source of the mask.

        Returns:
            scores (Tensor[B, P] float32; uniform ``1 / P`` when unguided), keep_idx
            (Tensor[B, K]), mask_idx (Tensor[B, P - K]), mask (Tensor[B, P] bool).
        """
        num_patches = self.grid.num_patches
        if scores is None or math.isinf(tau) or batch == 0:
            scores = torch.full((batch, num_patches), 1.0 / num_patches, device=device)
            sampling = scores
        else:
            sampling = dilate_scores(scores, self.grid.grid_size, self.config.mask_dilation)
        keep_idx, mask_idx, mask = attention_guided_mask(
            sampling, self.config.mask_ratio, tau, generator=generator
        )
        return scores, keep_idx, mask_idx, mask

    def target(self, images: Tensor, cells: Tensor | None = None) -> Tensor:
        """Regression target of every patch (``config.target``).

        ``pixels``: the patch's pixels, per-patch normalised when ``norm_pix_loss`` (MAE).
        ``stem``: the frozen CNN stem's features of the cell in the *whole* image, layer-
        normalised per cell (a fixed teacher, as MaskFeat / MRM predict features rather than
        pixels): the network must infer what the hidden cell shows, not copy its texture.

        Args:
            images (Tensor[B, C, H, W]).
            cells (Tensor[B, P, C_s] | None): the stem's per-cell features of ``images``
                (:attr:`ViTOutput.cells`); required by the ``stem`` target.

        Returns:
            Tensor[B, P, target_dim] float32 (no gradient).
        """
        if self.config.target == "stem":
            if cells is None:
                raise ValueError("the 'stem' target needs the stem's cell features (cells=)")
            cells = cells.detach().float()
            return F.layer_norm(cells, cells.shape[-1:], eps=1e-6)
        target = patchify(images.float(), self.grid.patch_size)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True, unbiased=False)
            target = (target - mean) / (var + 1e-6).sqrt()
        return target

    def reconstruct(
        self,
        visible: Tensor,
        keep_idx: Tensor,
        mask: Tensor,
        target: Tensor,
        text_states: Tensor | None = None,
        text_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Decode the visible states (with the text) and score the masked patches.

        Args:
            visible (Tensor[B, K, D]): the masked view's visible-patch states (with grad).
            keep_idx (Tensor[B, K] int64), mask (Tensor[B, P] bool): from :meth:`choose_mask`.
            target (Tensor[B, P, target_dim]): :meth:`target`.
            text_states (Tensor[B, T, H] | None): the decoder's cross-attention memory.
            text_mask (Tensor[B, T] bool | None): text tokens to attend to.

        Returns:
            loss (scalar MSE over the masked patches; 0 when none), pred
            (Tensor[B, P, target_dim]).
        """
        context = None
        cross = bool(self.decoder.blocks) and self.decoder.blocks[0].cross is not None
        if text_states is not None and cross:
            context = text_states.detach() if self.config.detach_text else text_states
        pred = self.decoder(
            scale_gradient(visible, self.config.encoder_grad_scale),
            keep_idx,
            context,
            text_mask if context is not None else None,
        )
        per_patch = (pred.float() - target).pow(2).mean(dim=-1)  # [B, P]
        weight = mask.float()
        return (per_patch * weight).sum() / weight.sum().clamp_min(1.0), pred

    def masked_view(
        self,
        encoder: VisionTransformer,
        images: Tensor,
        scores: Tensor | None,
        tau: float,
        generator: torch.Generator | None = None,
        cells: Tensor | None = None,
        text_states: Tensor | None = None,
        text_mask: Tensor | None = None,
    ) -> MIMOutput:
        """The whole masked-image step with ``encoder`` (passed in, not held).

        Draw the mask from ``scores`` (None: uniform), encode the visible patches (a CNN
        stem sees the hidden cells greyed), decode with the text, score the hidden patches.

        Args:
            encoder: the image tower.
            images (Tensor[B, C, H, W]); scores (Tensor[B, P] | None); tau; generator: as
                :meth:`choose_mask`.
            cells (Tensor[B, P, C_s] | None): the stem's features of the whole images when
                already computed (``stem`` target); None computes them.
            text_states (Tensor[B, T, H] | None), text_mask (Tensor[B, T] bool | None): the
                decoder's memory (None: image-only).

        Returns:
            :class:`MIMOutput`.
        """
        scores, keep_idx, mask_idx, mask = self.choose_mask(
            scores, images.shape[0], images.device, tau, generator
        )
        encoded = encoder(images, keep_idx=keep_idx)
        if cells is None and self.config.target == "stem":
            cells = stem_cells(encoder, images)
        loss, pred = self.reconstruct(
            encoded.tokens, keep_idx, mask, self.target(images, cells), text_states, text_mask
        )
        return MIMOutput(
            loss=loss,
            pred=pred,
            mask=mask,
            scores=scores,
            keep_idx=keep_idx,
            mask_idx=mask_idx,
            visible=encoded.tokens,
            pooled=encoded.pooled,
            tau=tau,
        )


def stem_cells(encoder: VisionTransformer, images: Tensor) -> Tensor:
    """The frozen stem's per-cell features of the whole ``images`` (no grad):
    Tensor[B, P, C_s], the ``stem`` target's input."""
    stem = encoder.stem
    if stem is None:
        raise ValueError("the 'stem' target needs an encoder with a CNN stem")
    with torch.no_grad():
        return stem.cell_features(images)


class AttMIM(MIMHead):
    """Attention-guided masked image modelling around its own :class:`VisionTransformer`.

    Usable on its own::

        mim = AttMIM(vit, text_dim=128)
        out = mim(images, text_states, text_weight)   # MIMOutput(loss, pred, mask, scores…)
        out = mim(images)                             # image-only: uniform mask, no cross-attn

    Args:
        encoder: the image encoder (``self.encoder``, a sub-module).
        config: knobs (:class:`~mmclip.models.AttMIMConfig`); keyword ``overrides`` replace
            single fields, e.g. ``AttMIM(vit, text_dim=128, mask_ratio=0.6)``.
        text_dim: width H of the text states; None = image-only (no cross-attention).
        image_proj, text_proj: the contrastive heads ``Pv`` (D → E) and ``Pt`` (H → E)
            used by the guidance (sub-modules). Both None: the guidance compares raw states
            (needs ``H == D``).
    """

    def __init__(
        self,
        encoder: VisionTransformer,
        config: AttMIMConfig | None = None,
        *,
        text_dim: int | None = None,
        image_proj: nn.Module | None = None,
        text_proj: nn.Module | None = None,
        **overrides: object,
    ) -> None:
        config = dataclasses.replace(config or AttMIMConfig(), **overrides)  # type: ignore[arg-type]
        if (image_proj is None) != (text_proj is None):
            raise ValueError("pass both image_proj and text_proj, or neither")
        super().__init__(PatchGrid.of(encoder, config.target), config, text_dim)
        self.encoder = encoder
        self.image_proj = image_proj if image_proj is not None else nn.Identity()
        self.text_proj = text_proj if text_proj is not None else nn.Identity()

    @torch.no_grad()
    def guidance_scores(
        self,
        images: Tensor,
        text_states: Tensor,
        text_weight: Tensor,
        guide_states: Tensor | None = None,
        scale: float | None = None,
    ) -> Tensor:
        """Attention each patch receives from the text (no grad).

        Args:
            images (Tensor[B, C, H, W]).
            text_states (Tensor[B, T, H_t]): text token states.
            text_weight (Tensor[B, T]): token weights (0 = padding).
            guide_states (Tensor[B, P, D] | None): precomputed all-patch states; None runs
                the encoder (first ``guide_depth`` blocks) on all patches.
            scale: similarity logit scale (default :meth:`guide_scale`).

        Returns:
            Tensor[B, P] float32, rows summing to 1.
        """
        if guide_states is None:
            guide_states = self.encoder(images, depth=self.config.guide_depth).tokens
        return text_guidance(
            self.text_proj(text_states),
            self.image_proj(guide_states),
            text_weight,
            self.guide_scale() if scale is None else scale,
        )

    def target(self, images: Tensor, cells: Tensor | None = None) -> Tensor:
        """:meth:`MIMHead.target`; the ``stem`` target's cells are computed when not given."""
        if self.config.target == "stem" and cells is None:
            cells = stem_cells(self.encoder, images)
        return super().target(images, cells)

    @staticmethod
    def _text_weight(
        batch: int, text_states: Tensor | None, text_weight: Tensor | None
    ) -> Tensor | None:
        """Check the text inputs; the guidance weights (all ones by default)."""
        if text_states is None:
            return text_weight
        if text_states.ndim != 3 or text_states.shape[0] != batch:
            raise ValueError(
                f"text_states must have shape ({batch}, T, H); got {tuple(text_states.shape)}"
            )
        if text_weight is None:
            return text_states.new_ones(text_states.shape[:2], dtype=torch.float32)
        if tuple(text_weight.shape) != tuple(text_states.shape[:2]):
            raise ValueError(
                f"text_weight must have shape {tuple(text_states.shape[:2])}; "
                f"got {tuple(text_weight.shape)}"
            )
        return text_weight

    def forward(
        self,
        images: Tensor,
        text_states: Tensor | None = None,
        text_weight: Tensor | None = None,
        *,
        text_mask: Tensor | None = None,
        guide_states: Tensor | None = None,
        tau: float | None = None,
        step: int | None = None,
        guide_scale: float | None = None,
        generator: torch.Generator | None = None,
    ) -> MIMOutput:
        """Mask, encode the visible patches, decode, and score the masked patches.

        Args:
            images (Tensor[B, C, H, W]): model-sized images.
            text_states (Tensor[B, T, H_t] | None): text token states (with grad: memory
                of the decoder's cross-attention). None = image-only: uniform masking,
                no cross-attention.
            text_weight (Tensor[B, T] | None): guidance weight per token (0 = padding,
                1 = token, ``entity_weight`` = entity); also the cross-attention mask
                (``> 0``) unless ``text_mask`` is given. Default: all ones.
            text_mask (Tensor[B, T] bool | None): text tokens the decoder attends to
                (default ``text_weight > 0``).
            guide_states (Tensor[B, P, D] | None): precomputed all-patch encoder states
                for the guidance (detached).
            tau: temperature override; default :meth:`current_tau` (``step``).
            step: step for the schedule; default the one set by :meth:`set_step`.
            guide_scale: similarity logit scale of the guidance (default :meth:`guide_scale`).
            generator: random source of the mask.

        Returns:
            :class:`MIMOutput`.
        """
        self.encoder.check_images(images)
        batch = images.shape[0]
        text_weight = self._text_weight(batch, text_states, text_weight)
        tau_used = (
            math.inf
            if text_states is None
            else float(self.current_tau(step) if tau is None else tau)
        )
        scores = None
        if text_states is not None and not math.isinf(tau_used) and batch:
            assert text_weight is not None
            scores = self.guidance_scores(
                images, text_states, text_weight, guide_states, guide_scale
            )
        if text_states is not None and text_mask is None:
            assert text_weight is not None
            text_mask = text_weight > 0
        return self.masked_view(
            self.encoder,
            images,
            scores,
            tau_used,
            generator,
            text_states=text_states,
            text_mask=None if text_mask is None else text_mask.bool(),
        )
