"""Behaviour tests of ``mmclip.eval``: metrics (against scikit-learn), bootstrap intervals,
Recall@K (against brute force), zero-shot scoring (on constructed embeddings, with a fake
text model), linear probes and stratified label-fraction subsets."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from mmclip.data import XrayRecord
from mmclip.eval import (
    accuracy,
    binary_metrics,
    bootstrap_ci,
    build_classifier,
    evaluate_retrieval,
    evaluate_zero_shot,
    f1_score,
    label_matrix,
    linear_probe,
    mean_std,
    multiclass_probabilities,
    precision_recall,
    recall_at_k,
    retrieval_metrics,
    roc_auc,
    roc_curve,
    stratified_subset,
    zero_shot_probabilities,
)
from mmclip.eval.probe import label_keys

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def binary_data(seed: int, n: int, ties: int = 0, signal: float = 1.0):
    """Labels with both classes and scores (rounded to ``ties`` decimals when > 0)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = signal * y + rng.normal(size=n)
    if ties:
        s = np.round(s, ties - 1)
    return y, s


def width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


# --------------------------------------------------------------------------------------------
# AUROC, ROC curve, accuracy, precision / recall, F1 against scikit-learn
# --------------------------------------------------------------------------------------------


@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 300),
    ties=st.sampled_from([0, 1, 2]),
    signal=st.floats(-2.0, 3.0),
)
def test_roc_auc_is_the_pairwise_ranking_probability(
    seed: int, n: int, ties: int, signal: float
) -> None:
    y, s = binary_data(seed, n, ties, signal)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        assert math.isnan(roc_auc(y, s))
        return
    diff = pos[:, None] - neg[None, :]  # brute force: P(pos > neg) + P(tie) / 2
    expected = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert roc_auc(y, s) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_known_values() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    # every positive tied with every negative: ties count one half
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.4, 0.35, 0.8, 0.8, 0.2]
    assert roc_auc(y, s) == pytest.approx(4.5 / 9)  # 4 wins and 1 tie of the 9 pairs


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_is_rank_based(seed: int) -> None:
    y, s = binary_data(seed, 200, ties=2)
    auc = roc_auc(y, s)
    assert roc_auc(y, np.exp(3 * s) + 7) == pytest.approx(auc)  # monotone transform
    assert roc_auc(y, -s) == pytest.approx(1.0 - auc)  # reversed ranking
    assert roc_auc(1 - y, s) == pytest.approx(1.0 - auc)  # swapped classes


@pytest.mark.parametrize("label", [0, 1])
def test_roc_auc_single_class_is_nan(label: int) -> None:
    """Documented: NaN when only one class is present (recent scikit-learn warns, NaN)."""
    y = np.full(10, label)
    s = np.linspace(0, 1, 10)
    assert math.isnan(roc_auc(y, s))


def test_roc_auc_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1, 1], [0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match="0 / 1"):
        roc_auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="shape"):
        roc_auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="1-D"):
        roc_auc([[0, 1], [1, 0]], [0.1, 0.2])


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 200), ties=st.sampled_from([0, 1, 2]))
def test_roc_curve_is_the_rates_at_every_distinct_threshold(seed: int, n: int, ties: int) -> None:
    y, s = binary_data(seed, n, ties)
    if y.min() == y.max():
        return
    fpr, tpr, thr = roc_curve(y, s)
    assert thr[0] == np.inf
    np.testing.assert_allclose(thr[1:], np.unique(s)[::-1])
    for t, f, r in zip(thr, fpr, tpr, strict=True):  # brute force, threshold by threshold
        predicted = s >= t
        assert f == pytest.approx(predicted[y == 0].mean())
        assert r == pytest.approx(predicted[y == 1].mean())
    # the trapezoid area under the corner points is the AUROC
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s))


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 200), classes=st.integers(1, 5))
def test_accuracy_is_the_fraction_of_equal_labels(seed: int, n: int, classes: int) -> None:
    rng = np.random.default_rng(seed)
    t, p = rng.integers(0, classes, n), rng.integers(0, classes, n)
    expected = sum(int(a == b) for a, b in zip(t, p, strict=True)) / n
    assert accuracy(t, p) == pytest.approx(expected)
    names = np.array(["a", "b", "c", "d", "e"])
    assert accuracy(names[t], names[p]) == pytest.approx(expected)


def test_accuracy_edge_cases() -> None:
    assert math.isnan(accuracy([], []))
    with pytest.raises(ValueError, match="shape"):
        accuracy([0, 1], [0, 1, 1])


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 200), p_true=st.floats(0.0, 1.0))
def test_f1_precision_recall_from_the_confusion_counts(seed: int, n: int, p_true: float) -> None:
    rng = np.random.default_rng(seed)
    t = (rng.random(n) < p_true).astype(int)
    p = (rng.random(n) < rng.random()).astype(int)
    tp = int(((t == 1) & (p == 1)).sum())
    fp = int(((t == 0) & (p == 1)).sum())
    fn = int(((t == 1) & (p == 0)).sum())
    assert f1_score(t, p) == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    precision, recall = precision_recall(t, p)
    assert precision == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    assert recall == pytest.approx(tp / (tp + fn) if tp + fn else 0.0)


def test_f1_edge_cases() -> None:
    # no true and no predicted positive: documented 0
    assert f1_score([0, 0, 0], [0, 0, 0]) == 0.0
    assert f1_score([1, 0, 1], [1, 0, 1]) == 1.0
    assert f1_score([1, 1, 0], [0, 0, 1]) == 0.0
    with pytest.raises(ValueError):
        f1_score([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="0 / 1"):
        f1_score([0, 1, 2], [0, 1, 1])


@pytest.mark.parametrize("seed", range(4))
def test_binary_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = 1.0 / (1.0 + np.exp(-(2 * y - 1 + rng.normal(size=300))))
    threshold = [0.5, 0.3, 0.7, 0.5][seed]
    m = binary_metrics(y, s, threshold=threshold, n_resamples=200, seed=seed)
    pred = (s >= threshold).astype(int)
    assert m.auroc == pytest.approx(skm.roc_auc_score(y, s))
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert m.f1 == pytest.approx(skm.f1_score(y, pred))
    assert (m.n, m.n_positive, m.threshold) == (300, int(y.sum()), threshold)
    for point, ci in ((m.auroc, m.auroc_ci), (m.accuracy, m.accuracy_ci), (m.f1, m.f1_ci)):
        assert ci[0] <= point <= ci[1]
        assert 0.0 <= ci[0] < ci[1] <= 1.0


def test_binary_metrics_single_class_to_dict_is_json_safe() -> None:
    m = binary_metrics(np.zeros(20, int), np.linspace(0, 1, 20), n_resamples=20)
    assert math.isnan(m.auroc)
    assert m.auroc_ci[0] != m.auroc_ci[0]  # (nan, nan): no resample is defined
    d = m.to_dict()
    assert d["auroc"] is None and d["auroc_ci"] == [None, None]
    assert d["accuracy"] == pytest.approx(0.5)  # scores >= 0.5 are the upper half
    json.dumps(d, allow_nan=False)


@given(values=st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan)), max_size=30))
def test_mean_std_ignores_nan(values: list[float]) -> None:
    mean, std = mean_std(values)
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        assert math.isnan(mean) and math.isnan(std)
    else:
        assert mean == pytest.approx(np.mean(finite), abs=1e-6)
        assert std == pytest.approx(np.std(finite), abs=1e-6)


# --------------------------------------------------------------------------------------------
# bootstrap confidence intervals
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_bootstrap_interval_contains_point_and_is_seeded(seed: int) -> None:
    y, s = binary_data(100 + seed, 200)
    point = roc_auc(y, s)
    ci = bootstrap_ci(roc_auc, (y, s), n_resamples=300, seed=seed)
    assert ci[0] <= point <= ci[1]
    assert ci == bootstrap_ci(roc_auc, (y, s), n_resamples=300, seed=seed)
    assert ci != bootstrap_ci(roc_auc, (y, s), n_resamples=300, seed=seed + 1000)


def test_bootstrap_interval_shrinks_with_n() -> None:
    def draw(n: int, seed: int):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, n)
        return y, y + rng.normal(size=n)

    for seed in range(3):
        small = bootstrap_ci(roc_auc, draw(50, seed), n_resamples=300, seed=seed)
        large = bootstrap_ci(roc_auc, draw(2000, seed), n_resamples=300, seed=seed)
        # the width scales like 1 / sqrt(n): about 6x narrower at 40x the samples
        assert width(large) < width(small) / 2.5


def test_bootstrap_intervals_nest_with_confidence() -> None:
    y, s = binary_data(7, 150)
    wide = bootstrap_ci(roc_auc, (y, s), n_resamples=400, confidence=0.99, seed=3)
    mid = bootstrap_ci(roc_auc, (y, s), n_resamples=400, confidence=0.9, seed=3)
    narrow = bootstrap_ci(roc_auc, (y, s), n_resamples=400, confidence=0.5, seed=3)
    assert wide[0] <= mid[0] <= narrow[0] <= narrow[1] <= mid[1] <= wide[1]
    assert width(narrow) < width(wide)


def test_bootstrap_of_the_mean_matches_normal_theory() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(3.0, 2.0, 400)
    low, high = bootstrap_ci(np.mean, (x,), n_resamples=2000, seed=0)
    half = 1.959964 * x.std() / math.sqrt(len(x))
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert (low + high) / 2 == pytest.approx(x.mean(), abs=0.25 * half)


def test_bootstrap_resamples_rows_together() -> None:
    x = np.arange(100.0)

    def paired_difference(a, b):
        return float(np.abs(a - b).max())

    # identical columns resampled together stay identical: the metric is always 0
    assert bootstrap_ci(paired_difference, (x, x.copy()), n_resamples=50) == (0.0, 0.0)


def test_bootstrap_leaves_out_undefined_resamples() -> None:
    y = np.zeros(40, int)
    y[0] = 1  # most resamples miss the only positive: AUROC undefined there
    s = np.linspace(0, 1, 40)
    s[0] = 2.0
    low, high = bootstrap_ci(roc_auc, (y, s), n_resamples=200, seed=0)
    assert (low, high) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_ci(roc_auc, (np.zeros(9, int), s[:9])))


def test_bootstrap_rejects_bad_arguments() -> None:
    assert all(math.isnan(v) for v in bootstrap_ci(np.mean, (np.zeros(0),)))
    with pytest.raises(ValueError, match="length"):
        bootstrap_ci(roc_auc, (np.zeros(3), np.zeros(4)))
    for confidence in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="confidence"):
            bootstrap_ci(np.mean, (np.zeros(3),), confidence=confidence)


# --------------------------------------------------------------------------------------------
# Recall@K and retrieval
# --------------------------------------------------------------------------------------------


def brute_force_recall(sim: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Pessimistic ranks: the target's position after every candidate scoring >= it."""
    hits = 0
    for q in range(sim.shape[0]):
        row = sim[q]
        t = targets[q]
        better_or_tied = sum(1 for c in range(len(row)) if c != t and row[c] >= row[t])
        hits += better_or_tied < k
    return hits / sim.shape[0]


def random_unit(n: int, e: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, e, generator=g), dim=-1)


@pytest.mark.parametrize("seed", range(4))
def test_retrieval_metrics_match_brute_force(seed: int) -> None:
    n = 60
    images = random_unit(n, 16, seed)
    texts = F.normalize(images + 0.9 * random_unit(n, 16, seed + 100), dim=-1)
    ks = (1, 3, 5, 10)
    result = retrieval_metrics(images, texts, ks)
    sim = images.double().numpy() @ texts.double().numpy().T
    diag = np.arange(n)
    for k in ks:
        assert result.image_to_text[k] == pytest.approx(brute_force_recall(sim, diag, k))
        assert result.text_to_image[k] == pytest.approx(brute_force_recall(sim.T, diag, k))
    assert result.n == n
    # recall is monotone in k and reaches 1 at k = n
    values = list(result.image_to_text.values())
    assert values == sorted(values)
    assert retrieval_metrics(images, texts, (n,)).image_to_text[n] == 1.0
    d = result.to_dict()
    assert d["image_to_text"]["R@5"] == result.image_to_text[5]


def test_retrieval_perfect_and_permuted_pairs() -> None:
    images = random_unit(40, 32, 0)
    perfect = retrieval_metrics(images, images.clone(), (1, 5, 10))
    assert all(v == 1.0 for v in perfect.image_to_text.values())
    assert all(v == 1.0 for v in perfect.text_to_image.values())
    # texts in a shifted order: text i is image i+1's pair, never image i's
    shifted = retrieval_metrics(images, images.roll(1, dims=0), (1,))
    assert shifted.image_to_text[1] == 0.0 and shifted.text_to_image[1] == 0.0


@given(seed=st.integers(0, 2**31 - 1), q=st.integers(1, 30), c=st.integers(1, 30))
def test_recall_at_k_with_targets_matches_brute_force(seed: int, q: int, c: int) -> None:
    rng = np.random.default_rng(seed)
    sim = np.round(rng.normal(size=(q, c)), 1)  # coarse values: many ties
    targets = rng.integers(0, c, q)
    ks = (1, 2, 5)
    got = recall_at_k(sim, ks, targets)
    for k in ks:
        assert got[k] == pytest.approx(brute_force_recall(sim, targets, k))


def test_recall_at_k_ties_count_against() -> None:
    sim = np.ones((4, 4))
    got = recall_at_k(sim, (1, 3, 4))
    assert got == {1: 0.0, 3: 0.0, 4: 1.0}


def test_recall_at_k_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        recall_at_k(np.zeros(4))
    with pytest.raises(ValueError, match="targets"):
        recall_at_k(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[N, E\]"):
        retrieval_metrics(torch.zeros(3, 4), torch.zeros(2, 4))


# --------------------------------------------------------------------------------------------
# zero-shot scoring with a fake text model
# --------------------------------------------------------------------------------------------

EMBED = 16


class FakeModel:
    """The interface ``evaluate_zero_shot`` / ``evaluate_retrieval`` use when image embeddings
    are given: ``eval``, ``encode_text``, ``config.contrastive.embed_dim``,
    ``logit_scale()``."""

    def __init__(self, table: dict[str, torch.Tensor], scale: float = 20.0) -> None:
        self.table = table
        self.config = SimpleNamespace(contrastive=SimpleNamespace(embed_dim=EMBED))
        self.logit_scale = lambda: torch.tensor(scale)
        self.encoded: list[str] = []

    def eval(self) -> FakeModel:
        return self

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        self.encoded.extend(texts)
        return F.normalize(torch.stack([self.table[t] for t in texts]), dim=-1)


def axis(i: int) -> torch.Tensor:
    v = torch.zeros(EMBED)
    v[i] = 1.0
    return v


FINDINGS = ["Cardiomegaly", "Pleural Effusion", "Pneumothorax"]


def prompt_set(finding: str) -> dict[str, list[str]]:
    return {
        "positive": [f"{finding} is present", f"there is {finding}"],
        "negative": [f"no {finding}", f"{finding} is absent"],
    }


def fake_text_model(noise: float = 0.05, seed: int = 0) -> FakeModel:
    """Finding j: positive prompts near axis 2j, negative prompts near axis 2j + 1."""
    g = torch.Generator().manual_seed(seed)
    table = {}
    for j, finding in enumerate(FINDINGS):
        prompts = prompt_set(finding)
        for side, base in (("positive", axis(2 * j)), ("negative", axis(2 * j + 1))):
            for text in prompts[side]:
                table[text] = base + noise * torch.randn(EMBED, generator=g)
    return FakeModel(table)


def records_with(labels: list[dict[str, int]]) -> list[XrayRecord]:
    return [
        XrayRecord(image_path=Path(f"img{i}.png"), report=None, labels=lab, split="test")
        for i, lab in enumerate(labels)
    ]


def random_labels(n: int, seed: int, uncertain: float = 0.0) -> list[dict[str, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lab = {}
        for f in FINDINGS:
            r = rng.random()
            lab[f] = -1 if r < uncertain else int(rng.random() < 0.4)
        out.append(lab)
    return out


def constructed_images(labels: list[dict[str, int]], seed: int = 0) -> torch.Tensor:
    """Image i lies near the positive prompt axis of each of its positive findings and the
    negative axis of the others."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for lab in labels:
        v = sum(
            axis(2 * j) if lab.get(f, 0) == 1 else axis(2 * j + 1) for j, f in enumerate(FINDINGS)
        )
        rows.append(v + 0.1 * torch.randn(EMBED, generator=g))
    return F.normalize(torch.stack(rows), dim=-1)


def test_build_classifier_is_the_normalised_prompt_mean() -> None:
    model = fake_text_model(noise=0.5)
    clf = build_classifier(model, FINDINGS, prompt_set)
    assert clf.shape == (len(FINDINGS), 2, EMBED)
    for j, finding in enumerate(FINDINGS):
        for side, name in ((0, "negative"), (1, "positive")):
            unit = [
                model.table[t].numpy() / np.linalg.norm(model.table[t].numpy())
                for t in prompt_set(finding)[name]
            ]
            mean = np.mean(unit, axis=0)
            np.testing.assert_allclose(clf[j, side].numpy(), mean / np.linalg.norm(mean), atol=1e-6)
    with pytest.raises(ValueError, match="at least one prompt"):
        build_classifier(model, ["X"], lambda f: {"positive": ["x"], "negative": []})


@pytest.mark.parametrize("seed", range(3))
def test_zero_shot_probabilities_are_a_two_way_softmax(seed: int) -> None:
    images = random_unit(20, EMBED, seed)
    clf = F.normalize(
        torch.randn(4, 2, EMBED, generator=torch.Generator().manual_seed(seed)), dim=-1
    )
    scale = 7.5
    got = zero_shot_probabilities(images, clf, scale).numpy()
    logits = scale * np.einsum("ne,fke->nfk", images.numpy(), clf.numpy())
    expected = 1.0 / (1.0 + np.exp(logits[..., 0] - logits[..., 1]))
    assert got.shape == (20, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

    classes = clf[:, 1]
    probs = multiclass_probabilities(images, classes, scale).numpy()
    z = scale * images.numpy() @ classes.numpy().T
    soft = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(probs, soft / soft.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_zero_shot_on_constructed_embeddings_is_perfect() -> None:
    labels = random_labels(120, seed=1)
    records = records_with(labels)
    model = fake_text_model()
    result = evaluate_zero_shot(
        model,
        records,
        FINDINGS,
        prompts=prompt_set,
        image_embeds=constructed_images(labels),
        n_resamples=50,
    )
    assert result.mode == "multilabel"
    assert result.mean_auroc == 1.0
    for f in FINDINGS:
        m = result.findings[f]
        assert (m.auroc, m.accuracy, m.f1) == (1.0, 1.0, 1.0)
        assert m.n_positive == sum(lab[f] for lab in labels)
    assert result.scores.shape == (120, len(FINDINGS))
    assert ((result.scores >= 0) & (result.scores <= 1)).all()
    json.dumps(result.to_dict(), allow_nan=False)


def test_zero_shot_on_random_embeddings_is_near_chance() -> None:
    labels = random_labels(1500, seed=2)
    model = fake_text_model()
    result = evaluate_zero_shot(
        model,
        records_with(labels),
        FINDINGS,
        prompts=prompt_set,
        image_embeds=random_unit(1500, EMBED, 3),
        n_resamples=10,
    )
    for f in FINDINGS:
        assert abs(result.findings[f].auroc - 0.5) < 0.06
    assert abs(result.mean_auroc - 0.5) < 0.05


@pytest.mark.parametrize("uncertain", ["ignore", "positive", "negative"])
def test_zero_shot_scores_match_sklearn_with_uncertain_labels(uncertain: str) -> None:
    labels = random_labels(200, seed=4, uncertain=0.2)
    for lab in labels[::7]:
        del lab["Pneumothorax"]  # unmentioned: counts as negative
    records = records_with(labels)
    model = fake_text_model()
    images = F.normalize(
        constructed_images(labels, seed=5) + 0.4 * random_unit(200, EMBED, 6), dim=-1
    )
    result = evaluate_zero_shot(
        model,
        records,
        FINDINGS,
        uncertain=uncertain,
        prompts=prompt_set,
        image_embeds=images,
        n_resamples=20,
    )
    value = {"ignore": None, "positive": 1, "negative": 0}[uncertain]
    aurocs = []
    for j, f in enumerate(FINDINGS):
        y = [lab.get(f, 0) for lab in labels]
        keep = [i for i, v in enumerate(y) if v != -1 or value is not None]
        y_ref = [value if y[i] == -1 else y[i] for i in keep]
        ref = skm.roc_auc_score(y_ref, result.scores[keep, j])
        assert result.findings[f].n == len(keep)
        assert result.findings[f].auroc == pytest.approx(ref)
        aurocs.append(ref)
        assert np.isnan(result.labels[:, j]).sum() == len(labels) - len(keep)
    assert result.mean_auroc == pytest.approx(np.mean(aurocs))
    np.testing.assert_allclose(
        result.scores,
        zero_shot_probabilities(
            images, build_classifier(model, FINDINGS, prompt_set), 20.0
        ).numpy(),
        atol=1e-6,
    )


def test_zero_shot_single_class_finding_is_left_out_of_the_mean() -> None:
    labels = random_labels(80, seed=8)
    for lab in labels:
        lab["Pneumothorax"] = 0
    result = evaluate_zero_shot(
        fake_text_model(),
        records_with(labels),
        FINDINGS,
        prompts=prompt_set,
        image_embeds=constructed_images(labels),
        n_resamples=10,
    )
    assert math.isnan(result.findings["Pneumothorax"].auroc)
    assert result.mean_auroc == 1.0  # the mean of the two defined AUROCs
    assert result.to_dict()["findings"]["Pneumothorax"]["auroc"] is None


def test_zero_shot_multiclass() -> None:
    rng = np.random.default_rng(9)
    classes = rng.integers(0, len(FINDINGS), 90)
    labels = [{f: int(j == c) for j, f in enumerate(FINDINGS)} for c in classes]
    images = constructed_images(labels)
    # two records without exactly one positive class: left out of the scores
    labels += [{f: 1 for f in FINDINGS}, {f: 0 for f in FINDINGS}]
    images = torch.cat([images, random_unit(2, EMBED, 1)])
    result = evaluate_zero_shot(
        fake_text_model(),
        records_with(labels),
        FINDINGS,
        mode="multiclass",
        prompts=prompt_set,
        image_embeds=images,
        n_resamples=10,
    )
    assert result.mode == "multiclass"
    assert result.multiclass_accuracy == 1.0
    assert result.mean_auroc == 1.0
    for j, f in enumerate(FINDINGS):
        assert result.findings[f].n == 90
        assert result.findings[f].n_positive == int((classes == j).sum())
    np.testing.assert_allclose(result.scores.sum(axis=1), 1.0, rtol=1e-6)
    assert result.to_dict()["multiclass_accuracy"] == 1.0

    with pytest.raises(ValueError, match="exactly one positive"):
        evaluate_zero_shot(
            fake_text_model(),
            records_with([{f: 0 for f in FINDINGS}] * 3),
            FINDINGS,
            mode="multiclass",
            prompts=prompt_set,
            image_embeds=random_unit(3, EMBED, 0),
        )


def test_zero_shot_rejects_bad_arguments() -> None:
    records = records_with(random_labels(4, 0))
    images = random_unit(4, EMBED, 0)
    with pytest.raises(ValueError, match="mode"):
        evaluate_zero_shot(
            fake_text_model(),
            records,
            FINDINGS,
            mode="bogus",
            prompts=prompt_set,
            image_embeds=images,
        )
    with pytest.raises(ValueError, match="no findings"):
        evaluate_zero_shot(fake_text_model(), records, [], prompts=prompt_set, image_embeds=images)
    with pytest.raises(ValueError, match="uncertain"):
        label_matrix(records, FINDINGS, uncertain="maybe")


def test_evaluate_retrieval_with_fake_model() -> None:
    n = 30
    images = random_unit(n, EMBED, 0)
    reports = [f"report number {i}" for i in range(n)]
    table = {r: images[i] + 0.05 * random_unit(1, EMBED, 100 + i)[0] for i, r in enumerate(reports)}
    records = [
        XrayRecord(image_path=Path(f"img{i}.png"), report=r, split="test")
        for i, r in enumerate(reports)
    ]
    model = FakeModel(table)
    result = evaluate_retrieval(model, records, ks=(1, 5), image_embeds=images)
    assert model.encoded == reports  # texts embedded in record order
    assert result.image_to_text == {1: 1.0, 5: 1.0}
    assert result.text_to_image == {1: 1.0, 5: 1.0}
    with pytest.raises(ValueError, match="both an image and a report"):
        evaluate_retrieval(model, [XrayRecord(image_path=None, report="x")], image_embeds=images)


# --------------------------------------------------------------------------------------------
# stratified label-fraction subsets and linear probes
# --------------------------------------------------------------------------------------------


@given(
    sizes=st.lists(st.integers(1, 120), min_size=1, max_size=6),
    fraction=st.one_of(st.sampled_from([0.01, 0.1, 0.5]), st.floats(0.001, 0.999)),
    seed=st.integers(0, 2**32 - 1),
    shuffle_seed=st.integers(0, 1000),
)
def test_stratified_subset_properties(
    sizes: list[int], fraction: float, seed: int, shuffle_seed: int
) -> None:
    keys = np.repeat(np.arange(len(sizes)), sizes)
    np.random.default_rng(shuffle_seed).shuffle(keys)
    keys = [f"class-{k}" for k in keys]
    n = len(keys)
    idx = stratified_subset(keys, fraction, seed)
    assert idx.dtype == np.int64
    assert (np.diff(idx) > 0).all()  # sorted, no repeats
    assert len(idx) == 0 or (0 <= idx[0] and idx[-1] < n)
    assert len(idx) == max(1, round(fraction * n))
    np.testing.assert_array_equal(idx, stratified_subset(keys, fraction, seed))
    chosen = [keys[i] for i in idx]
    for g, size in enumerate(sizes):
        share = fraction * size
        count = chosen.count(f"class-{g}")
        assert math.floor(share) <= count <= math.ceil(share)  # the group keeps its share
        if share >= 1:
            assert count >= 1


@pytest.mark.parametrize("fraction", [0.01, 0.1, 1.0])
def test_stratified_subset_at_label_fractions(fraction: float) -> None:
    rng = np.random.default_rng(0)
    labels = np.stack([rng.random(2000) < 0.5, rng.random(2000) < 0.3], axis=1).astype(float)
    labels[rng.random(2000) < 0.05, 1] = np.nan  # missing labels are a key of their own
    keys = label_keys(labels)
    assert len(set(keys)) == 6
    assert all(v in (-1, 0, 1) for k in keys for v in k)
    a = stratified_subset(keys, fraction, seed=1)
    assert len(a) == round(fraction * 2000)
    np.testing.assert_array_equal(a, stratified_subset(keys, fraction, seed=1))
    if fraction == 1.0:
        np.testing.assert_array_equal(a, np.arange(2000))
    else:
        assert not np.array_equal(a, stratified_subset(keys, fraction, seed=2))
    # every label combination that is large enough for one row appears
    for key in set(keys):
        members = sum(1 for k in keys if k == key)
        if fraction * members >= 1:
            assert any(keys[i] == key for i in a)


def test_stratified_subset_edge_cases() -> None:
    assert len(stratified_subset([], 0.5)) == 0
    assert len(stratified_subset(["a"] * 10, 0.001)) == 1  # never empty
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            stratified_subset(["a", "b"], bad)


def probe_data(n: int, m: int, seed: int, separable: bool = True):
    rng = np.random.default_rng(seed)
    y_train = (rng.random((n, 2)) < 0.5).astype(float)
    y_test = (rng.random((m, 2)) < 0.5).astype(float)

    def embed(y):
        base = rng.normal(size=(len(y), 6))
        if separable:
            base[:, 0] += 6 * (y[:, 0] - 0.5)
            base[:, 1] += 6 * (y[:, 1] - 0.5)
        return base

    return embed(y_train), y_train, embed(y_test), y_test


def test_linear_probe_matches_sklearn_and_separates() -> None:
    xtr, ytr, xte, yte = probe_data(400, 200, seed=0)
    ytr[::9, 1] = np.nan  # left out of that finding's training rows
    findings = ["A", "B"]
    result = linear_probe(xtr, ytr, xte, yte, findings, fractions=(0.1, 1.0), seeds=(0, 1, 2))
    full = result.fractions[1.0]
    assert len(full["runs"]) == 1 and full["n_train"] == [400]  # 100 % runs once
    for j, f in enumerate(findings):
        keep = ~np.isnan(ytr[:, j])
        clf = LogisticRegression(C=1.0, max_iter=2000, random_state=0)
        clf.fit(xtr[keep], ytr[keep, j].astype(int))
        ref = skm.roc_auc_score(yte[:, j], clf.predict_proba(xte)[:, 1])
        assert full["findings"][f][0] == pytest.approx(ref, abs=1e-6)
        assert full["findings"][f][1] == 0.0
    tenth = result.fractions[0.1]
    keys = label_keys(ytr)
    assert tenth["n_train"] == [len(stratified_subset(keys, 0.1, s)) for s in (0, 1, 2)]
    assert len(tenth["runs"]) == 3
    assert tenth["mean_auroc"] == pytest.approx(list(mean_std(tenth["runs"])))
    assert tenth["mean_auroc"][0] > 0.95 and full["mean_auroc"][0] > 0.97
    d = result.to_dict()
    assert d["method"] == "linear-probe" and set(d["fractions"]) == {"0.1", "1"}


def test_linear_probe_random_labels_near_chance_and_undefined_findings() -> None:
    xtr, ytr, xte, yte = probe_data(300, 600, seed=1, separable=False)
    ytr[:, 1] = 0.0  # one class only in training: no probe, AUROC undefined
    result = linear_probe(xtr, ytr, xte, yte, ["A", "B"], fractions=(1.0,), seeds=(0,))
    row = result.fractions[1.0]
    assert abs(row["findings"]["A"][0] - 0.5) < 0.08
    assert math.isnan(row["findings"]["B"][0])
    assert row["runs"][0] == pytest.approx(row["findings"]["A"][0])  # the mean skips NaN
    assert result.to_dict()["fractions"]["1"]["findings"]["B"] == [None, None]
    with pytest.raises(ValueError, match="label matrices"):
        linear_probe(xtr, ytr[:, :1], xte, yte, ["A", "B"])
