"""Full fine-tuning of the image encoder with a linear head at 1 %, 10 %, 100 % of the labels.

For each label fraction and seed: a copy of the pre-trained image encoder plus a new linear
head (one logit per finding) is trained with AdamW and a masked binary cross-entropy on a
stratified subset of the training images (:func:`~mmclip.eval.probe.stratified_subset`), then
scored by AUROC on the test images. The same subsets as the linear probe are used.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn

from .metrics import roc_auc
from .probe import DEFAULT_FRACTIONS, DEFAULT_SEEDS, FewLabelResult, few_label_runs

__all__ = ["FinetuneConfig", "ImageClassifier", "finetune"]

logger = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    """Fine-tuning hyper-parameters.

    Attributes:
        epochs: passes over the (subset of the) training images (at least ``min_steps``
            optimiser steps are taken on small subsets).
        batch_size: images per step.
        lr, weight_decay: AdamW.
        head_lr_scale: the head's learning rate as a multiple of ``lr``.
        min_steps: the fewest optimiser steps of a run.
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.05
    head_lr_scale: float = 10.0
    min_steps: int = 20


class ImageClassifier(nn.Module):
    """A pre-trained image encoder with a linear head on its pooled state.

    Args:
        encoder: a :class:`~mmclip.models.VisionTransformer` (copied by the caller).
        num_classes: logits per image.
    """

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(int(encoder.width), num_classes)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=0.01)

    def forward(self, images: Tensor) -> Tensor:
        """Tensor[B, C, S, S] → logits Tensor[B, num_classes]."""
        return self.head(self.encoder(images).pooled)


def _train_one(
    model: Any,
    images: Tensor,
    labels: Tensor,
    config: FinetuneConfig,
    seed: int,
    device: torch.device,
) -> ImageClassifier:
    torch.manual_seed(seed)
    clf = ImageClassifier(copy.deepcopy(model.visual), labels.shape[1]).to(device).train()
    head_params = list(clf.head.parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": list(clf.encoder.parameters()), "lr": config.lr},
            {"params": head_params, "lr": config.lr * config.head_lr_scale},
        ],
        weight_decay=config.weight_decay,
    )
    n = images.shape[0]
    steps_per_epoch = max(1, math.ceil(n / config.batch_size))
    total = max(config.min_steps, config.epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    position = 0
    for _ in range(total):
        if position >= n:
            order, position = torch.randperm(n, generator=generator), 0
        idx = order[position : position + config.batch_size]
        position += config.batch_size
        x, y = images[idx].to(device), labels[idx].to(device)
        known = ~torch.isnan(y)
        logits = clf(x)
        loss = (
            F.binary_cross_entropy_with_logits(logits[known], y[known], reduction="mean")
            if known.any()
            else logits.sum() * 0.0
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return clf.eval()


@torch.no_grad()
def _predict(clf: ImageClassifier, images: Tensor, batch_size: int, device: torch.device) -> Tensor:
    out = [
        torch.sigmoid(clf(images[i : i + batch_size].to(device))).float().cpu()
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(out)


def finetune(
    model: Any,
    train_images: Tensor,
    train_y: ArrayLike,
    test_images: Tensor,
    test_y: ArrayLike,
    findings: Sequence[str],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    config: FinetuneConfig | None = None,
) -> FewLabelResult:
    """Fine-tune copies of ``model.visual`` with a linear head, per label fraction and seed.

    Args:
        model: a pre-trained :class:`~mmclip.models.MMCLIPModel` (left unchanged).
        train_images (Tensor[N, C, S, S]), test_images (Tensor[M, C, S, S]): evaluation-
            transformed images (:func:`~mmclip.eval.embed.load_images`).
        train_y (array[N, F]), test_y (array[M, F]): labels (1 / 0, NaN = left out).
        findings: the F finding names.
    """
    config = config or FinetuneConfig()
    ytr = np.asarray(train_y, dtype=np.float64)
    yte = np.asarray(test_y, dtype=np.float64)
    if ytr.shape != (train_images.shape[0], len(findings)):
        raise ValueError("train_y must be [N, F] matching train_images and findings")
    device = next(model.parameters()).device
    labels = torch.as_tensor(ytr, dtype=torch.float32)

    def run(subset: NDArray[np.int64], seed: int) -> NDArray[np.float64]:
        idx = torch.as_tensor(subset)
        clf = _train_one(model, train_images[idx], labels[idx], config, seed, device)
        probs = _predict(clf, test_images, config.batch_size, device).double().numpy()
        aurocs = np.full(len(findings), np.nan)
        for j in range(len(findings)):
            keep = ~np.isnan(yte[:, j])
            aurocs[j] = roc_auc(yte[keep, j].astype(np.int64), probs[keep, j])
        return aurocs

    return few_label_runs("finetune", findings, ytr, fractions, seeds, run, log=logger)
