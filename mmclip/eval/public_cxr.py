"""The evaluation of a model on the public chest X-rays of ``shared/data`` (docs/results.md).

Two parts, each a :func:`~mmclip.eval.suite.run_suite` run with its own folder:

- **Kermany** (pediatric pneumonia, official test split): zero-shot ``Pneumonia`` and
  ``No Finding``; linear probe at 1 / 10 / 100 % of the training labels, with the simple
  baselines (random-initialised model, raw-pixel PCA, ImageNet EfficientNet-Lite0 when its
  optional packages are installed) in the same table.
- **COVID notes** (Cohen et al.'s collection, the test split by patient): zero-shot
  ``COVID-19`` and image–text retrieval between X-rays and their clinical notes.

``summary`` gathers the headline figures (with their 95 % bootstrap intervals) in one flat
mapping, which the ablation runner (``examples/component_ablation.py``) tabulates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmclip.data.sources import load_source

from .baselines import available_baselines
from .suite import SuiteOptions, run_suite

__all__ = ["PublicEvaluation", "evaluate_public_cxr", "public_summary"]

logger = logging.getLogger(__name__)

KERMANY_FINDINGS: tuple[str, ...] = ("Pneumonia", "No Finding")
COVID_FINDINGS: tuple[str, ...] = ("COVID-19",)


@dataclass
class PublicEvaluation:
    """The results of :func:`evaluate_public_cxr`.

    Attributes:
        kermany, covid: the suites' ``results.json`` contents (empty when that set is absent).
        summary: the headline figures (:func:`public_summary`).
        out_dir: where ``kermany/`` and ``covid/`` were written.
    """

    kermany: dict[str, Any] = field(default_factory=dict)
    covid: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)
    out_dir: Path = Path(".")


def _metric(result: dict[str, Any], finding: str) -> tuple[float, float, float]:
    entry = result["zero_shot"]["findings"][finding]
    low, high = entry.get("auroc_ci") or (float("nan"), float("nan"))
    return float(entry["auroc"]), float(low), float(high)


def public_summary(kermany: dict[str, Any], covid: dict[str, Any]) -> dict[str, float]:
    """Flat headline figures: ``{measure: value}``, with ``measure_low`` / ``measure_high``
    for the 95 % bootstrap interval where one exists."""
    out: dict[str, float] = {}

    def put(name: str, value: float, low: float | None = None, high: float | None = None) -> None:
        out[name] = value
        if low is not None and high is not None:
            out[f"{name}_low"], out[f"{name}_high"] = low, high

    if kermany:
        for finding, key in (
            ("Pneumonia", "kermany_zs_pneumonia"),
            ("No Finding", "kermany_zs_normal"),
        ):
            put(key, *_metric(kermany, finding))
        probes = {"mmclip": kermany.get("linear_probe", {})}
        probes.update(kermany.get("linear_probe_baselines", {}))
        for name, table in probes.items():
            for fraction, entry in table.get("fractions", {}).items():
                put(f"kermany_probe_{name}_{float(fraction):g}", float(entry["mean_auroc"][0]))
    if covid:
        put("covid_zs", *_metric(covid, "COVID-19"))
        retrieval = covid.get("retrieval", {})
        for key in ("image_to_text", "text_to_image"):
            for k, value in (retrieval.get(key) or {}).items():
                put(f"covid_{key}_{k}", float(value))
    return out


def evaluate_public_cxr(
    model: Any,
    data_root: str | Path,
    out_dir: str | Path,
    baselines: Sequence[str] | None = None,
    n_resamples: int = 1000,
    backend: str = "auto",
    seeds: Sequence[int] = (0, 1, 2),
) -> PublicEvaluation:
    """Evaluate ``model`` on the Kermany and COVID-notes sets found under ``data_root``.

    Args:
        model: a trained :class:`~mmclip.models.MMCLIPModel`.
        data_root: the folder holding ``kermany-pneumonia/`` and ``covid-notes/``
            (``../shared/data``); a set that is absent is skipped with a warning.
        out_dir: ``kermany/`` and ``covid/`` suites are written here.
        baselines: probe baselines (default: every one whose packages are installed).
        n_resamples: bootstrap resamples of the intervals.
        backend: image decoding (``auto``, ``pil``, ``dali``).
        seeds: the linear probe's label-subset seeds.

    Raises:
        FileNotFoundError: neither set is under ``data_root``.
    """
    data_root, out_dir = Path(data_root), Path(out_dir)
    kermany_root, covid_root = data_root / "kermany-pneumonia", data_root / "covid-notes"
    if not kermany_root.is_dir() and not covid_root.is_dir():
        raise FileNotFoundError(
            f"neither {kermany_root} nor {covid_root} exists: data_root must be the shared "
            "data folder (../shared/data from the repository root)"
        )
    result = PublicEvaluation(out_dir=out_dir)
    if kermany_root.is_dir():
        records = load_source("kermany", kermany_root)
        train = [r for r in records if r.split == "train"]
        test = [r for r in records if r.split == "test"]
        options = SuiteOptions(
            retrieval=False,
            masks=False,
            n_resamples=n_resamples,
            backend=backend,
            seeds=tuple(seeds),
            baselines=tuple(available_baselines() if baselines is None else baselines),
        )
        logger.info("Kermany: %d training, %d test images", len(train), len(test))
        result.kermany = run_suite(
            model,
            train,
            test,
            KERMANY_FINDINGS,
            out_dir / "kermany",
            options,
            title="Kermany pediatric pneumonia (official test split)",
        ).results
    else:
        logger.warning("%s is absent: the Kermany part is skipped", kermany_root)
    if covid_root.is_dir():
        test = [
            r
            for r in load_source("covid-collection", covid_root)
            if r.split == "test" and "COVID-19" in r.labels
        ]
        options = SuiteOptions(probe=False, masks=False, n_resamples=n_resamples, backend=backend)
        logger.info("COVID notes: %d test images (split by patient)", len(test))
        result.covid = run_suite(
            model,
            [],
            test,
            COVID_FINDINGS,
            out_dir / "covid",
            options,
            title="COVID-19 image collection with clinical notes (test split by patient)",
        ).results
    else:
        logger.warning("%s is absent: the COVID part is skipped", covid_root)
    result.summary = public_summary(result.kermany, result.covid)
    return result
