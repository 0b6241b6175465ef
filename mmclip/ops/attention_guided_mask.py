"""``attention_guided_mask``: choose the patches to mask by Gumbel-top-k on scores."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import _validation as v
from . import reference
from ._dispatch import compiled_for
from ._library import has_ops

__all__ = ["AttentionGuidedMask", "attention_guided_mask", "mask_count"]


def mask_count(mask_ratio: float, num_patches: int) -> int:
    """``round(mask_ratio · P)`` (Python rounding, half to even) after checking the ratio."""
    return round(v.check_ratio("mask_ratio", mask_ratio) * num_patches)


# The noise draw and the validation run eagerly under torch.compile (dynamo cannot trace
# torch.rand with a generator over symbolic sizes); the rest of a compiled model is traced.
@torch.compiler.disable
def attention_guided_mask(
    scores: Tensor,
    mask_ratio: float,
    tau: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Choose ``round(mask_ratio · P)`` patches per row to mask.

    Patches are chosen by Gumbel-top-k on ``log(scores) / tau``: ``tau = inf`` masks
    uniformly at random (MAE), ``tau = 0`` masks exactly the top-``n`` scores (equal
    scores in index order), values between interpolate. The uniform noise is drawn
    from ``generator`` on the device of ``scores``: the same generator state gives the
    same masks.

    Args:
        scores (Tensor[B, P]): non-negative patch scores (e.g. from
            :func:`~mmclip.ops.cross_modal_attention_score`).
        mask_ratio: fraction of patches to mask, in [0, 1].
        tau: temperature, ``0 <= tau <= inf``.
        generator: random source; the default generator of the device when None.

    Returns:
        keep_idx (Tensor[B, P - n] int64, ascending per row),
        mask_idx (Tensor[B, n] int64, ascending per row),
        mask (Tensor[B, P] bool, True = masked).
    """
    v.check_tensor("scores", scores, 2)
    v.check_dtype("scores", scores, v.FLOAT_DTYPES)
    tau = float(tau)
    if math.isnan(tau) or tau < 0:
        raise ValueError(f"tau must be >= 0 (float('inf') for uniform masking); got {tau}")
    batch, num_patches = scores.shape
    n_mask = mask_count(mask_ratio, num_patches)
    scores = scores.detach()
    noise = torch.rand(batch, num_patches, generator=generator, device=scores.device)
    if compiled_for("attention_guided_mask", scores.device):
        return torch.ops.mmclip.attention_guided_mask(scores, noise, n_mask, tau)
    return reference.attention_guided_mask(scores, noise, n_mask, tau)


class AttentionGuidedMask(nn.Module):
    """Module form of :func:`attention_guided_mask` with a fixed ratio and temperature."""

    def __init__(self, mask_ratio: float = 0.75, tau: float = float("inf")) -> None:
        super().__init__()
        self.mask_ratio = v.check_ratio("mask_ratio", mask_ratio)
        self.tau = float(tau)

    def forward(
        self, scores: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """scores (Tensor[B, P]) → keep_idx [B, P−n], mask_idx [B, n], mask [B, P]."""
        return attention_guided_mask(scores, self.mask_ratio, self.tau, generator)

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}, tau={self.tau}"


if has_ops():

    @torch.library.register_fake("mmclip::attention_guided_mask")
    def _(scores: Tensor, noise: Tensor, n_mask: int, tau: float) -> tuple[Tensor, Tensor, Tensor]:
        batch, num_patches = scores.shape
        return (
            scores.new_empty((batch, num_patches - n_mask), dtype=torch.long),
            scores.new_empty((batch, n_mask), dtype=torch.long),
            scores.new_empty((batch, num_patches), dtype=torch.bool),
        )
