"""Classification and retrieval metrics in numpy, with seeded bootstrap confidence intervals.

The definitions follow scikit-learn (and the tests check them against it): ``roc_auc`` is the
area under the ROC curve with ties counted half (the Mann–Whitney statistic), ``f1`` is the
binary F1 of the positive class (0 when there is no predicted and no true positive),
``roc_curve`` returns the curve's corner points with a leading ``(0, 0)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

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


def _ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Average ranks (1-based) with ties sharing their mean rank (vectorised)."""
    n = len(x)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    new_group = np.r_[True, sorted_x[1:] != sorted_x[:-1]] if n else np.zeros(0, bool)
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], n]
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[group]
    return ranks


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (ties count one half).

    Args:
        y_true (array[N] of 0 / 1), y_score (array[N] float): labels and scores.

    Returns:
        AUROC in [0, 1]; NaN when only one class is present.
    """
    y = _binary(y_true)
    s = _scores(y_score, len(y))
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _ranks(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(
    y_true: ArrayLike, y_score: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """False- and true-positive rates at every distinct threshold (decreasing).

    Returns:
        ``(fpr, tpr, thresholds)``, each array[K + 1]: a leading ``(0, 0)`` point at threshold
        ``inf``, then one point per distinct score (as ``sklearn.metrics.roc_curve`` with
        ``drop_intermediate=False``).
    """
    y = _binary(y_true)
    s = _scores(y_score, len(y))
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[last].astype(np.float64)
    fps = (last + 1 - tps).astype(np.float64)
    n_pos, n_neg = tps[-1] if len(tps) else 0.0, fps[-1] if len(fps) else 0.0
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.r_[0.0, np.full(len(tps), np.nan)]
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.r_[0.0, np.full(len(fps), np.nan)]
    return fpr, tpr, np.r_[np.inf, s_sorted[last]]


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of equal labels (any label values)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of one shape; got {t.shape}, {p.shape}")
    return float((t == p).mean()) if len(t) else math.nan


def precision_recall(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[float, float]:
    """Binary precision and recall of the positive class (0 when undefined, as sklearn)."""
    t, p = _binary(y_true), _binary(y_pred)
    tp = int(((t == 1) & (p == 1)).sum())
    precision = tp / int(p.sum()) if p.sum() else 0.0
    recall = tp / int(t.sum()) if t.sum() else 0.0
    return float(precision), float(recall)


def f1_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Binary F1 of the positive class: ``2·TP / (2·TP + FP + FN)`` (0 when that is 0/0)."""
    t, p = _binary(y_true), _binary(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have one shape; got {t.shape}, {p.shape}")
    tp = int(((t == 1) & (p == 1)).sum())
    fp = int(((t == 0) & (p == 1)).sum())
    fn = int(((t == 1) & (p == 0)).sum())
    denom = 2 * tp + fp + fn
    return float(2 * tp / denom) if denom else 0.0


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
