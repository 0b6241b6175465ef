"""How much of the image tower's gradient each loss term supplies.

A term whose gradient is a small share of the image tower's cannot change the tower much,
whatever it is meant to teach: the first real-data runs had AttMIM's masked-image loss at
1–2 % of it, and guided masking then equalled uniform masking. :func:`term_gradient_norms`
measures, on one batch, the norm of each weighted term's gradient with respect to the
trainable image-tower parameters (``model.visual``); :func:`gradient_shares` turns them into
shares, ``‖g_t‖ / Σ_u ‖g_u‖``, and the share of the *masked pass* (the terms computed from
AttMIM's masked view: ``mim`` and ``clip_masked``).

``examples/gradient_share.py`` prints the shares of a model on real batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..batch import MMCLIPBatch, row_groups
from ..models.config import LOSS_TERMS

__all__ = ["MASKED_PASS_TERMS", "GradientShares", "gradient_shares", "term_gradient_norms"]

MASKED_PASS_TERMS: tuple[str, ...] = ("mim", "clip_masked")
"""The terms computed from AttMIM's masked view of the images."""


@dataclass
class GradientShares:
    """Per-term gradient norms on the image tower, summed over batches.

    Attributes:
        norms: term → mean norm of its weighted gradient over the batches.
        batches: how many batches were measured.
    """

    norms: dict[str, float] = field(default_factory=dict)
    batches: int = 0
    guided_rows: int = 0
    image_text_rows: int = 0

    def guided_row_share(self) -> float:
        """Share of the image–text rows (pairs and image + prompt) whose text has a focus
        token, i.e. whose AttMIM mask can follow the text (the others are masked uniformly)."""
        return self.guided_rows / self.image_text_rows if self.image_text_rows else 0.0

    def shares(self) -> dict[str, float]:
        """term → ``norm / Σ norms`` (0 for all when every norm is 0)."""
        total = sum(self.norms.values())
        return {k: (v / total if total > 0 else 0.0) for k, v in self.norms.items()}

    def masked_pass_share(self) -> float:
        """The share of the terms of :data:`MASKED_PASS_TERMS`."""
        shares = self.shares()
        return sum(shares.get(term, 0.0) for term in MASKED_PASS_TERMS)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: norms, shares, the masked pass's share and the batch count."""
        return {
            "norms": dict(self.norms),
            "shares": self.shares(),
            "masked_pass_share": self.masked_pass_share(),
            "guided_row_share": self.guided_row_share(),
            "batches": self.batches,
        }

    def markdown(self) -> str:
        """A table: term | mean gradient norm | share, then the masked pass's share."""
        lines = ["| term | gradient norm | share |", "|---|---:|---:|"]
        for term, share in self.shares().items():
            lines.append(f"| {term} | {self.norms[term]:.4g} | {100 * share:.1f} % |")
        lines.append(
            f"| **masked pass** ({' + '.join(MASKED_PASS_TERMS)}) | | "
            f"**{100 * self.masked_pass_share():.1f} %** |"
        )
        lines.append(
            f"\nGuided rows: {self.guided_rows} of {self.image_text_rows} image–text "
            f"rows ({100 * self.guided_row_share():.1f} %) have a focus token."
        )
        return "\n".join(lines)


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def term_gradient_norms(
    terms: Mapping[str, Tensor | None],
    weights: Mapping[str, float],
    params: Iterable[nn.Parameter],
) -> dict[str, float]:
    """The norm of each weighted term's gradient with respect to ``params``.

    Args:
        terms: term name → scalar loss (with graph) or None (absent).
        weights: term name → its weight in the total loss.
        params: the parameters (e.g. the trainable image-tower parameters).

    Returns:
        term → ‖∂(weight · term)/∂params‖₂ for every present term with a non-zero weight
        (0.0 for a term that does not reach ``params``).
    """
    params = list(params)
    norms: dict[str, float] = {}
    for name, term in terms.items():
        weight = float(weights.get(name, 0.0))
        if term is None or weight == 0.0 or not term.requires_grad:
            continue
        grads = torch.autograd.grad(weight * term, params, retain_graph=True, allow_unused=True)
        squares = [g.float().pow(2).sum() for g in grads if g is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


def _guided_rows(model: nn.Module, batch: MMCLIPBatch) -> tuple[int, int]:
    """(rows with a focus token, image–text rows) of a batch."""
    text = row_groups(batch, use_unpaired=model.config.use_unpaired).pair_texts  # type: ignore[union-attr]
    if text is None:
        return 0, 0
    weights = model.objective.guidance_weights(text)  # type: ignore[union-attr, operator]
    return int((weights.sum(dim=1) > 0).sum()), text.rows


def gradient_shares(model: nn.Module, batches: Iterable[MMCLIPBatch], step: int) -> GradientShares:
    """Mean per-term gradient norms on ``model.visual`` over ``batches``.

    Args:
        model: an :class:`~mmclip.models.MMCLIPModel` (in train mode for the real step).
        batches: :class:`~mmclip.batch.MMCLIPBatch` es on the model's device.
        step: the optimiser step for the masking schedule (τ), e.g. the last step of the run.

    Returns:
        :class:`GradientShares`; the model's ``.grad`` fields are left untouched.
    """
    params = _trainable(model.visual)  # type: ignore[arg-type]
    weights = vars(model.config.loss_weights)  # type: ignore[union-attr]
    result = GradientShares()
    for batch in batches:
        guided, rows = _guided_rows(model, batch)
        result.guided_rows += guided
        result.image_text_rows += rows
        out = model(batch, step=step)
        norms = term_gradient_norms({t: getattr(out, t) for t in LOSS_TERMS}, weights, params)
        for term, norm in norms.items():
            result.norms[term] = result.norms.get(term, 0.0) + norm
        result.batches += 1
    if result.batches:
        result.norms = {t: v / result.batches for t, v in result.norms.items()}
    return result
