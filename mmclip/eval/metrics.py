"""Classification and retrieval metrics with seeded bootstrap confidence intervals.

The point metrics are scikit-learn's (``sklearn.metrics``), wrapped with input checks and
the conventions the evaluation needs: ``roc_auc`` is NaN (not an error) when one class is
absent, so bootstrap resamples without positives are left out; ``f1`` and the precision /
recall are 0 when undefined. The bootstrap intervals, ``recall_at_k`` and ``mean_std`` are
ours.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn import metrics as sklearn_metrics
from sklearn.exceptions import UndefinedMetricWarning

__all__ = [
    "BinaryMetrics",
    "accuracy",
    "binary_metrics",
    "bootstrap_ci",
    "f1_score",
    "mean_std",
    "precision_recall",
    "recall_at_k",
    "roc_auc",
    "roc_curve",
]


def _binary(y_true: ArrayLike) -> NDArray[np.int64]:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D; got shape {y.shape}")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"y_true must hold 0 / 1 labels; got values {sorted(values)[:5]}")
    return y.astype(np.int64)


def _scores(y_score: ArrayLike, n: int) -> NDArray[np.float64]:
    s = np.asarray(y_score, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"y_score must have shape ({n},); got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("y_score holds NaN or infinite values")
    return s


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``; ties count one half).

    Args:
        y_true (array[N] of 0 / 1), y_score (array[N] float): labels and scores.

    Returns:
        AUROC in [0, 1]; NaN when only one class is present (sklearn raises there).
    """
    y = _binary(y_true)
    s = _scores(y_score, len(y))
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return math.nan
    return float(sklearn_metrics.roc_auc_score(y, s))


def roc_curve(
    y_true: ArrayLike, y_score: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """False- and true-positive rates at every distinct threshold (decreasing).

    Returns:
        ``(fpr, tpr, thresholds)``, each array[K + 1]: a leading ``(0, 0)`` point at threshold
        ``inf``, then one point per distinct score (``sklearn.metrics.roc_curve`` with
        ``drop_intermediate=False``); a rate whose class is absent is NaN.
    """
    y = _binary(y_true)
    s = _scores(y_score, len(y))
    with warnings.catch_warnings():  # one class only: sklearn warns and returns NaN rates
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, thresholds = sklearn_metrics.roc_curve(y, s, drop_intermediate=False)
    thresholds = thresholds.astype(np.float64)
    thresholds[0] = np.inf
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of equal labels (any label values); NaN for no samples."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of one shape; got {t.shape}, {p.shape}")
    return float(sklearn_metrics.accuracy_score(t, p)) if len(t) else math.nan


def precision_recall(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[float, float]:
    """Binary precision and recall of the positive class (0 when undefined, as sklearn)."""
    t, p = _binary(y_true), _binary(y_pred)
    precision = sklearn_metrics.precision_score(t, p, labels=[0, 1], zero_division=0)
    recall = sklearn_metrics.recall_score(t, p, labels=[0, 1], zero_division=0)
    return float(precision), float(recall)


def f1_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Binary F1 of the positive class: ``2·TP / (2·TP + FP + FN)`` (0 when that is 0/0)."""
    t, p = _binary(y_true), _binary(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have one shape; got {t.shape}, {p.shape}")
    return float(sklearn_metrics.f1_score(t, p, labels=[0, 1], zero_division=0))


def bootstrap_ci(
    metric: Callable[..., float],
    arrays: Sequence[ArrayLike],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(*arrays)`` (rows resampled together).

    Resamples where the metric is undefined (NaN, e.g. one class only) are left out.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when no resample is defined.
    """
    data = [np.asarray(a) for a in arrays]
    n = len(data[0])
    if any(len(a) != n for a in data):
        raise ValueError("bootstrap arrays must have one length")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        value = metric(*(a[idx] for a in data))
        if not math.isnan(value):
            values.append(value)
    if not values:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.asarray(values), [alpha, 1.0 - alpha])
    return float(low), float(high)


@dataclass
class BinaryMetrics:
    """AUROC, accuracy and F1 of one binary task, with bootstrap intervals.

    Attributes:
        auroc, accuracy, f1: point estimates.
        auroc_ci, accuracy_ci, f1_ci: ``(low, high)`` intervals.
        n, n_positive: evaluated samples and positives.
        threshold: the score threshold of accuracy and F1.
    """

    auroc: float
    accuracy: float
    f1: float
    auroc_ci: tuple[float, float]
    accuracy_ci: tuple[float, float]
    f1_ci: tuple[float, float]
    n: int
    n_positive: int
    threshold: float

    def to_dict(self) -> dict[str, object]:
        """JSON-safe dict (NaN becomes ``None``)."""

        def clean(v: object) -> object:
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, tuple):
                return [clean(x) for x in v]
            return v

        return {k: clean(v) for k, v in self.__dict__.items()}


def binary_metrics(
    y_true: ArrayLike,
    y_score: ArrayLike,
    threshold: float = 0.5,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BinaryMetrics:
    """AUROC of the scores; accuracy and F1 of ``score >= threshold``; bootstrap intervals."""
    y = _binary(y_true)
    s = _scores(y_score, len(y))

    def acc(t: NDArray, sc: NDArray) -> float:
        return accuracy(t, (sc >= threshold).astype(np.int64))

    def f1(t: NDArray, sc: NDArray) -> float:
        return f1_score(t, (sc >= threshold).astype(np.int64))

    ci = {
        name: bootstrap_ci(fn, (y, s), n_resamples, confidence, seed)
        for name, fn in (("auroc", roc_auc), ("accuracy", acc), ("f1", f1))
    }
    return BinaryMetrics(
        auroc=roc_auc(y, s),
        accuracy=acc(y, s),
        f1=f1(y, s),
        auroc_ci=ci["auroc"],
        accuracy_ci=ci["accuracy"],
        f1_ci=ci["f1"],
        n=len(y),
        n_positive=int(y.sum()),
        threshold=threshold,
    )


def recall_at_k(
    similarity: ArrayLike, ks: Sequence[int] = (1, 5, 10), targets: ArrayLike | None = None
) -> dict[int, float]:
    """Recall@K of a query × candidate similarity matrix.

    Args:
        similarity (array[Q, C]): higher = more similar.
        ks: cut-offs.
        targets (array[Q] int | None): the index of each query's correct candidate (default:
            the diagonal, ``Q == C``).

    Returns:
        ``{k: fraction of queries whose target ranks in the top k}`` (ties count against).
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be 2-D; got shape {sim.shape}")
    q = sim.shape[0]
    if targets is None:
        if sim.shape[0] != sim.shape[1]:
            raise ValueError("targets are needed when the similarity matrix is not square")
        target = np.arange(q)
    else:
        target = np.asarray(targets, dtype=np.int64)
    correct = sim[np.arange(q), target]
    rank = (sim > correct[:, None]).sum(axis=1) + (sim == correct[:, None]).sum(axis=1) - 1
    return {int(k): float((rank < k).mean()) if q else math.nan for k in ks}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation, ignoring NaN; NaN when nothing is left."""
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if not len(arr):
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std())
