"""The evaluation suite of a trained model: zero-shot, linear probe, (fine-tune), retrieval and
AttMIM masks, written as ``results.json`` + ``results.md`` + pictures."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmclip.data import XrayRecord
from mmclip.data.records import NO_FINDING

from .embed import encode_records, label_matrix, load_images
from .finetune import FinetuneConfig, finetune
from .masks import (
    guidance_maps_for_texts,
    guided_masks,
    lesion_overlap,
    lesion_patches,
    load_lesion_masks,
)
from .plots import plot_attmim_masks, plot_roc_curves
from .probe import DEFAULT_FRACTIONS, DEFAULT_SEEDS, FewLabelResult, linear_probe
from .report import (
    baseline_table,
    fewlabel_table,
    lesion_table,
    retrieval_table,
    write_json,
    write_markdown,
    zero_shot_table,
)
from .retrieval import evaluate_retrieval
from .zeroshot import evaluate_zero_shot

__all__ = [
    "SuiteOptions",
    "SuiteResult",
    "default_findings",
    "run_suite",
    "select_findings",
    "write_multiclass_zero_shot",
]

logger = logging.getLogger(__name__)


def default_findings(records: Sequence[XrayRecord], min_positive: int = 1) -> list[str]:
    """Findings with prompt phrases that are positive in at least ``min_positive`` records."""
    from mmclip.text.prompts import FINDING_PHRASES

    counts: dict[str, int] = {}
    for record in records:
        for name, value in record.labels.items():
            if value == 1 and name in FINDING_PHRASES:
                counts[name] = counts.get(name, 0) + 1
    return sorted(k for k, v in counts.items() if v >= min_positive)


def select_findings(
    records: Sequence[XrayRecord],
    findings: Sequence[str] | None = None,
    *,
    source: str | None = None,
    need_prompts: bool = True,
) -> list[str]:
    """The findings to evaluate: the given ones (checked), else those of the data.

    Args:
        records: the evaluation records.
        findings: the findings asked for (``--findings``); with ``need_prompts`` each needs
            prompt phrases (or is ``No Finding``: normal vs abnormal).
        source: the dataset kind; ``synthetic`` data are evaluated on the findings the
            generator draws (:data:`mmclip.demo.SYNTHETIC_FINDINGS`).
        need_prompts: zero-shot needs prompts; the linear probe and fine-tuning only need
            the label in the data.

    Returns:
        ``findings``, else the synthetic findings, else :func:`default_findings`.

    Raises:
        ValueError: a finding without prompts (``need_prompts``), or none given and none
            labelled in the data.
    """
    from mmclip.demo import SYNTHETIC_FINDINGS
    from mmclip.text.prompts import FINDING_PHRASES

    if findings:
        if need_prompts:
            known = {*FINDING_PHRASES, NO_FINDING}
            unknown = [f for f in findings if f not in known]
            if unknown:
                raise ValueError(
                    f"no prompts for finding(s) {unknown} (zero-shot needs them; the probe "
                    f"and fine-tuning do not); known: {', '.join(sorted(known))}"
                )
        return list(findings)
    if source == "synthetic":
        return list(SYNTHETIC_FINDINGS)
    found = default_findings(records)
    if not found:
        raise ValueError("no labelled findings in the data; name them with --findings")
    return found


@dataclass
class SuiteOptions:
    """What the suite runs.

    Attributes:
        zero_shot, probe, finetune, retrieval, masks: the parts to run.
        fractions, seeds: label fractions and seeds of the probe and the fine-tune.
        uncertain: how uncertain labels count (``ignore`` / ``positive`` / ``negative``).
        n_resamples: bootstrap resamples of the confidence intervals.
        mask_images: images in the AttMIM picture.
        finetune_config: fine-tuning hyper-parameters.
        backend: image decoding backend.
        seed: bootstrap and mask seed.
        baselines: baselines probed beside the model, in the same run
            (:data:`mmclip.eval.baselines.BASELINES`: ``random-init``, ``pixel-pca``,
            ``efficientnet-lite0``).
    """

    zero_shot: bool = True
    probe: bool = True
    finetune: bool = False
    retrieval: bool = True
    masks: bool = True
    fractions: Sequence[float] = DEFAULT_FRACTIONS
    seeds: Sequence[int] = DEFAULT_SEEDS
    uncertain: str = "ignore"
    n_resamples: int = 1000
    mask_images: int = 4
    finetune_config: FinetuneConfig = field(default_factory=FinetuneConfig)
    backend: str = "auto"
    seed: int = 0
    baselines: Sequence[str] = ()


@dataclass
class SuiteResult:
    """Results (JSON-able via ``results``) and the files written."""

    results: dict[str, Any]
    files: dict[str, Path]
    markdown: str


def _pick_mask_examples(records: Sequence[XrayRecord], n: int) -> list[int]:
    """Paired records, those with a lesion mask and a positive finding first."""
    paired = [i for i, r in enumerate(records) if r.image_path is not None and r.report]
    with_lesion = [
        i
        for i in paired
        if records[i].meta.get("mask")
        and any(v == 1 for k, v in records[i].labels.items() if k != NO_FINDING)
    ]
    rest = [i for i in paired if i not in set(with_lesion)]
    return (with_lesion + rest)[:n]


def _finding_group(record: XrayRecord) -> str | None:
    """The only finding drawn in a synthetic image (its per-finding group), else None."""
    drawn = record.meta.get("findings")
    if isinstance(drawn, dict) and len(drawn) == 1:
        return str(next(iter(drawn)))
    if isinstance(drawn, dict) and len(drawn) > 1:
        return "several"
    return None


LOCALIZATION_DRAWS = 100
"""Masks drawn per image for the lesion-hit of the uniform mask and of the baselines."""

_MAX_TRAIN_STATISTICS = 256
"""Training images read for the mean image and the location prior of the baselines."""


def _training_statistics(
    model: Any, train: Sequence[XrayRecord], grid: int, size: int, backend: str
) -> tuple[torch.Tensor | None, torch.Tensor | None, dict[str, str]]:
    """The mean training image (Tensor[S, S], intensities in [0, 1]) and the location prior
    (Tensor[P]: share of the training lesion images where each patch is a lesion patch) of
    the first :data:`_MAX_TRAIN_STATISTICS` training images, with their notes."""
    from .localization import image_intensity

    with_images = [r for r in train if r.image_path is not None][:_MAX_TRAIN_STATISTICS]
    notes: dict[str, str] = {}
    mean_image = prior = None
    if with_images:
        v = model.config.vision
        pixels = load_images(model, with_images, backend=backend)
        mean_image = image_intensity(pixels, v.image_mean, v.image_std).mean(dim=0)
        notes["image-minus-mean"] = (
            f"per patch, mean |image − mean of {len(with_images)} training images| "
            "(intensities in [0, 1])"
        )
    paths = [r.meta.get("mask") for r in with_images]
    lesion_paths = [p for p in paths if p is not None]
    if lesion_paths:
        train_lesions = lesion_patches(load_lesion_masks(lesion_paths, size), grid)
        train_lesions = train_lesions[train_lesions.any(dim=1)]
        if train_lesions.shape[0]:
            prior = train_lesions.double().mean(dim=0).float()
            notes["location-prior"] = (
                f"per patch, the share of {train_lesions.shape[0]} training lesion images "
                "where it is a lesion patch"
            )
    return mean_image, prior, notes


def _baseline_lesion_section(
    model: Any,
    train: Sequence[XrayRecord],
    images: torch.Tensor,
    scores: torch.Tensor,
    lesions: torch.Tensor,
    tau: float,
    options: SuiteOptions,
    results: dict[str, Any],
    sections: dict[str, str],
    wrong_map: torch.Tensor | None = None,
) -> None:
    """The guidance's lesion measures beside the text-free baselines (uniform,
    image-minus-mean, brightest, location-prior) and the model with a wrong report
    (``wrong_map``: :func:`_wrong_reports`), all measured the same way."""
    from .localization import measure_with_baselines

    grid = int(model.visual.grid_size)
    mean_image, prior, notes = _training_statistics(
        model, train, grid, images.shape[-1], options.backend
    )
    notes["model"] = "the model's text → patch guidance with each image's report"
    if wrong_map is not None:
        notes["wrong-text"] = (
            "the model's guidance with another test image's report (the list rotated by "
            f"{images.shape[0] // 2})"
        )
    result = measure_with_baselines(
        model,
        images,
        scores,
        lesions,
        tau=tau,
        mean_image=mean_image,
        location_prior=prior,
        wrong_map=wrong_map,
        notes=notes,
        n_draws=LOCALIZATION_DRAWS,
        n_resamples=options.n_resamples,
        seed=options.seed,
    )
    results["attmim_localization_baselines"] = result.to_dict()
    missing = [b for b in ("image-minus-mean", "location-prior") if b not in result.methods]
    sections["AttMIM guidance vs text-free baselines"] = (
        "The same measures for maps that read no text (`mmclip.eval.localization`); every "
        "row's lesion-hit is the mean over "
        f"{LOCALIZATION_DRAWS} masks per image drawn as AttMIM draws them.\n\n"
        + result.markdown()
        + (f"\n\nNot computed (no training images / lesion masks): {missing}." if missing else "")
    )


def _wrong_reports(texts: Sequence[str]) -> list[str] | None:
    """Each image's wrong report: another test image's, the list rotated by half its length
    (None for fewer than two)."""
    if len(texts) < 2:
        return None
    shift = len(texts) // 2
    return [texts[(i + shift) % len(texts)] for i in range(len(texts))]


@torch.no_grad()
def _mask_section(
    model: Any,
    train: Sequence[XrayRecord],
    test: Sequence[XrayRecord],
    test_images: torch.Tensor,
    out_dir: Path,
    options: SuiteOptions,
    results: dict[str, Any],
    files: dict[str, Path],
    sections: dict[str, str],
) -> None:
    paired = [i for i, r in enumerate(test) if r.image_path is not None and r.report]
    if not paired:
        logger.info("no image–report pairs in the evaluation set: no AttMIM picture")
        return
    texts = [test[i].report or "" for i in paired]
    wrong = _wrong_reports(texts)
    # each image's report and a wrong one against one image-tower pass
    maps = guidance_maps_for_texts(
        model, test_images[paired], [texts] + ([wrong] if wrong else []), batch_size=len(texts)
    )
    masks = guided_masks(model, test_images[paired], texts, seed=options.seed, scores=maps[0])
    show = _pick_mask_examples([test[i] for i in paired], options.mask_images)
    size = test_images.shape[-1]
    lesion_paths = [test[paired[i]].meta.get("mask") for i in range(len(paired))]
    lesions = None
    if all(p is not None for p in lesion_paths):
        lesions = load_lesion_masks(lesion_paths, size)
        groups = [_finding_group(test[i]) for i in paired]
        lesion_grid = lesion_patches(lesions, masks.grid)
        overlap = lesion_overlap(
            masks,
            lesion_grid,
            groups,
            n_resamples=options.n_resamples,
            seed=options.seed,
            n_random_draws=LOCALIZATION_DRAWS,
        )
        results["attmim_lesion_overlap"] = overlap.to_dict()
        sections["AttMIM masks vs lesions"] = (
            lesion_table(overlap)
            + f"\n\nMasking temperature τ = {masks.tau:g} (the model's final AttMIM τ). The "
            f"guided mask is one draw per image; the uniform mask's lesion-hit is the mean of "
            f"{LOCALIZATION_DRAWS} draws."
        )
        _baseline_lesion_section(
            model,
            train,
            test_images[paired],
            masks.scores,
            lesion_grid,
            masks.tau,
            options,
            results,
            sections,
            maps[1] if wrong else None,
        )
    files["attmim_masks"] = plot_attmim_masks(
        test_images[[paired[i] for i in show]],
        masks.scores[show],
        masks.guided[show],
        masks.random[show],
        out_dir / "attmim_masks.png",
        texts=[texts[i] for i in show],
        lesions=lesions[show] if lesions is not None else None,
        title=(
            "AttMIM: patches the report chose to mask"
            if lesions is None
            else f"AttMIM on {overlap.n_images} test images with lesions: attention "
            f"concentration {overlap.concentration:.2f}x, pointing game "
            f"{overlap.pointing_game:.2f},\nlesion patches masked {overlap.guided:.2f} "
            f"(guided) vs {overlap.random:.2f} (uniform)"
        ),
    )


def _baseline_section(
    model: Any,
    train: Sequence[XrayRecord],
    test_images: torch.Tensor,
    train_y: Any,
    test_y: Any,
    findings: Sequence[str],
    ours: FewLabelResult,
    options: SuiteOptions,
    results: dict[str, Any],
    sections: dict[str, str],
) -> None:
    """The same probes on the features of each baseline, and one table with the model's."""
    from .baselines import baseline_features

    train_images = load_images(model, train, backend=options.backend)
    probes: dict[str, FewLabelResult] = {"mmclip (this model)": ours}
    for name in options.baselines:
        train_x, test_x = baseline_features(name, model, train_images, test_images)
        probes[name] = linear_probe(
            train_x, train_y, test_x, test_y, findings, options.fractions, options.seeds
        )
    results["linear_probe_baselines"] = {
        name: probe.to_dict() for name, probe in probes.items() if probe is not ours
    }
    sections["Linear probe against baselines"] = (
        "The same logistic-regression probes on the features of what one would use instead "
        "of pre-training (`mmclip.eval.baselines`); mean test AUROC over the findings, "
        "mean ± std over seeds.\n\n" + baseline_table(probes)
    )


def run_suite(
    model: Any,
    train: Sequence[XrayRecord],
    test: Sequence[XrayRecord],
    findings: Sequence[str],
    out_dir: str | Path,
    options: SuiteOptions | None = None,
    title: str = "mmclip evaluation",
    preamble: str = "",
) -> SuiteResult:
    """Run the selected evaluations and write ``results.json``, ``results.md`` and PNGs.

    Args:
        model: a trained :class:`~mmclip.models.MMCLIPModel`.
        train: labelled training records (probe / fine-tune; may be empty otherwise).
        test: held-out evaluation records.
        findings: the findings to evaluate.
        out_dir: where the files go.
    """
    options = options or SuiteOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    results: dict[str, Any] = {"findings": list(findings), "n_test": len(test)}
    files: dict[str, Path] = {}
    sections: dict[str, str] = {}
    if preamble:
        sections["Setup"] = preamble
    t0 = time.perf_counter()
    test_images = load_images(model, test, backend=options.backend)
    test_embeds = encode_records(model, test, images=test_images)
    if options.zero_shot:
        zs = evaluate_zero_shot(
            model,
            test,
            findings,
            uncertain=options.uncertain,
            image_embeds=test_embeds,
            n_resamples=options.n_resamples,
            seed=options.seed,
        )
        results["zero_shot"] = zs.to_dict()
        sections["Zero-shot classification"] = (
            "Positive vs negative prompt ensembles per finding (softmax at the model's logit "
            "scale); ACC and F1 at p = 0.5; 95% bootstrap intervals.\n\n" + zero_shot_table(zs)
        )
        curves = {f: (zs.labels[:, j], zs.scores[:, j]) for j, f in enumerate(findings)}
        files["roc"] = plot_roc_curves(curves, out_dir / "roc_zeroshot.png")
    train_y = label_matrix(train, findings, options.uncertain) if train else None
    test_y = label_matrix(test, findings, options.uncertain)
    if options.probe and train:
        train_embeds = encode_records(model, train, backend=options.backend)
        probe = linear_probe(
            train_embeds.numpy(),
            train_y,
            test_embeds.numpy(),
            test_y,
            findings,
            options.fractions,
            options.seeds,
        )
        results["linear_probe"] = probe.to_dict()
        sections["Linear probe"] = (
            "Logistic regression on frozen image embeddings; test AUROC, mean ± std over "
            f"seeds {list(options.seeds)} (stratified label subsets).\n\n" + fewlabel_table(probe)
        )
        if options.baselines:
            _baseline_section(
                model,
                train,
                test_images,
                train_y,
                test_y,
                findings,
                probe,
                options,
                results,
                sections,
            )
    if options.finetune and train:
        train_images = load_images(model, train, backend=options.backend)
        ft = finetune(
            model,
            train_images,
            train_y,
            test_images,
            test_y,
            findings,
            options.fractions,
            options.seeds,
            options.finetune_config,
        )
        results["finetune"] = ft.to_dict()
        sections["Fine-tune"] = (
            "Image encoder + linear head, trained end to end; test AUROC, mean ± std over "
            "seeds.\n\n" + fewlabel_table(ft)
        )
    if options.retrieval and any(r.report for r in test):
        ret = evaluate_retrieval(model, test, image_embeds=test_embeds)
        results["retrieval"] = ret.to_dict()
        sections["Image–text retrieval"] = retrieval_table(ret)
    if options.masks:
        _mask_section(model, train, test, test_images, out_dir, options, results, files, sections)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    files["json"] = write_json(results, out_dir / "results.json")
    markdown_path = write_markdown(sections, out_dir / "results.md", title)
    files["markdown"] = markdown_path
    logger.info("evaluation written to %s (%.0f s)", out_dir, results["seconds"])
    return SuiteResult(results, files, markdown_path.read_text(encoding="utf-8"))


def write_multiclass_zero_shot(
    result: Any, findings: Sequence[str], out_dir: str | Path
) -> SuiteResult:
    """Write a multi-class zero-shot result: ``results.json``, ``results.md`` (the table and
    the top-1 accuracy) and one-vs-rest ROC curves of the single-label images.

    Args:
        result: :class:`~mmclip.eval.zeroshot.ZeroShotResult` of ``mode="multiclass"``.
        findings: its classes.
        out_dir: where the files go.
    """
    import numpy as np

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": write_json({"zero_shot": result}, out / "results.json")}
    table = zero_shot_table(result)
    top1 = result.multiclass_accuracy
    text = (
        "One class per image: softmax over the classes' positive prompt ensembles; "
        "one-vs-rest AUROC per class"
        + (f"; top-1 accuracy {top1:.3f}" if top1 is not None else "")
        + ".\n\n"
        + table
    )
    files["markdown"] = write_markdown(
        {"Zero-shot classification": text}, out / "results.md", "mmclip zero-shot (multi-class)"
    )
    labelled = np.nan_to_num(result.labels, nan=0.0)
    single = labelled.sum(axis=1) == 1  # the records the multi-class metrics use
    curves = {f: (labelled[single, j], result.scores[single, j]) for j, f in enumerate(findings)}
    files["roc"] = plot_roc_curves(
        curves, out / "roc_zeroshot.png", title="Zero-shot ROC (one vs rest)"
    )
    return SuiteResult({"zero_shot": result.to_dict()}, files, table)
