"""Which patches the text chose: AttMIM guidance and masks on evaluation images.

:func:`guided_masks` runs the model's guidance (text → patch attention, entity tokens
up-weighted) on image–report pairs and draws the attention-guided mask at the model's final
masking temperature; :func:`lesion_overlap` measures, on synthetic data with lesion masks, how
many lesion patches the guided mask covers compared with uniform random masking at the same
ratio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor

__all__ = [
    "GuidedMasks",
    "LesionOverlap",
    "guided_masks",
    "lesion_overlap",
    "lesion_patches",
    "load_lesion_masks",
]


@dataclass
class GuidedMasks:
    """Guidance and masks of a batch of pairs.

    Attributes:
        scores (Tensor[B, P] float32): attention each patch receives from the text (rows sum
            to 1).
        guided (Tensor[B, P] bool): the attention-guided mask (True = masked) at ``tau``.
        random (Tensor[B, P] bool): a uniform random mask of the same ratio.
        tau: the temperature used.
        grid: patches per side.
    """

    scores: Tensor
    guided: Tensor
    random: Tensor
    tau: float
    grid: int


@torch.no_grad()
def guided_masks(
    model: Any,
    images: Tensor,
    texts: Sequence[str],
    tau: float | None = None,
    seed: int = 0,
) -> GuidedMasks:
    """The model's AttMIM guidance and masks for image–text pairs.

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` with a tokenizer.
        images (Tensor[B, C, S, S]): evaluation-transformed images.
        texts: the B reports.
        tau: masking temperature (default: the model's ``attmim.tau_final``; ``inf`` gives
            uniform masks).
        seed: seeds the Gumbel noise of both masks.
    """
    from mmclip.data import RadiologyTextEncoder
    from mmclip.models import entity_token_weights
    from mmclip.ops import attention_guided_mask

    if images.shape[0] != len(texts):
        raise ValueError(f"{images.shape[0]} images but {len(texts)} texts")
    model.eval()
    device = next(model.parameters()).device
    cfg = model.config
    encoder = RadiologyTextEncoder(model.tokenizer, cfg.text.max_length)
    tok = encoder(list(texts))
    ids, attn = tok.input_ids.to(device), tok.attention_mask.to(device)
    weight = entity_token_weights(
        attn,
        tok.span_offsets.to(device),
        tok.spans.to(device),
        cfg.attmim.entity_weight,
        tok.special_tokens_mask.to(device),
    )
    states = model.text(ids, attn).tokens
    images = images.to(device)
    scale = cfg.attmim.guide_scale
    if scale is None:
        scale = float(model.contrastive.scale())
    scores = model.attmim.guidance_scores(images, states, weight, scale=scale).float()
    tau = float(cfg.attmim.tau_final if tau is None else tau)
    ratio = cfg.attmim.mask_ratio
    generator = torch.Generator(device=device).manual_seed(seed)
    _, _, guided = attention_guided_mask(scores, ratio, tau, generator=generator)
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    _, _, random = attention_guided_mask(scores, ratio, math.inf, generator=generator)
    return GuidedMasks(scores.cpu(), guided.cpu(), random.cpu(), tau, model.visual.grid_size)


def load_lesion_masks(paths: Sequence[Any], size: int) -> NDArray[np.bool_]:
    """Lesion-mask PNGs (non-zero = lesion), resized to ``size`` × ``size``: array[B, S, S]."""
    from PIL import Image

    out = np.zeros((len(paths), size, size), dtype=bool)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            mask = np.asarray(image.convert("L").resize((size, size), Image.Resampling.NEAREST))
        out[i] = mask > 0
    return out


def lesion_patches(masks: NDArray[np.bool_], grid: int, min_fraction: float = 0.1) -> Tensor:
    """Patches whose area is at least ``min_fraction`` lesion: Tensor[B, grid²] bool."""
    t = torch.as_tensor(masks, dtype=torch.float32)[:, None]
    share = F.adaptive_avg_pool2d(t, grid)[:, 0]
    return (share >= min_fraction).flatten(1)


@dataclass
class LesionOverlap:
    """How much of the lesions the masks cover (images with at least one lesion patch).

    Attributes:
        guided, random: mean over images of (masked lesion patches / lesion patches).
        guidance_on_lesions: mean share of the guidance score that falls on lesion patches.
        lesion_area: mean share of patches that are lesion (the value of a uniform guidance).
        n_images: images with lesions.
        mask_ratio: the masked fraction.
    """

    guided: float
    random: float
    guidance_on_lesions: float
    lesion_area: float
    n_images: int
    mask_ratio: float

    def to_dict(self) -> dict[str, float | int]:
        """JSON-safe dict."""
        return dict(self.__dict__)


def lesion_overlap(masks: GuidedMasks, lesions: Tensor) -> LesionOverlap:
    """Compare guided and random masks with lesion patches (Tensor[B, P] bool)."""
    if lesions.shape != masks.guided.shape:
        raise ValueError(f"lesions {tuple(lesions.shape)} vs masks {tuple(masks.guided.shape)}")
    has = lesions.any(dim=1)
    if not bool(has.any()):
        return LesionOverlap(math.nan, math.nan, math.nan, math.nan, 0, math.nan)
    les = lesions[has].float()
    count = les.sum(dim=1)

    def cover(mask: Tensor) -> float:
        return float(((mask[has].float() * les).sum(dim=1) / count).mean())

    return LesionOverlap(
        guided=cover(masks.guided),
        random=cover(masks.random),
        guidance_on_lesions=float((masks.scores[has] * les).sum(dim=1).mean()),
        lesion_area=float(les.mean()),
        n_images=int(has.sum()),
        mask_ratio=float(masks.guided.float().mean()),
    )
