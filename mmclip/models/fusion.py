"""Transformer building blocks shared by the encoders and the light decoders.

Pre-norm blocks with self-attention, optional cross-attention to another modality and
an MLP; attention runs on :func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Attention",
    "DropPath",
    "Mlp",
    "TransformerBlock",
    "init_weights",
    "sincos_pos_embed_2d",
]


def sincos_pos_embed_2d(dim: int, grid_size: int) -> Tensor:
    """Fixed 2-D sine-cosine position embeddings (as MAE).

    Args:
        dim: embedding size, a multiple of 4.
        grid_size: patches per side.

    Returns:
        Tensor[grid_size², dim] float32, row-major over the patch grid.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position embeddings need a width divisible by 4; got {dim}")
    coords = torch.arange(grid_size, dtype=torch.float64)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))

    def embed(pos: Tensor) -> Tensor:
        out = pos.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([out.sin(), out.cos()], dim=1)

    return torch.cat([embed(gy), embed(gx)], dim=1).float()


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        """x (Tensor[B, ...]) → same shape."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)


class Mlp(nn.Module):
    """Linear → GELU → Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """x (Tensor[..., D]) → Tensor[..., D]."""
        return self.fc2(F.gelu(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head attention (self- or cross-) on ``scaled_dot_product_attention``.

    Args:
        dim: width of the queries and of the output.
        heads: number of heads (divides ``dim``).
        context_dim: width of the keys/values source; None = ``dim`` (self-attention).
        qkv_bias: bias in the input projections.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, qkv_bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.is_cross = context_dim is not None
        if self.is_cross:
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            self.kv = nn.Linear(int(context_dim), 2 * dim, bias=qkv_bias)  # type: ignore[arg-type]
        else:
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: Tensor, context: Tensor | None = None, key_mask: Tensor | None = None
    ) -> Tensor:
        """Attend from ``x`` to ``context`` (or to ``x``).

        Args:
            x (Tensor[B, N, dim]): queries.
            context (Tensor[B, S, context_dim] | None): keys/values for cross-attention.
            key_mask (Tensor[B, S] bool | None): True = attend to that key. Rows with no
                key to attend to give a zero output.

        Returns:
            Tensor[B, N, dim].
        """
        batch, length, dim = x.shape
        h = self.heads
        if self.is_cross:
            if context is None:
                raise ValueError("cross-attention needs a context")
            q = self.q(x).reshape(batch, length, h, dim // h).transpose(1, 2)
            kv = self.kv(context).reshape(batch, context.shape[1], 2, h, dim // h)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        else:
            qkv = self.qkv(x).reshape(batch, length, 3, h, dim // h)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn_mask = None
        empty_rows = None
        if key_mask is not None:
            key_mask = key_mask.bool()
            any_key = key_mask.any(dim=1)
            if not bool(any_key.all()):
                empty_rows = ~any_key
                key_mask = key_mask | empty_rows[:, None]
            attn_mask = key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(batch, length, dim)
        out = self.proj(out)
        if empty_rows is not None:
            out = out.masked_fill(empty_rows[:, None, None], 0.0)
        return out


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, MLP.

    Args:
        dim, heads: width and heads.
        mlp_ratio: MLP hidden size as a multiple of ``dim``.
        context_dim: width of the cross-attention memory; None = no cross-attention.
        qkv_bias: bias in the attention projections.
        drop_path: stochastic depth rate.
        eps: LayerNorm epsilon.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        context_dim: int | None = None,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias=qkv_bias)
        self.cross: Attention | None = None
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(dim, eps=eps)
            self.cross = Attention(dim, heads, context_dim=context_dim, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, round(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(
        self,
        x: Tensor,
        key_mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """Run the block.

        Args:
            x (Tensor[B, N, dim]): tokens.
            key_mask (Tensor[B, N] bool | None): self-attention keys to attend to.
            context (Tensor[B, S, context_dim] | None): cross-attention memory; None skips
                the cross-attention (e.g. image-only or text-only samples).
            context_mask (Tensor[B, S] bool | None): memory entries to attend to.

        Returns:
            Tensor[B, N, dim].
        """
        x = x + self.drop_path(self.attn(self.norm1(x), key_mask=key_mask))
        if self.cross is not None and context is not None:
            x = x + self.drop_path(self.cross(self.norm_cross(x), context, context_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def init_weights(module: nn.Module) -> None:
    """Truncated-normal linear weights (std 0.02), zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
