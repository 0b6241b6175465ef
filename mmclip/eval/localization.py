"""Does the text find the lesion? Localisation of the text → patch guidance against text-free
baselines, in the same run.

Every method gives one map per image over the model's patch grid (``[P]``, ``P = grid²``,
read as a distribution after dividing by its sum). On the images with at least one lesion
patch, :func:`compare_maps` measures each map the same way:

- **concentration** = (mean share of the map on the lesion patches) ÷ (mean share of the
  patches that are lesion patches); 1 = no information (a ratio of means over images, as in
  :func:`~mmclip.eval.masks.lesion_overlap`);
- **pointing game** = the most-attended patch is a lesion patch; ties count as a random pick
  among the tied patches, so a uniform map scores the chance value (lesion patches ÷ P);
- **lesion-hit** = share of the lesion patches covered by AttMIM's mask drawn from the map
  (Gumbel-top-k at the model's mask ratio and temperature, dilated as in training,
  :func:`~mmclip.eval.masks.mask_hit_rate`), averaged over ``n_draws`` draws per image.

with 95 % bootstrap intervals over images (the same resamples for every method) and the
differences of the reference map (the model's) from each baseline.

The text-free baselines (:data:`LOCALIZATION_BASELINES`, :func:`baseline_maps`):

- ``uniform``: the same value on every patch (its masks are uniform random masks);
- ``image-minus-mean``: per patch, the mean over its pixels of |image − mean training image|
  (intensities in [0, 1]; the mean of *all* training-split images, nodule and normal);
- ``brightest``: per patch, the mean pixel intensity;
- ``location-prior``: per patch, the share of the training-split lesion images in which
  that patch is a lesion patch;
- ``wrong-text``: the model's own guidance with a wrong text — for a JSRT nodule, the finding
  text of another image whose nodule is on the other side (:func:`wrong_side_texts`).

:func:`evaluate_localization` runs it all for a trained model on JSRT-style records (nodule
geometry in ``meta``, see :mod:`mmclip.data.sources.jsrt`); :func:`compare_maps` takes
precomputed maps (any data with lesion patches, e.g. the synthetic demo).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor

from .masks import guidance_maps_for_texts, mask_hit_rate

__all__ = [
    "BASELINE_DESCRIPTIONS",
    "LOCALIZATION_BASELINES",
    "LOCALIZATION_MEASURES",
    "TEXT_FREE_BASELINES",
    "LocalizationResult",
    "MapMeasures",
    "baseline_maps",
    "best_text_free",
    "compare_maps",
    "evaluate_localization",
    "image_intensity",
    "localization_table",
    "measure_with_baselines",
    "nodule_patches",
    "patch_means",
    "wrong_side_texts",
]

logger = logging.getLogger(__name__)

LOCALIZATION_BASELINES: tuple[str, ...] = (
    "uniform",
    "image-minus-mean",
    "brightest",
    "location-prior",
    "wrong-text",
)
"""The baselines, in table order: the four text-free maps, then the model with a wrong text."""

TEXT_FREE_BASELINES: tuple[str, ...] = LOCALIZATION_BASELINES[:4]
"""The baselines that read no text (all but ``wrong-text``)."""

LOCALIZATION_MEASURES: tuple[str, ...] = ("concentration", "pointing_game", "lesion_hit")
"""The measures of every map, each with a bootstrap interval."""


def best_text_free(methods: Mapping[str, Mapping[str, Any]], measure: str) -> float:
    """The best value of ``measure`` among the text-free baselines present (NaN: none).

    Args:
        methods: method → its measures, as in ``LocalizationResult.to_dict()["methods"]``.
        measure: one of :data:`LOCALIZATION_MEASURES`.
    """
    values = [float(methods[m][measure]) for m in TEXT_FREE_BASELINES if m in methods]
    return max(values) if values else math.nan


BASELINE_DESCRIPTIONS: dict[str, str] = {
    "uniform": "the same value on every patch (uniform random masks; chance pointing game)",
    "image-minus-mean": "per patch, mean |image − mean training image| (intensities in [0, 1])",
    "brightest": "per patch, the mean pixel intensity",
    "location-prior": "per patch, the share of training lesion images where it is a lesion patch",
    "wrong-text": "the model's guidance with a wrong text",
}
"""What each baseline map is (the table's notes)."""


@dataclass
class MapMeasures:
    """The localisation measures of one map over the images with lesion patches.

    Attributes:
        concentration: ``on_lesion / lesion_area`` (1 = no information).
        pointing_game: share of images whose most-attended patch is a lesion patch (ties:
            the expected value of a random pick among them).
        lesion_hit: mean share of the lesion patches that the mask drawn from the map covers
            (mean over the draws, then over images).
        on_lesion: mean share of the map on lesion patches.
        lesion_area: mean share of the patches that are lesion patches.
        n_images: images with at least one lesion patch.
        intervals: 95 % bootstrap interval of each of :data:`LOCALIZATION_MEASURES`.
    """

    concentration: float
    pointing_game: float
    lesion_hit: float
    on_lesion: float
    lesion_area: float
    n_images: int
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        out: dict[str, Any] = {k: v for k, v in self.__dict__.items() if k != "intervals"}
        out["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        return out


@dataclass
class LocalizationResult:
    """The measures of the model's map and of each baseline, in one run.

    Attributes:
        methods: name → :class:`MapMeasures`, the reference (``model``) first when present.
        differences: baseline → measure → ``(reference − baseline, lo, hi)``: the paired
            difference with its 95 % bootstrap interval (empty without a reference).
        n_images: images with at least one lesion patch.
        grid: patches per side.
        mask_ratio, tau, mask_dilation: how the masks are drawn.
        n_draws: masks drawn per image and map.
        n_resamples: bootstrap resamples.
        reference: the row the differences are taken from (None: no differences).
        notes: method → what its map is (the table's notes).
        setup: anything else worth keeping with the result (data, split, texts).
    """

    methods: dict[str, MapMeasures]
    differences: dict[str, dict[str, tuple[float, float, float]]]
    n_images: int
    grid: int
    mask_ratio: float
    tau: float
    mask_dilation: int
    n_draws: int
    n_resamples: int
    reference: str | None = "model"
    notes: dict[str, str] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``tau = inf`` becomes the string ``"inf"``)."""
        return {
            "methods": {k: v.to_dict() for k, v in self.methods.items()},
            "differences": {
                k: {m: list(t) for m, t in v.items()} for k, v in self.differences.items()
            },
            "n_images": self.n_images,
            "grid": self.grid,
            "mask_ratio": self.mask_ratio,
            "tau": "inf" if math.isinf(self.tau) else self.tau,
            "mask_dilation": self.mask_dilation,
            "n_draws": self.n_draws,
            "n_resamples": self.n_resamples,
            "reference": self.reference,
            "notes": dict(self.notes),
            "setup": dict(self.setup),
        }

    def markdown(self) -> str:
        """:func:`localization_table` of this result."""
        return localization_table(self)


# --------------------------------------------------------------------------------------------
# geometry and baseline maps
# --------------------------------------------------------------------------------------------


def nodule_patches(
    x: Sequence[float] | NDArray[np.float64],
    y: Sequence[float] | NDArray[np.float64],
    radius: Sequence[float] | NDArray[np.float64],
    grid: int,
    source_size: float = 512.0,
) -> Tensor:
    """Patches that a nodule disc overlaps (any area), on a ``grid × grid`` patch grid.

    The disc (centre ``x``, ``y``, radius ``radius``, in pixels of a square
    ``source_size × source_size`` image, x to the right, y down) is scaled to the grid: patch
    ``(row, col)`` covers ``[col, col + 1) × [row, row + 1)`` · ``source_size / grid``. A
    patch overlaps the disc when its closest point to the centre is nearer than the radius.
    The model's evaluation transform resizes a square image to ``image_size`` (its centre
    crop is the whole image), so this is the patch grid the model sees.

    Returns:
        Tensor[N, grid²] bool, row-major (patch ``row · grid + col``).
    """
    cx = torch.as_tensor(np.asarray(x, dtype=np.float64))
    cy = torch.as_tensor(np.asarray(y, dtype=np.float64))
    r = torch.as_tensor(np.asarray(radius, dtype=np.float64))
    if not (cx.shape == cy.shape == r.shape) or cx.ndim != 1:
        raise ValueError(f"x, y, radius must be 1-D of one length; got {cx.shape, cy.shape}")
    if grid < 1 or source_size <= 0:
        raise ValueError(f"bad grid {grid} or source_size {source_size}")
    cell = source_size / grid
    edges = torch.arange(grid, dtype=torch.float64) * cell
    near_x = torch.minimum(torch.maximum(cx[:, None], edges), edges + cell)  # [N, grid]
    near_y = torch.minimum(torch.maximum(cy[:, None], edges), edges + cell)
    dx2 = (near_x - cx[:, None]) ** 2
    dy2 = (near_y - cy[:, None]) ** 2
    dist2 = dy2[:, :, None] + dx2[:, None, :]  # [N, row, col]
    return (dist2 < (r**2)[:, None, None]).flatten(1)


def image_intensity(
    images: Tensor, mean: float | Sequence[float], std: float | Sequence[float]
) -> Tensor:
    """Pixel intensities in [0, 1] of model-normalised images.

    Args:
        images (Tensor[B, C, S, S]): ``(pixel − mean) / std`` (the evaluation transform).
        mean, std: the model's ``vision.image_mean`` / ``image_std``.

    Returns:
        Tensor[B, S, S] float32: the channel mean of ``images · std + mean``, clamped to [0, 1].
    """
    m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
    return (images.float() * s + m).mean(dim=1).clamp(0.0, 1.0)


def patch_means(values: Tensor, grid: int) -> Tensor:
    """Mean of a per-pixel map over each patch: values (Tensor[B, S, S]) → Tensor[B, grid²]."""
    return F.adaptive_avg_pool2d(values.float()[:, None], grid)[:, 0].flatten(1)


def baseline_maps(
    intensity: Tensor,
    grid: int,
    mean_intensity: Tensor | None = None,
    location_prior: Tensor | None = None,
) -> dict[str, Tensor]:
    """The image-based text-free maps of a batch (see the module docstring).

    Args:
        intensity (Tensor[B, S, S]): pixel intensities in [0, 1] (:func:`image_intensity`).
        grid: patches per side.
        mean_intensity (Tensor[S, S] | None): the mean training image; without it no
            ``image-minus-mean``.
        location_prior (Tensor[P] | None): the mean lesion-patch map of the training lesion
            images; without it no ``location-prior``.

    Returns:
        name → Tensor[B, P] float32: ``uniform``, ``brightest`` and, when given their
        inputs, ``image-minus-mean`` and ``location-prior`` (in :data:`LOCALIZATION_BASELINES`
        order).
    """
    batch = intensity.shape[0]
    out: dict[str, Tensor] = {"uniform": torch.ones(batch, grid * grid)}
    if mean_intensity is not None:
        diff = (intensity.float() - mean_intensity.float()[None]).abs()
        out["image-minus-mean"] = patch_means(diff, grid)
    out["brightest"] = patch_means(intensity, grid)
    if location_prior is not None:
        if location_prior.shape != (grid * grid,):
            raise ValueError(f"location_prior must be [{grid * grid}]; got {location_prior.shape}")
        out["location-prior"] = location_prior.float()[None].expand(batch, -1).clone()
    return out


# --------------------------------------------------------------------------------------------
# measures
# --------------------------------------------------------------------------------------------


def _per_image(
    scores: Tensor,
    lesions: Tensor,
    mask_ratio: float,
    tau: float,
    grid: int,
    mask_dilation: int,
    n_draws: int,
    seed: int,
) -> dict[str, NDArray[np.float64]]:
    """Per-image quantities of one map on the images with lesions (arrays [N])."""
    p = scores.double().clamp_min(0.0)
    p = p / p.sum(dim=1, keepdim=True)
    les = lesions.double()
    top = torch.isclose(p, p.max(dim=1, keepdim=True).values, rtol=1e-6, atol=0.0)
    hit = mask_hit_rate(
        scores, lesions, mask_ratio, tau, n_draws, seed, grid=grid, dilation=mask_dilation
    )
    return {
        "on": (p * les).sum(dim=1).numpy(),
        "area": les.mean(dim=1).numpy(),
        "point": ((top.double() * les).sum(dim=1) / top.double().sum(dim=1)).numpy(),
        "hit": hit.numpy(),
    }


def _stats(parts: dict[str, NDArray[np.float64]], index: NDArray[np.int64]) -> NDArray[np.float64]:
    """[concentration, pointing_game, lesion_hit] of the images ``index`` ([R, N] or [N])."""
    mean = {k: v[index].mean(axis=-1) for k, v in parts.items()}
    return np.stack([mean["on"] / mean["area"], mean["point"], mean["hit"]], axis=-1)


def compare_maps(
    maps: Mapping[str, Tensor],
    lesions: Tensor,
    mask_ratio: float,
    tau: float,
    grid: int | None = None,
    mask_dilation: int = 1,
    n_draws: int = 100,
    n_resamples: int = 1000,
    seed: int = 0,
    reference: str | None = "model",
    notes: Mapping[str, str] | None = None,
) -> LocalizationResult:
    """The localisation measures of precomputed maps (see the module docstring).

    Args:
        maps: name → Tensor[B, P] non-negative map per image (any scale: rows are divided by
            their sum); e.g. ``{"model": scores, **baseline_maps(...)}``.
        lesions (Tensor[B, P] bool): lesion patches; images without any are left out.
        mask_ratio, tau: the masking ratio and Gumbel-top-k temperature (the model's
            ``attmim.mask_ratio`` / ``tau_final``).
        grid: patches per side (default ``√P``).
        mask_dilation: the model's ``attmim.mask_dilation`` (applied to every map).
        n_draws: masks drawn per image and map for the lesion-hit (at least 1).
        n_resamples: bootstrap resamples (0 = no intervals).
        seed: seeds the masks (the same noise for every map) and the bootstrap.
        reference: the map the differences are taken from (None or absent: none).
        notes: method → description for the table (defaults: :data:`BASELINE_DESCRIPTIONS`).

    Raises:
        ValueError: no maps, shapes that differ from ``lesions``, a negative / non-finite
            map, or a row that sums to zero.
    """
    if not maps:
        raise ValueError("compare_maps needs at least one map")
    if lesions.ndim != 2:
        raise ValueError(f"lesions must be [B, P]; got {tuple(lesions.shape)}")
    patches = lesions.shape[1]
    grid = grid or math.isqrt(patches)
    if grid * grid != patches:
        raise ValueError(f"{patches} patches is not grid² (grid {grid})")
    has = lesions.bool().any(dim=1)
    les = lesions.bool()[has].cpu()
    parts: dict[str, dict[str, NDArray[np.float64]]] = {}
    for name, scores in maps.items():
        if scores.shape != lesions.shape:
            raise ValueError(
                f"map {name!r} is {tuple(scores.shape)}; lesions {tuple(lesions.shape)}"
            )
        s = scores.detach().cpu()[has].double()
        if not torch.isfinite(s).all() or (s < 0).any():
            raise ValueError(f"map {name!r} has negative or non-finite values")
        if (s.sum(dim=1) <= 0).any():
            raise ValueError(f"map {name!r} sums to zero on some image")
        parts[name] = _per_image(s, les, mask_ratio, tau, grid, mask_dilation, n_draws, seed)
    n = int(les.shape[0])
    if reference is not None and reference not in maps:
        reference = None
    methods: dict[str, MapMeasures] = {}
    differences: dict[str, dict[str, tuple[float, float, float]]] = {}
    boot: dict[str, NDArray[np.float64]] = {}
    if n_resamples > 0 and n > 1:
        index = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
        boot = {name: _stats(part, index) for name, part in parts.items()}
    order = ([reference] if reference else []) + [k for k in maps if k != reference]
    for name in order:
        part = parts[name]
        if n == 0:
            methods[name] = MapMeasures(math.nan, math.nan, math.nan, math.nan, math.nan, 0)
            continue
        point = _stats(part, np.arange(n))
        intervals: dict[str, tuple[float, float]] = {}
        if name in boot:
            lo, hi = np.nanpercentile(boot[name], [2.5, 97.5], axis=0)
            intervals = {
                m: (float(lo[i]), float(hi[i])) for i, m in enumerate(LOCALIZATION_MEASURES)
            }
        methods[name] = MapMeasures(
            concentration=float(point[0]),
            pointing_game=float(point[1]),
            lesion_hit=float(point[2]),
            on_lesion=float(part["on"].mean()),
            lesion_area=float(part["area"].mean()),
            n_images=n,
            intervals=intervals,
        )
        if reference is not None and name != reference:
            ref = methods[reference]
            delta = {m: getattr(ref, m) - getattr(methods[name], m) for m in LOCALIZATION_MEASURES}
            entry: dict[str, tuple[float, float, float]] = {}
            for i, m in enumerate(LOCALIZATION_MEASURES):
                if boot:
                    lo, hi = np.nanpercentile(boot[reference][:, i] - boot[name][:, i], [2.5, 97.5])
                    entry[m] = (float(delta[m]), float(lo), float(hi))
                else:
                    entry[m] = (float(delta[m]), math.nan, math.nan)
            differences[name] = entry
    described = {k: v for k, v in BASELINE_DESCRIPTIONS.items() if k in maps}
    described.update(notes or {})
    return LocalizationResult(
        methods=methods,
        differences=differences,
        n_images=n,
        grid=grid,
        mask_ratio=float(mask_ratio),
        tau=float(tau),
        mask_dilation=int(mask_dilation),
        n_draws=int(n_draws),
        n_resamples=int(n_resamples),
        reference=reference,
        notes={k: described[k] for k in order if k in described},
    )


def measure_with_baselines(
    model: Any,
    images: Tensor,
    model_map: Tensor,
    lesions: Tensor,
    *,
    tau: float,
    mean_image: Tensor | None = None,
    location_prior: Tensor | None = None,
    wrong_map: Tensor | None = None,
    baselines: Sequence[str] = LOCALIZATION_BASELINES,
    notes: Mapping[str, str] | None = None,
    n_draws: int = 100,
    n_resamples: int = 1000,
    seed: int = 0,
) -> LocalizationResult:
    """The model's guidance beside the baselines, all measured the same way: the one assembly
    of the baseline rows, for :func:`evaluate_localization` (JSRT nodules) and the evaluation
    suite's lesion section (synthetic lesion masks).

    The rows: ``model`` (``model_map``), then in :data:`LOCALIZATION_BASELINES` order those of
    ``baselines`` that have their inputs — ``uniform`` and ``brightest`` always,
    ``image-minus-mean`` with ``mean_image``, ``location-prior`` with ``location_prior``
    (:func:`baseline_maps` of the images' intensities), and ``wrong-text``, the model's
    guidance with wrong texts (``wrong_map``, given;
    :func:`~mmclip.eval.masks.guidance_maps_for_texts` computes it with ``model_map`` from one
    image-tower pass). Masks are drawn with the model's
    ``attmim.mask_ratio`` / ``mask_dilation`` and ``tau``.

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` with a tokenizer.
        images (Tensor[B, C, S, S]): evaluation-transformed images.
        model_map (Tensor[B, P]): the model's guidance with the right texts.
        lesions (Tensor[B, P] bool): lesion patches on the model's patch grid.
        tau: masking temperature.
        mean_image (Tensor[S, S] | None): the mean training image, intensities in [0, 1].
        location_prior (Tensor[P] | None): per patch, the share of training lesion images
            where it is a lesion patch.
        wrong_map (Tensor[B, P] | None): the model's guidance with a wrong text per image
            (None: no ``wrong-text`` row).
        baselines: the baselines wanted (a subset of :data:`LOCALIZATION_BASELINES`).
        notes: method → description for the table (defaults: :data:`BASELINE_DESCRIPTIONS`).
        n_draws, n_resamples, seed: as :func:`compare_maps`.

    Returns:
        :class:`LocalizationResult` with ``model`` as the reference row.
    """
    cfg = model.config
    grid = int(model.visual.grid_size)
    maps: dict[str, Tensor] = {"model": model_map}
    intensity = image_intensity(images, cfg.vision.image_mean, cfg.vision.image_std)
    for name, value in baseline_maps(intensity, grid, mean_image, location_prior).items():
        if name in baselines:
            maps[name] = value
    if wrong_map is not None and "wrong-text" in baselines:
        maps["wrong-text"] = wrong_map
    return compare_maps(
        {k: maps[k] for k in ["model", *[b for b in LOCALIZATION_BASELINES if b in maps]]},
        lesions,
        mask_ratio=cfg.attmim.mask_ratio,
        tau=tau,
        grid=grid,
        mask_dilation=cfg.attmim.mask_dilation,
        n_draws=n_draws,
        n_resamples=n_resamples,
        seed=seed,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------


def _cell(measures: MapMeasures, name: str, digits: int) -> str:
    value = getattr(measures, name)
    if math.isnan(value):
        return "–"
    lo, hi = measures.intervals.get(name, (math.nan, math.nan))
    text = f"{value:.{digits}f}"
    if not (math.isnan(lo) or math.isnan(hi)):
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text


def _delta(entry: tuple[float, float, float], digits: int) -> str:
    value, lo, hi = entry
    if math.isnan(value):
        return "–"
    text = f"{value:+.{digits}f}"
    if not (math.isnan(lo) or math.isnan(hi)):
        text += f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    return text


def localization_table(result: LocalizationResult) -> str:
    """Markdown: one row per map (concentration, pointing game, lesion-hit with 95 %
    intervals), the paired differences of the reference from each baseline, and notes."""
    lines = [
        "| map | concentration [95% CI] | pointing game [95% CI] | lesion-hit [95% CI] |",
        "|---|---|---|---|",
    ]
    for name, m in result.methods.items():
        label = f"**{name}**" if name == result.reference else name
        lines.append(
            f"| {label} | {_cell(m, 'concentration', 2)}× | {_cell(m, 'pointing_game', 2)} "
            f"| {_cell(m, 'lesion_hit', 3)} |"
        )
    if result.differences:
        lines += [
            "",
            f"| {result.reference} − baseline | Δ concentration | Δ pointing game | Δ lesion-hit |",
            "|---|---|---|---|",
        ]
        for name, entry in result.differences.items():
            lines.append(
                f"| − {name} | {_delta(entry['concentration'], 2)} "
                f"| {_delta(entry['pointing_game'], 2)} | {_delta(entry['lesion_hit'], 3)} |"
            )
    area = next(iter(result.methods.values())).lesion_area if result.methods else math.nan
    tau = "∞" if math.isinf(result.tau) else f"{result.tau:g}"
    lines += [
        "",
        f"{result.n_images} images with lesion patches on a {result.grid}×{result.grid} patch "
        f"grid (lesion patches: {100 * area:.1f}% of the patches on average). Concentration = "
        "share of the map on lesion patches ÷ their share of the patches (1× = no "
        "information). Pointing game = the top patch is a lesion patch (ties: expected "
        f"value). Lesion-hit = share of the lesion patches masked at ratio "
        f"{result.mask_ratio:g}, τ = {tau}, dilation {result.mask_dilation}, mean of "
        f"{result.n_draws} Gumbel-top-k draws per image. 95% bootstrap intervals over images "
        f"({result.n_resamples} resamples, the same for every row; Δ: paired).",
    ]
    if result.notes:
        lines += ["", *(f"- `{k}`: {v}" for k, v in result.notes.items())]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# a model on JSRT-style records
# --------------------------------------------------------------------------------------------


def _has_nodule(record: Any) -> bool:
    meta = record.meta
    return bool(meta.get("nodule")) and all(
        meta.get(k) is not None for k in ("x", "y", "radius_px")
    )


def _lobe(text: str) -> str:
    for word in ("upper", "middle", "lower"):
        if word in text:
            return word
    return ""


def wrong_side_texts(records: Sequence[Any], pool: Sequence[Any] = (), seed: int = 0) -> list[str]:
    """For each nodule record, the finding text of another nodule image on the other side.

    Candidates are the nodule records of ``records`` and ``pool`` whose ``meta["side"]`` is
    the other side; one in the same lobe (upper / middle / lower) is preferred, the pick is
    seeded. A record without a side, or with no candidate, gets
    :data:`~mmclip.data.sources.jsrt.JSRT_NO_NODULE_TEXT`.
    """
    from mmclip.data.sources.jsrt import JSRT_NO_NODULE_TEXT

    rng = random.Random(seed)
    texts: dict[str, list[str]] = {"left": [], "right": []}
    for r in [*records, *pool]:
        side, text = r.meta.get("side"), r.meta.get("finding_text")
        if side in texts and text and text not in texts[side]:
            texts[side].append(text)
    out = []
    for r in records:
        side = r.meta.get("side")
        other = {"left": "right", "right": "left"}.get(side or "")
        if other is None or not texts[other]:
            out.append(JSRT_NO_NODULE_TEXT)
            continue
        lobe = _lobe(r.meta.get("finding_text") or "")
        same = [t for t in texts[other] if lobe and _lobe(t) == lobe]
        out.append(rng.choice(same or texts[other]))
    return out


def _geometry(records: Sequence[Any], grid: int) -> Tensor:
    from PIL import Image

    rows = []
    for r in records:
        with Image.open(r.image_path) as image:
            width, height = image.size
        if width != height:
            raise ValueError(
                f"{r.image_path}: {width}×{height}; the nodule geometry needs square images"
            )
        size = float(r.meta.get("grid_px") or width)
        rows.append(nodule_patches([r.meta["x"]], [r.meta["y"]], [r.meta["radius_px"]], grid, size))
    return torch.cat(rows) if rows else torch.zeros(0, grid * grid, dtype=torch.bool)


@torch.no_grad()
def evaluate_localization(
    model: Any,
    records: Sequence[Any],
    train_records: Sequence[Any] = (),
    *,
    texts: Sequence[str] | None = None,
    prompt: str | None = None,
    wrong_text: str = "other-side",
    baselines: Sequence[str] = LOCALIZATION_BASELINES,
    n_draws: int = 100,
    n_resamples: int = 1000,
    seed: int = 0,
    tau: float | None = None,
    backend: str = "auto",
    batch_size: int = 32,
) -> LocalizationResult:
    """Where a trained model's text → patch guidance falls on real nodules, against the
    text-free baselines, in one run.

    Args:
        model: a trained :class:`~mmclip.models.MMCLIPModel` (with its tokenizer).
        records: evaluation records; those with a nodule (``meta``: ``nodule`` = 1, ``x``,
            ``y``, ``radius_px`` on the ``grid_px`` grid, ``finding_text``, ``side`` — the
            :func:`~mmclip.data.sources.jsrt.load_jsrt` records) are measured, others skipped.
        train_records: training records: their images give the mean image
            (``image-minus-mean``), their nodules the ``location-prior``; empty: those two
            baselines are left out (logged).
        texts: one text per *nodule* record (default: each record's ``finding_text``).
        prompt: one text for every image instead (e.g. ``"Lung nodule."``).
        wrong_text: ``other-side`` (:func:`wrong_side_texts`) or ``normal`` (``"No acute
            cardiopulmonary abnormality."`` for every image).
        baselines: the baselines to run (:data:`LOCALIZATION_BASELINES`).
        n_draws: masks drawn per image and map.
        n_resamples: bootstrap resamples.
        seed: masks, bootstrap and the wrong-text pick.
        tau: masking temperature (default: the model's ``attmim.tau_final``).
        backend: image decoding backend.
        batch_size: pairs per forward pass.

    Returns:
        :class:`LocalizationResult` with the rows ``model`` and each baseline.

    Raises:
        ValueError: no nodule records, an unknown baseline or ``wrong_text``, texts of the
            wrong length, non-square images.
    """
    from mmclip.data.sources.jsrt import JSRT_NO_NODULE_TEXT

    from .embed import load_images

    unknown = [b for b in baselines if b not in LOCALIZATION_BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; known: {list(LOCALIZATION_BASELINES)}")
    if wrong_text not in ("other-side", "normal"):
        raise ValueError(f"wrong_text must be 'other-side' or 'normal'; got {wrong_text!r}")
    nodules = [r for r in records if r.image_path is not None and _has_nodule(r)]
    if not nodules:
        raise ValueError(
            f"none of the {len(records)} records has a nodule with its geometry "
            "(meta nodule=1, x, y, radius_px: the `jsrt` source)"
        )
    if prompt is not None:
        texts = [prompt] * len(nodules)
    elif texts is None:
        texts = [str(r.meta.get("finding_text") or "Lung nodule.") for r in nodules]
    if len(texts) != len(nodules):
        raise ValueError(f"{len(texts)} texts for {len(nodules)} nodule images")
    cfg = model.config
    grid = int(model.visual.grid_size)
    tau = float(cfg.attmim.tau_final if tau is None else tau)
    logger.info("localisation: %d nodule images, %d×%d patches", len(nodules), grid, grid)
    lesions = _geometry(nodules, grid)
    images = load_images(model, nodules, backend=backend)
    notes: dict[str, str] = {
        "model": "the model's text → patch guidance with "
        + (f"the prompt {prompt!r}" if prompt is not None else "each image's finding text")
    }
    train_images = [r for r in train_records if r.image_path is not None]
    mean_image = prior = None
    if ("image-minus-mean" in baselines or "location-prior" in baselines) and not train_images:
        logger.warning("no training records: no image-minus-mean / location-prior baselines")
    if "image-minus-mean" in baselines and train_images:
        train_pixels = load_images(model, train_images, backend=backend)
        mean_image = image_intensity(train_pixels, cfg.vision.image_mean, cfg.vision.image_std)
        mean_image = mean_image.mean(dim=0)
        del train_pixels
        notes["image-minus-mean"] = (
            f"per patch, mean |image − mean of the {len(train_images)} training images| "
            "(nodule and normal; intensities in [0, 1])"
        )
    train_nodules = [r for r in train_images if _has_nodule(r)]
    if "location-prior" in baselines and train_images and not train_nodules:
        logger.warning("no training nodule images: no location-prior baseline")
    if "location-prior" in baselines and train_nodules:
        prior = _geometry(train_nodules, grid).double().mean(dim=0).float()
        notes["location-prior"] = (
            f"per patch, the share of the {len(train_nodules)} training nodule images whose "
            "disc overlaps it"
        )
    wrong: list[str] | None = None
    if "wrong-text" in baselines:
        if wrong_text == "normal":
            wrong = [JSRT_NO_NODULE_TEXT] * len(nodules)
            notes["wrong-text"] = f"the model's guidance with {JSRT_NO_NODULE_TEXT!r}"
        else:
            wrong = wrong_side_texts(nodules, train_nodules, seed)
            notes["wrong-text"] = (
                "the model's guidance with the finding text of another nodule image on the "
                "other side (same lobe when there is one)"
            )
    # the right and the wrong texts against one image-tower pass
    maps = guidance_maps_for_texts(model, images, [texts] + ([wrong] if wrong else []), batch_size)
    result = measure_with_baselines(
        model,
        images,
        maps[0],
        lesions,
        tau=tau,
        mean_image=mean_image,
        location_prior=prior,
        wrong_map=maps[1] if wrong else None,
        baselines=baselines,
        notes=notes,
        n_draws=n_draws,
        n_resamples=n_resamples,
        seed=seed,
    )
    result.setup.update(
        n_nodule_images=len(nodules),
        n_train_images=len(train_images),
        n_train_nodules=len(train_nodules),
        image_size=int(cfg.vision.image_size),
        texts=list(texts),
        wrong_texts=wrong,
    )
    return result
