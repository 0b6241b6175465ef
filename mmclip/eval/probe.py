"""Linear probes on frozen image embeddings at 1 %, 10 %, 100 % of the training labels.

For each label fraction and seed, a stratified subset of the training set is drawn
(:func:`stratified_subset`: every label combination keeps its share), one logistic
regression per finding is fitted on the frozen embeddings (scikit-learn, L-BFGS), and AUROC
is measured on the test set. Results are the mean ± standard deviation over the seeds.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .metrics import mean_std, roc_auc

__all__ = [
    "FewLabelResult",
    "label_keys",
    "linear_probe",
    "stratified_subset",
]

logger = logging.getLogger(__name__)

DEFAULT_FRACTIONS: tuple[float, ...] = (0.01, 0.1, 1.0)
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)


def label_keys(labels: NDArray[np.float64]) -> list[Hashable]:
    """One hashable stratification key per row of a label matrix (NaN → -1)."""
    filled = np.nan_to_num(np.asarray(labels, dtype=np.float64), nan=-1.0).astype(np.int64)
    return [tuple(row.tolist()) for row in filled]


def stratified_subset(
    keys: Sequence[Hashable] | ArrayLike, fraction: float, seed: int = 0
) -> NDArray[np.int64]:
    """Indices of a seeded subset of about ``fraction · N`` rows that keeps each key's share.

    Each group of equal keys contributes ``fraction · n_group`` rows, rounded by largest
    remainder so that the total is ``max(1, round(fraction · N))``.

    Returns:
        Sorted int64 indices.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1]; got {fraction}")
    keys = list(keys)  # type: ignore[arg-type]
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if fraction == 1.0:
        return np.arange(n, dtype=np.int64)
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    order = sorted(groups, key=repr)
    total = max(1, round(fraction * n))
    exact = {k: fraction * len(groups[k]) for k in order}
    counts = {k: math.floor(v) for k, v in exact.items()}
    left = total - sum(counts.values())
    by_remainder = sorted(order, key=lambda k: (-(exact[k] - counts[k]), -len(groups[k]), repr(k)))
    for k in by_remainder[: max(0, left)]:
        counts[k] += 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for k in order:
        members = np.asarray(groups[k], dtype=np.int64)
        chosen.extend(rng.permutation(members)[: counts[k]].tolist())
    return np.sort(np.asarray(chosen, dtype=np.int64))


@dataclass
class FewLabelResult:
    """AUROC at several label fractions, mean ± std over seeds.

    Attributes:
        method: ``linear-probe`` or ``finetune``.
        findings: the evaluated findings.
        fractions: fraction → ``{"mean_auroc": [mean, std], "findings": {f: [mean, std]},
            "n_train": [...], "runs": [per-seed mean AUROCs]}``.
    """

    method: str
    findings: list[str]
    fractions: dict[float, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (fractions as strings, NaN as ``None``)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, dict):
                return {str(k): clean(x) for k, x in v.items()}
            return v

        return {
            "method": self.method,
            "findings": self.findings,
            "fractions": clean({f"{k:g}": v for k, v in self.fractions.items()}),
        }


def _mean_auroc(aurocs: NDArray[np.float64]) -> float:
    return float(np.nanmean(aurocs)) if np.isfinite(aurocs).any() else math.nan


def summarise_runs(
    method: str,
    findings: Sequence[str],
    runs: dict[float, list[tuple[int, NDArray[np.float64]]]],
) -> FewLabelResult:
    """Collect per-seed AUROC vectors (``fraction → [(n_train, aurocs[F])]``) into a result."""
    result = FewLabelResult(method, list(findings))
    for fraction, items in runs.items():
        per_seed_mean = [_mean_auroc(a) for _, a in items]
        per_finding = {
            f: list(mean_std([float(a[j]) for _, a in items])) for j, f in enumerate(findings)
        }
        result.fractions[fraction] = {
            "mean_auroc": list(mean_std(per_seed_mean)),
            "findings": per_finding,
            "n_train": [n for n, _ in items],
            "runs": per_seed_mean,
        }
    return result


def few_label_runs(
    method: str,
    findings: Sequence[str],
    train_y: NDArray[np.float64],
    fractions: Sequence[float],
    seeds: Sequence[int],
    run: Callable[[NDArray[np.int64], int], NDArray[np.float64]],
    log: logging.Logger = logger,
) -> FewLabelResult:
    """``run(training subset, seed) → AUROC per finding`` at each label fraction and seed.

    The subsets are :func:`stratified_subset` of ``train_y``'s :func:`label_keys`; a fraction
    of 1.0 runs with the first seed only. Each run's mean AUROC is logged to ``log``.
    """
    keys = label_keys(train_y)
    runs: dict[float, list[tuple[int, NDArray[np.float64]]]] = {}
    for fraction in fractions:
        for seed in seeds if fraction < 1.0 else seeds[:1]:
            idx = stratified_subset(keys, fraction, seed)
            aurocs = run(idx, seed)
            runs.setdefault(fraction, []).append((len(idx), aurocs))
            log.info("%s %g seed %d: mean AUROC %.3f", method, fraction, seed, _mean_auroc(aurocs))
    return summarise_runs(method, findings, runs)


def _fit_predict(
    x: NDArray[np.float64], y: NDArray[np.int64], x_test: NDArray[np.float64], c: float, seed: int
) -> NDArray[np.float64] | None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        return None
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf.predict_proba(x_test)[:, 1]


def linear_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    findings: Sequence[str],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    c: float = 1.0,
) -> FewLabelResult:
    """Logistic-regression probes per finding at each label fraction and seed.

    Args:
        train_x (array[N, E]), test_x (array[M, E]): frozen embeddings.
        train_y (array[N, F]), test_y (array[M, F]): labels (1 / 0, NaN = left out).
        findings: the F finding names.
        fractions: label fractions of the training set.
        seeds: subset (and solver) seeds; a fraction of 1.0 runs once.
        c: inverse L2 regularisation strength.
    """
    xtr = np.asarray(train_x, dtype=np.float64)
    xte = np.asarray(test_x, dtype=np.float64)
    ytr = np.asarray(train_y, dtype=np.float64)
    yte = np.asarray(test_y, dtype=np.float64)
    if ytr.shape != (len(xtr), len(findings)) or yte.shape != (len(xte), len(findings)):
        raise ValueError("label matrices must be [N, F] matching the embeddings and findings")

    def run(idx: NDArray[np.int64], seed: int) -> NDArray[np.float64]:
        aurocs = np.full(len(findings), np.nan)
        for j in range(len(findings)):
            rows = idx[~np.isnan(ytr[idx, j])]
            test_rows = ~np.isnan(yte[:, j])
            pred = _fit_predict(xtr[rows], ytr[rows, j].astype(np.int64), xte[test_rows], c, seed)
            if pred is not None:
                aurocs[j] = roc_auc(yte[test_rows, j].astype(np.int64), pred)
        return aurocs

    return few_label_runs("linear-probe", findings, ytr, fractions, seeds, run)
