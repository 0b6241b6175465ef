"""``masked_gather`` / ``masked_scatter``: move visible tokens out of and back into place.

The two are differentiable (each one's backward is built from the other) and so are
their backward operators, so double backward works too.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import _validation as v
from . import reference
from ._dispatch import compiled_for
from ._library import has_ops

__all__ = ["MaskedGather", "MaskedScatter", "masked_gather", "masked_scatter"]


def _check_index(name: str, idx: Tensor, ref_name: str, ref: Tensor, upper: int) -> None:
    v.check_tensor(name, idx, 2)
    v.check_dtype(name, idx, (torch.int64,))
    v.check_device(ref_name, ref, **{name: idx})
    if idx.shape[0] != ref.shape[0]:
        raise ValueError(
            f"{name} must have batch size {ref.shape[0]} (that of {ref_name}); got {idx.shape[0]}"
        )
    v.check_index_range(name, idx, upper)


def _check_distinct(name: str, idx: Tensor) -> None:
    """Require distinct indices per row (every device with values)."""
    if v.has_values(idx) and idx.shape[1] > 1:
        ordered = idx.sort(dim=1).values
        if bool((ordered[:, 1:] == ordered[:, :-1]).any()):
            raise ValueError(f"{name} must hold distinct indices per row")


def masked_gather(x: Tensor, idx: Tensor) -> Tensor:
    """Select tokens per sample: ``out[b, j] = x[b, idx[b, j]]``.

    Args:
        x (Tensor[B, P, D]): tokens (float32, float16, bfloat16 or float64).
        idx (Tensor[B, K] int64): indices in ``[0, P)``; repeats are allowed.

    Returns:
        Tensor[B, K, D]; differentiable w.r.t. ``x``.
    """
    v.check_tensor("x", x, 3)
    v.check_dtype("x", x, v.FLOAT_DTYPES)
    _check_index("idx", idx, "x", x, x.shape[1])
    if compiled_for("masked_gather", x.device):
        return torch.ops.mmclip.masked_gather(x, idx)
    return reference.masked_gather(x, idx)


def masked_scatter(
    visible: Tensor, keep_idx: Tensor, mask_token: Tensor, num_patches: int
) -> Tensor:
    """Put the visible tokens back at ``keep_idx`` and ``mask_token`` everywhere else.

    Args:
        visible (Tensor[B, K, D]): encoded visible tokens.
        keep_idx (Tensor[B, K] int64): distinct positions in ``[0, num_patches)``.
        mask_token (Tensor[D]): the token of masked positions, same dtype as ``visible``.
        num_patches: P, at least K.

    Returns:
        Tensor[B, P, D]; differentiable w.r.t. ``visible`` and ``mask_token``.
    """
    v.check_tensor("visible", visible, 3)
    v.check_dtype("visible", visible, v.FLOAT_DTYPES)
    v.check_tensor("mask_token", mask_token, 1)
    v.check_dtype("mask_token", mask_token, (visible.dtype,))
    v.check_device("visible", visible, mask_token=mask_token)
    num_patches = int(num_patches)
    if num_patches < visible.shape[1]:
        raise ValueError(
            f"num_patches must be >= the {visible.shape[1]} visible tokens; got {num_patches}"
        )
    v.check_shape("mask_token", mask_token, (visible.shape[2],), "feature size of visible")
    _check_index("keep_idx", keep_idx, "visible", visible, num_patches)
    v.check_shape(
        "keep_idx", keep_idx, tuple(visible.shape[:2]), "batch and token sizes of visible"
    )
    _check_distinct("keep_idx", keep_idx)
    if compiled_for("masked_scatter", visible.device):
        return torch.ops.mmclip.masked_scatter(visible, keep_idx, mask_token, num_patches)
    return reference.masked_scatter(visible, keep_idx, mask_token, num_patches)


class MaskedGather(nn.Module):
    """Module form of :func:`masked_gather`."""

    def forward(self, x: Tensor, idx: Tensor) -> Tensor:
        """x (Tensor[B, P, D]), idx (Tensor[B, K]) → Tensor[B, K, D]."""
        return masked_gather(x, idx)


class MaskedScatter(nn.Module):
    """:func:`masked_scatter` with a learnable mask token of size ``dim``."""

    def __init__(self, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.mask_token = nn.Parameter(torch.zeros(dim))
        nn.init.normal_(self.mask_token, std=init_std)

    def forward(self, visible: Tensor, keep_idx: Tensor, num_patches: int) -> Tensor:
        """visible (Tensor[B, K, D]), keep_idx (Tensor[B, K]) → Tensor[B, P, D]."""
        return masked_scatter(visible, keep_idx, self.mask_token.to(visible.dtype), num_patches)


if has_ops():
    _ops = torch.ops.mmclip

    @torch.library.register_fake("mmclip::masked_gather")
    def _gather_fake(x: Tensor, idx: Tensor) -> Tensor:
        return x.new_empty((x.shape[0], idx.shape[1], x.shape[2]))

    @torch.library.register_fake("mmclip::masked_gather_backward")
    def _gather_backward_fake(grad: Tensor, idx: Tensor, num_patches: int) -> Tensor:
        return grad.new_empty((grad.shape[0], num_patches, grad.shape[2]))

    @torch.library.register_fake("mmclip::masked_scatter")
    def _scatter_fake(
        visible: Tensor, keep_idx: Tensor, mask_token: Tensor, num_patches: int
    ) -> Tensor:
        return visible.new_empty((visible.shape[0], num_patches, visible.shape[2]))

    @torch.library.register_fake("mmclip::masked_scatter_backward")
    def _scatter_backward_fake(grad: Tensor, keep_idx: Tensor) -> tuple[Tensor, Tensor]:
        return (
            grad.new_empty((grad.shape[0], keep_idx.shape[1], grad.shape[2])),
            grad.new_empty((grad.shape[2],)),
        )

    def _save_index(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[1])
        ctx.num_patches = inputs[0].shape[1]

    def _gather_backward(ctx, grad: Tensor):
        (idx,) = ctx.saved_tensors
        return _ops.masked_gather_backward(grad.contiguous(), idx, ctx.num_patches), None

    def _gather_backward_backward(ctx, grad: Tensor):
        (idx,) = ctx.saved_tensors
        return _ops.masked_gather(grad.contiguous(), idx), None, None

    def _scatter_backward(ctx, grad: Tensor):
        (keep_idx,) = ctx.saved_tensors
        grad_visible, grad_token = _ops.masked_scatter_backward(grad.contiguous(), keep_idx)
        return grad_visible, None, grad_token, None

    def _scatter_backward_backward(ctx, grad_visible: Tensor | None, grad_token: Tensor | None):
        (keep_idx,) = ctx.saved_tensors
        batch, count = keep_idx.shape
        dim = ctx.dim
        if grad_visible is None:
            grad_visible = keep_idx.new_zeros((batch, count, dim), dtype=ctx.dtype)
        if grad_token is None:
            grad_token = keep_idx.new_zeros((dim,), dtype=ctx.dtype)
        grad = _ops.masked_scatter(grad_visible.contiguous(), keep_idx, grad_token, ctx.num_patches)
        return grad, None

    def _save_scatter_backward(ctx, inputs, output) -> None:
        grad, keep_idx = inputs
        ctx.save_for_backward(keep_idx)
        ctx.num_patches, ctx.dim, ctx.dtype = grad.shape[1], grad.shape[2], grad.dtype

    def _save_gather_backward(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[1])

    def _save_scatter(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[1])

    torch.library.register_autograd(
        "mmclip::masked_gather", _gather_backward, setup_context=_save_index
    )
    torch.library.register_autograd(
        "mmclip::masked_gather_backward",
        _gather_backward_backward,
        setup_context=_save_gather_backward,
    )
    torch.library.register_autograd(
        "mmclip::masked_scatter", _scatter_backward, setup_context=_save_scatter
    )
    torch.library.register_autograd(
        "mmclip::masked_scatter_backward",
        _scatter_backward_backward,
        setup_context=_save_scatter_backward,
    )
