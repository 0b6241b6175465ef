"""Image–text retrieval: Recall@K in both directions on paired records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mmclip.data import XrayRecord

from .embed import encode_records, encode_texts
from .metrics import recall_at_k

__all__ = ["RetrievalResult", "evaluate_retrieval", "retrieval_metrics"]


@dataclass
class RetrievalResult:
    """Recall@K of image → text and text → image retrieval.

    Attributes:
        image_to_text, text_to_image: ``{k: recall}``.
        n: number of pairs (the candidate pool of each query).
    """

    image_to_text: dict[int, float]
    text_to_image: dict[int, float]
    n: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "n": self.n,
            "image_to_text": {f"R@{k}": v for k, v in self.image_to_text.items()},
            "text_to_image": {f"R@{k}": v for k, v in self.text_to_image.items()},
        }


def retrieval_metrics(
    image_embeds: Tensor, text_embeds: Tensor, ks: Sequence[int] = (1, 5, 10)
) -> RetrievalResult:
    """Recall@K where image ``i`` and text ``i`` are a pair.

    Args:
        image_embeds (Tensor[N, E]), text_embeds (Tensor[N, E]): normalised embeddings.
    """
    if image_embeds.shape != text_embeds.shape or image_embeds.ndim != 2:
        raise ValueError(
            "image and text embeddings must both be [N, E]; got "
            f"{tuple(image_embeds.shape)} and {tuple(text_embeds.shape)}"
        )
    sim = (image_embeds.double() @ text_embeds.double().t()).numpy()
    return RetrievalResult(recall_at_k(sim, ks), recall_at_k(sim.T, ks), int(sim.shape[0]))


@torch.no_grad()
def evaluate_retrieval(
    model: Any,
    records: Sequence[XrayRecord],
    ks: Sequence[int] = (1, 5, 10),
    batch_size: int = 64,
    backend: str = "auto",
    image_embeds: Tensor | None = None,
) -> RetrievalResult:
    """Retrieval among the paired records (those with an image and a report)."""
    pairs = [r for r in records if r.image_path is not None and r.report]
    if not pairs:
        raise ValueError("retrieval needs records with both an image and a report")
    if image_embeds is None or len(pairs) != len(records):
        image_embeds = encode_records(model, pairs, batch_size=batch_size, backend=backend)
    text_embeds = encode_texts(model, [r.report for r in pairs if r.report])
    return retrieval_metrics(image_embeds, text_embeds, ks)
