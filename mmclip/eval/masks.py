"""Which patches the text chose: AttMIM guidance and masks on evaluation images.

:func:`guided_masks` runs the model's guidance (text → patch attention, focus tokens
up-weighted) on image–report pairs and draws the attention-guided mask at the model's final
masking temperature. :func:`lesion_overlap` measures, on synthetic data with lesion masks,
whether the text finds the lesions: attention concentration (share of the attention on
lesion patches ÷ their area share), pointing game (the most-attended patch is a lesion
patch) and lesion-hit (share of the lesion patches the guided mask covers, against a uniform
mask of the same ratio), overall and per finding type, with bootstrap intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor

__all__ = [
    "MEASURES",
    "GuidedMasks",
    "LesionOverlap",
    "guidance_maps",
    "guidance_maps_for_texts",
    "guided_masks",
    "lesion_overlap",
    "lesion_patches",
    "load_lesion_masks",
    "mask_hit_rate",
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
def guidance_maps(model: Any, images: Tensor, texts: Sequence[str], batch_size: int = 32) -> Tensor:
    """The attention each patch receives from its text, as AttMIM's guidance reads it.

    The texts go through the model's tokenizer with their entity and focus spans (present /
    uncertain findings and their laterality / anatomy words weigh more, see
    :func:`~mmclip.models.guidance_token_weights`).

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` with a tokenizer.
        images (Tensor[B, C, S, S]): evaluation-transformed images.
        texts: the B texts (reports, finding texts or prompts).
        batch_size: pairs per forward pass.

    Returns:
        Tensor[B, P] float32 on the CPU, rows summing to 1.
    """
    return guidance_maps_for_texts(model, images, [texts], batch_size)[0]


@torch.no_grad()
def guidance_maps_for_texts(
    model: Any, images: Tensor, text_sets: Sequence[Sequence[str]], batch_size: int = 32
) -> list[Tensor]:
    """:func:`guidance_maps` of the same images with several sets of texts (e.g. each
    image's own report and a wrong one), running the image tower once per image.

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` with a tokenizer.
        images (Tensor[B, C, S, S]): evaluation-transformed images.
        text_sets: sets of B texts each.
        batch_size: images per forward pass.

    Returns:
        One Tensor[B, P] float32 on the CPU per set, rows summing to 1.
    """
    from mmclip.data import RadiologyTextEncoder
    from mmclip.models import guidance_token_weights

    for texts in text_sets:
        if images.shape[0] != len(texts):
            raise ValueError(f"{images.shape[0]} images but {len(texts)} texts")
    model.eval()
    device = next(model.parameters()).device
    cfg = model.config
    encoder = RadiologyTextEncoder(model.tokenizer, cfg.text.max_length)

    def on_device(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device)

    parts: list[list[Tensor]] = [[] for _ in text_sets]
    for start in range(0, images.shape[0], max(1, batch_size)):
        chunk = images[start : start + batch_size].to(device)
        patch_states = model.guidance_patch_states(chunk)
        for texts, out in zip(text_sets, parts, strict=True):
            tok = encoder(list(texts[start : start + batch_size]))
            ids, attn = tok.input_ids.to(device), tok.attention_mask.to(device)
            weight = guidance_token_weights(
                cfg.attmim,
                attn,
                tok.special_tokens_mask.to(device),
                tok.span_offsets.to(device),
                tok.spans.to(device),
                on_device(tok.focus_offsets),
                on_device(tok.focus_spans),
            )
            scores = model.guidance_scores(chunk, ids, attn, weight, patch_states=patch_states)
            out.append(scores.float().cpu())
    empty = torch.zeros(0, model.visual.grid_size**2)
    return [torch.cat(out) if out else empty for out in parts]


@torch.no_grad()
def guided_masks(
    model: Any,
    images: Tensor,
    texts: Sequence[str],
    tau: float | None = None,
    seed: int = 0,
    scores: Tensor | None = None,
) -> GuidedMasks:
    """The model's AttMIM guidance and masks for image–text pairs.

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` with a tokenizer.
        images (Tensor[B, C, S, S]): evaluation-transformed images.
        texts: the B reports.
        tau: masking temperature (default: the model's ``attmim.tau_final``; ``inf`` gives
            uniform masks).
        seed: seeds the Gumbel noise of both masks.
        scores (Tensor[B, P] | None): the guidance of these pairs when already computed
            (:func:`guidance_maps_for_texts`); None computes it.
    """
    from mmclip.models.attmim import dilate_scores
    from mmclip.ops import attention_guided_mask

    if images.shape[0] != len(texts):
        raise ValueError(f"{images.shape[0]} images but {len(texts)} texts")
    cfg = model.config
    if scores is None:
        scores = guidance_maps(model, images, texts, batch_size=max(1, len(texts)))
    device = scores.device
    tau = float(cfg.attmim.tau_final if tau is None else tau)
    ratio = cfg.attmim.mask_ratio
    generator = torch.Generator(device=device).manual_seed(seed)
    sampling = scores
    if not math.isinf(tau):
        sampling = dilate_scores(scores, model.visual.grid_size, cfg.attmim.mask_dilation)
    _, _, guided = attention_guided_mask(sampling, ratio, tau, generator=generator)
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


@torch.no_grad()
def mask_hit_rate(
    scores: Tensor,
    lesions: Tensor,
    mask_ratio: float,
    tau: float,
    n_draws: int = 100,
    seed: int = 0,
    grid: int | None = None,
    dilation: int = 1,
) -> Tensor:
    """Lesion-hit of masks drawn from ``scores``, averaged over ``n_draws`` draws.

    Each draw is AttMIM's mask: Gumbel-top-k (:func:`~mmclip.ops.attention_guided_mask`) at
    ``mask_ratio`` and ``tau`` on the row-normalised scores, dilated first
    (:func:`~mmclip.models.attmim.dilate_scores`, ``dilation`` > 1 and finite ``tau``) as in
    training. A floor of 1e-12 is added to the normalised scores so that patches with zero
    score are drawn at random among themselves (not in index order) when the ratio needs
    them. The noise comes from one generator seeded with ``seed``: maps of the same shape
    get the same noise (common random numbers), a uniform map gives uniform masks.

    Args:
        scores (Tensor[B, P]): non-negative patch scores (any scale; rows are normalised).
        lesions (Tensor[B, P] bool): lesion patches.
        mask_ratio, tau: the masking ratio and temperature.
        n_draws: masks drawn per image (at least 1).
        seed: seeds the noise.
        grid: patches per side (needed for ``dilation`` > 1).
        dilation: odd neighbourhood size of the dilation (1 = none).

    Returns:
        Tensor[B] float64: mean share of the lesion patches masked; NaN for an image without
        lesion patches.
    """
    from mmclip.models.attmim import dilate_scores
    from mmclip.ops import attention_guided_mask

    if scores.shape != lesions.shape:
        raise ValueError(f"scores {tuple(scores.shape)} vs lesions {tuple(lesions.shape)}")
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1; got {n_draws}")
    batch, patches = scores.shape
    sampling = scores.detach().double().cpu().clamp_min(0.0)
    sampling = sampling / sampling.sum(dim=1, keepdim=True).clamp_min(1e-300)
    if dilation > 1 and not math.isinf(tau):
        if grid is None:
            raise ValueError("mask_hit_rate needs grid for dilation > 1")
        sampling = dilate_scores(sampling.float(), grid, dilation).double()
    sampling = (sampling + 1e-12).float()
    les = lesions.cpu().float()
    count = les.sum(dim=1)
    generator = torch.Generator().manual_seed(seed)
    hits = torch.zeros(batch, dtype=torch.float64)
    per_chunk = max(1, 4_000_000 // max(1, batch * patches))
    done = 0
    while done < n_draws:
        k = min(per_chunk, n_draws - done)
        _, _, mask = attention_guided_mask(sampling.repeat(k, 1), mask_ratio, tau, generator)
        covered = (mask.view(k, batch, patches).float() * les).sum(dim=2)
        hits += covered.double().sum(dim=0)
        done += k
    return hits / n_draws / count.double()


MEASURES: tuple[str, ...] = ("guided", "random", "concentration", "pointing_game")
"""The lesion measures that get bootstrap intervals."""


@dataclass
class LesionOverlap:
    """Where the guidance and the masks fall, on images with at least one lesion patch.

    Attributes:
        guided, random: mean over images of (masked lesion patches / lesion patches) for the
            attention-guided mask and a uniform mask of the same ratio ("lesion-hit"; the
            uniform one averaged over ``n_random_draws`` draws when :func:`lesion_overlap`
            is given them).
        guidance_on_lesions: mean share of the guidance score that falls on lesion patches.
        lesion_area: mean share of patches that are lesion (the value of a uniform guidance).
        n_images: images with lesions.
        mask_ratio: the masked fraction.
        concentration: ``guidance_on_lesions / lesion_area`` (1 = no information).
        pointing_game: share of images whose most-attended patch is a lesion patch.
        intervals: 95 % bootstrap interval (over images) of each of :data:`MEASURES`.
        per_finding: the same measures for the images of each group (e.g. the images whose
            only finding is ``effusion``), without ``per_finding``.
    """

    guided: float
    random: float
    guidance_on_lesions: float
    lesion_area: float
    n_images: int
    mask_ratio: float
    concentration: float = math.nan
    pointing_game: float = math.nan
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    per_finding: dict[str, LesionOverlap] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        out: dict[str, Any] = {
            k: v for k, v in self.__dict__.items() if k not in ("intervals", "per_finding")
        }
        out["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        out["per_finding"] = {k: v.to_dict() for k, v in self.per_finding.items()}
        return out


def _measure_images(
    masks: GuidedMasks, lesions: Tensor, n_random_draws: int = 0, seed: int = 0
) -> dict[str, NDArray[np.float64]]:
    """Per-image quantities of the images with lesions (arrays [N])."""
    has = lesions.any(dim=1)
    les = lesions[has].float()
    count = les.sum(dim=1)
    scores = masks.scores[has].float()
    top = scores.argmax(dim=1)

    def cover(mask: Tensor) -> Tensor:
        return (mask[has].float() * les).sum(dim=1) / count

    random = cover(masks.random).double()
    if n_random_draws > 0 and bool(has.any()):
        ratio = float(masks.guided[0].sum()) / masks.guided.shape[1]
        random = mask_hit_rate(
            torch.ones_like(scores), lesions[has], ratio, math.inf, n_random_draws, seed
        )
    return {
        "guided": cover(masks.guided).double().numpy(),
        "random": random.numpy(),
        "on_lesions": (scores * les).sum(dim=1).double().numpy(),
        "area": les.mean(dim=1).double().numpy(),
        "point": les.gather(1, top[:, None])[:, 0].double().numpy(),
        "ratio": masks.guided[has].float().mean(dim=1).double().numpy(),
    }


def _statistics(
    parts: dict[str, NDArray[np.float64]], index: NDArray[np.int64]
) -> NDArray[np.float64]:
    """[guided, random, concentration, pointing_game] of the images ``index`` ([R, N] or [N])."""
    mean = {k: v[index].mean(axis=-1) for k, v in parts.items()}
    return np.stack(
        [mean["guided"], mean["random"], mean["on_lesions"] / mean["area"], mean["point"]], axis=-1
    )


def _overlap(parts: dict[str, NDArray[np.float64]], n_resamples: int, seed: int) -> LesionOverlap:
    n = parts["guided"].shape[0]
    if n == 0:
        return LesionOverlap(math.nan, math.nan, math.nan, math.nan, 0, math.nan)
    point = _statistics(parts, np.arange(n))
    intervals: dict[str, tuple[float, float]] = {}
    if n_resamples > 0 and n > 1:
        rng = np.random.default_rng(seed)
        boot = _statistics(parts, rng.integers(0, n, size=(n_resamples, n)))
        lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
        intervals = {m: (float(lo[i]), float(hi[i])) for i, m in enumerate(MEASURES)}
    return LesionOverlap(
        guided=float(point[0]),
        random=float(point[1]),
        guidance_on_lesions=float(parts["on_lesions"].mean()),
        lesion_area=float(parts["area"].mean()),
        n_images=n,
        mask_ratio=float(parts["ratio"].mean()),
        concentration=float(point[2]),
        pointing_game=float(point[3]),
        intervals=intervals,
    )


def lesion_overlap(
    masks: GuidedMasks,
    lesions: Tensor,
    groups: Sequence[str | None] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    n_random_draws: int = 0,
) -> LesionOverlap:
    """Lesion measures of the guidance and the masks (see :class:`LesionOverlap`).

    Args:
        masks: from :func:`guided_masks`.
        lesions (Tensor[B, P] bool): lesion patches (:func:`lesion_patches`).
        groups: a group name per image (e.g. its only finding; None = in no group) for
            ``per_finding``.
        n_resamples: bootstrap resamples of the intervals (0 = none).
        seed: seeds the bootstrap and the uniform draws.
        n_random_draws: when > 0, the uniform mask's lesion-hit is the mean over this many
            uniform masks of the guided mask's ratio (:func:`mask_hit_rate`), not the one
            ``masks.random`` draw.
    """
    if lesions.shape != masks.guided.shape:
        raise ValueError(f"lesions {tuple(lesions.shape)} vs masks {tuple(masks.guided.shape)}")
    if groups is not None and len(groups) != lesions.shape[0]:
        raise ValueError(f"{len(groups)} groups for {lesions.shape[0]} images")
    parts = _measure_images(masks, lesions, n_random_draws, seed)
    overall = _overlap(parts, n_resamples, seed)
    if groups is not None:
        has = lesions.any(dim=1).numpy()
        kept = [g for g, h in zip(groups, has, strict=True) if h]
        for name in sorted({g for g in kept if g is not None}):
            select = np.array([g == name for g in kept])
            overall.per_finding[name] = _overlap(
                {k: v[select] for k, v in parts.items()}, n_resamples, seed
            )
    return overall
