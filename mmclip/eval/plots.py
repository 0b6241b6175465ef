"""Pictures where people look rather than read: ROC curves, AttMIM masks over X-rays, the
loss curve. Matplotlib with the Agg backend (no display needed); every function writes a PNG
and returns its path."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from torch import Tensor

from mmclip.io import atomic_save_figure
from mmclip.models.config import LOSS_TERMS

from .metrics import roc_auc, roc_curve

__all__ = ["plot_attmim_masks", "plot_loss_curve", "plot_roc_curves"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def plot_roc_curves(
    curves: Mapping[str, tuple[NDArray, NDArray]],
    path: str | Path,
    title: str = "Zero-shot ROC curves",
) -> Path:
    """One ROC curve per finding.

    Args:
        curves: finding → ``(y_true array[N] 0/1, y_score array[N])`` (NaN labels dropped).
        path: the PNG to write.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="chance (0.500)")
    for name, (y, s) in curves.items():
        y, s = np.asarray(y, dtype=np.float64), np.asarray(s, dtype=np.float64)
        keep = ~np.isnan(y)
        y_int = y[keep].astype(np.int64)
        if len(np.unique(y_int)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y_int, s[keep])
        ax.plot(fpr, tpr, linewidth=1.6, label=f"{name} ({roc_auc(y_int, s[keep]):.3f})")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8, title="AUROC", title_fontsize=8)
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def _patch_image(values: Tensor, grid: int, size: int) -> NDArray[np.float64]:
    block = size // grid
    return np.kron(values.reshape(grid, grid).double().numpy(), np.ones((block, block)))


def plot_attmim_masks(
    images: Tensor,
    scores: Tensor,
    guided: Tensor,
    random: Tensor | None,
    path: str | Path,
    texts: Sequence[str] = (),
    lesions: NDArray[np.bool_] | None = None,
    title: str = "AttMIM: patches the report chose to mask",
) -> Path:
    """Per image: the X-ray (lesion outline), the text→patch attention, the guided mask and a
    random mask of the same ratio (masked patches tinted).

    Args:
        images (Tensor[B, C, S, S]): evaluation-transformed images (any normalisation).
        scores (Tensor[B, P]), guided (Tensor[B, P] bool), random (Tensor[B, P] bool | None):
            from :func:`~mmclip.eval.masks.guided_masks`.
        texts: a caption per image (shortened).
        lesions (array[B, S, S] bool | None): lesion masks to outline.
    """
    plt = _pyplot()
    b, _, size, _ = images.shape
    grid = math.isqrt(scores.shape[1])
    cols = 4 if random is not None else 3
    fig, axes = plt.subplots(b, cols, figsize=(2.6 * cols, 2.7 * b), dpi=110, squeeze=False)
    headers = ["X-ray", "text → patch attention", "guided mask", "random mask"]
    for i in range(b):
        img = images[i, 0].double().numpy()
        lo, hi = np.percentile(img, [1, 99])
        img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
        panels = [None, scores[i], guided[i]] + ([random[i]] if random is not None else [])
        for j, panel in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            if j == 1 and panel is not None:
                ax.imshow(_patch_image(panel, grid, size), cmap="inferno", alpha=0.55)
            elif panel is not None:
                overlay = np.zeros((size, size, 4))
                overlay[..., 0] = 0.1
                overlay[..., 1] = 0.5
                overlay[..., 2] = 1.0
                overlay[..., 3] = 0.5 * _patch_image(panel.float(), grid, size)
                ax.imshow(overlay)
            if lesions is not None and lesions[i].any():
                ax.contour(lesions[i].astype(float), levels=[0.5], colors="#ff3030", linewidths=0.9)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(headers[j], fontsize=9)
        if i < len(texts):
            caption = texts[i].replace("FINDINGS:", "").replace("\n", " ").strip()
            caption = caption if len(caption) <= 70 else caption[:67] + "..."
            axes[i, 0].set_ylabel(
                caption, fontsize=6, rotation=0, ha="left", va="bottom", labelpad=0
            )
            axes[i, 0].yaxis.set_label_coords(0.0, -0.12)
    fig.suptitle(title, fontsize=11)
    return _save(plt, fig, path)


def plot_loss_curve(metrics_jsonl: str | Path, path: str | Path) -> Path:
    """The training loss and its terms against the step, from a run's ``metrics.jsonl``."""
    plt = _pyplot()
    records: dict[int, dict] = {}
    with open(metrics_jsonl, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                r = json.loads(line)
                records[int(r["step"])] = r
    steps = sorted(records)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for key in ("loss", *LOSS_TERMS):
        ys = [records[s].get(key) for s in steps]
        if any(y is not None for y in ys):
            ax.plot(steps, [np.nan if y is None else y for y in ys], label=key, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("pre-training loss")
    return _save(plt, fig, path)
