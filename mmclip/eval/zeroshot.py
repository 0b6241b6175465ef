"""Zero-shot classification with prompt ensembles (DESIGN §1.4).

Each class is represented by the mean of its prompts' normalised text embeddings
(re-normalised), as in CLIP's prompt ensembling. Two protocols:

* **multi-label / binary** (:func:`zero_shot_probabilities`): per finding, a softmax between
  its *positive* and *negative* prompt ensembles (``mmclip.text.zero_shot_prompts``) scaled by
  the model's logit scale; the score is the probability of the positive side. Accuracy and F1
  threshold it at 0.5.
* **multi-class** (:func:`multiclass_probabilities`): a softmax over the positive ensembles of
  all classes (e.g. CheXpert 5×200, where each image has exactly one class).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor

from mmclip.data import XrayRecord

from .embed import encode_records, encode_texts, label_matrix
from .metrics import BinaryMetrics, accuracy, binary_metrics

__all__ = [
    "ZeroShotResult",
    "build_classifier",
    "ensemble_embedding",
    "evaluate_zero_shot",
    "multiclass_probabilities",
    "zero_shot_probabilities",
]

logger = logging.getLogger(__name__)

PromptFn = Callable[[str], Mapping[str, Sequence[str]]]


def ensemble_embedding(model: Any, prompts: Sequence[str]) -> Tensor:
    """Mean of the prompts' normalised embeddings, normalised: Tensor[E]."""
    if not prompts:
        raise ValueError("a prompt ensemble needs at least one prompt")
    return F.normalize(encode_texts(model, list(prompts)).mean(dim=0), dim=-1)


def build_classifier(
    model: Any, findings: Sequence[str], prompts: PromptFn | None = None
) -> Tensor:
    """Negative / positive ensemble embeddings of every finding.

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` with a tokenizer.
        findings: finding names with prompts (``mmclip.text.prompts.FINDING_PHRASES``).
        prompts: ``finding → {"positive": [...], "negative": [...]}`` (default
            :func:`mmclip.text.zero_shot_prompts`).

    Returns:
        Tensor[F, 2, E]: ``[:, 0]`` negative, ``[:, 1]`` positive.
    """
    if prompts is None:
        from mmclip.text import zero_shot_prompts

        prompts = zero_shot_prompts
    rows = []
    for finding in findings:
        ensemble = prompts(finding)
        rows.append(
            torch.stack(
                [
                    ensemble_embedding(model, ensemble["negative"]),
                    ensemble_embedding(model, ensemble["positive"]),
                ]
            )
        )
    return torch.stack(rows)


def zero_shot_probabilities(image_embeds: Tensor, classifier: Tensor, scale: float) -> Tensor:
    """Probability of the positive prompt ensemble, per image and finding.

    Args:
        image_embeds (Tensor[N, E]): normalised image embeddings.
        classifier (Tensor[F, 2, E]): from :func:`build_classifier`.
        scale: the logit scale (the model's learned ``1 / temperature``).

    Returns:
        Tensor[N, F] in [0, 1].
    """
    logits = scale * torch.einsum("ne,fke->nfk", image_embeds.float(), classifier.float())
    return logits.softmax(dim=-1)[..., 1]


def multiclass_probabilities(image_embeds: Tensor, class_embeds: Tensor, scale: float) -> Tensor:
    """Softmax over classes: Tensor[N, C] from image (Tensor[N, E]) and class (Tensor[C, E])
    embeddings."""
    return (scale * image_embeds.float() @ class_embeds.float().t()).softmax(dim=-1)


@dataclass
class ZeroShotResult:
    """Zero-shot results on one evaluation set.

    Attributes:
        findings: finding → :class:`~mmclip.eval.metrics.BinaryMetrics` (multi-label), or
            per-class one-vs-rest metrics (multi-class).
        mean_auroc: macro mean of the defined AUROCs.
        scores (array[N, F]): positive probabilities.
        labels (array[N, F]): ground truth (NaN = left out).
        mode: ``multilabel`` or ``multiclass``.
        multiclass_accuracy: top-1 accuracy (multi-class only).
    """

    findings: dict[str, BinaryMetrics]
    mean_auroc: float
    scores: NDArray[np.float64]
    labels: NDArray[np.float64]
    mode: str = "multilabel"
    multiclass_accuracy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (no per-sample arrays)."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "mean_auroc": None if math.isnan(self.mean_auroc) else self.mean_auroc,
            "findings": {k: v.to_dict() for k, v in self.findings.items()},
            "n": int(self.scores.shape[0]),
        }
        if self.multiclass_accuracy is not None:
            out["multiclass_accuracy"] = self.multiclass_accuracy
        return out


def score_findings(
    scores: NDArray[np.float64],
    labels: NDArray[np.float64],
    findings: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, BinaryMetrics], float]:
    """Per-finding metrics of score columns against label columns (NaN labels left out)."""
    results: dict[str, BinaryMetrics] = {}
    aurocs = []
    for j, finding in enumerate(findings):
        keep = ~np.isnan(labels[:, j])
        y = labels[keep, j].astype(np.int64)
        metrics = binary_metrics(y, scores[keep, j], n_resamples=n_resamples, seed=seed)
        results[finding] = metrics
        if not math.isnan(metrics.auroc):
            aurocs.append(metrics.auroc)
        else:
            logger.warning("finding %s has one class only in the evaluation set", finding)
    return results, float(np.mean(aurocs)) if aurocs else math.nan


@torch.no_grad()
def evaluate_zero_shot(
    model: Any,
    records: Sequence[XrayRecord],
    findings: Sequence[str],
    *,
    mode: str = "multilabel",
    uncertain: str = "ignore",
    prompts: PromptFn | None = None,
    image_embeds: Tensor | None = None,
    batch_size: int = 64,
    backend: str = "auto",
    n_resamples: int = 1000,
    seed: int = 0,
) -> ZeroShotResult:
    """Zero-shot classification of ``records`` (labels from ``record.labels``).

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel`.
        records: evaluation records with images and labels.
        findings: the findings (multi-label) or classes (multi-class) to score.
        mode: ``multilabel`` (positive vs negative prompts per finding) or ``multiclass``
            (softmax over the classes' positive prompts; each record's class is its positive
            finding).
        uncertain: how uncertain labels count (see :func:`~mmclip.eval.embed.label_matrix`).
        prompts: prompt ensembles per finding (default ``mmclip.text.zero_shot_prompts``).
        image_embeds (Tensor[N, E] | None): precomputed normalised image embeddings.
        n_resamples, seed: bootstrap of the confidence intervals.
    """
    if mode not in ("multilabel", "multiclass"):
        raise ValueError(f"mode must be multilabel or multiclass; got {mode!r}")
    if not findings:
        raise ValueError("no findings to evaluate")
    model.eval()
    if image_embeds is None:
        image_embeds = encode_records(model, records, batch_size=batch_size, backend=backend)
    classifier = build_classifier(model, findings, prompts)
    scale = float(model.logit_scale())
    labels = label_matrix(records, findings, uncertain)
    if mode == "multilabel":
        scores = zero_shot_probabilities(image_embeds, classifier, scale).double().numpy()
        per_finding, mean_auroc = score_findings(scores, labels, findings, n_resamples, seed)
        return ZeroShotResult(per_finding, mean_auroc, scores, labels)
    scores = multiclass_probabilities(image_embeds, classifier[:, 1], scale).double().numpy()
    labelled = np.nan_to_num(labels, nan=0.0)
    single = labelled.sum(axis=1) == 1
    if not single.any():
        raise ValueError("multiclass mode needs records with exactly one positive class")
    if (~single).any():
        logger.warning("%d records without exactly one positive class left out", (~single).sum())
    truth = labelled[single].argmax(axis=1)
    top1 = accuracy(truth, scores[single].argmax(axis=1))
    per_class, mean_auroc = score_findings(
        scores[single], labelled[single], findings, n_resamples, seed
    )
    return ZeroShotResult(
        per_class, mean_auroc, scores, labels, mode="multiclass", multiclass_accuracy=top1
    )
