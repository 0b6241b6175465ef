"""The project's own Vision Transformer (no timm), able to encode visible patches only."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..ops import masked_gather
from .config import VisionConfig
from .fusion import TransformerBlock, init_weights, sincos_pos_embed_2d
from .stems import STEM_STRIDES, STEMS, EfficientNetStem

__all__ = ["ViTOutput", "VisionTransformer", "patchify", "unpatchify"]


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into flattened patches.

    Args:
        images (Tensor[B, C, H, W]): H and W multiples of ``patch_size``.

    Returns:
        Tensor[B, P, patch_size² · C], patches row-major, each patch flattened as
        (row, column, channel).
    """
    batch, chans, height, width = images.shape
    p = patch_size
    if height % p or width % p:
        raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {p}")
    x = images.reshape(batch, chans, height // p, p, width // p, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # B, h, w, p, p, C
    return x.reshape(batch, (height // p) * (width // p), p * p * chans)


def unpatchify(patches: Tensor, patch_size: int, chans: int = 1) -> Tensor:
    """Inverse of :func:`patchify` for square images.

    Args:
        patches (Tensor[B, P, patch_size² · chans]): P a square number.

    Returns:
        Tensor[B, chans, H, W] with ``H = W = sqrt(P) · patch_size``.
    """
    batch, num, size = patches.shape
    side = round(num**0.5)
    p = patch_size
    if side * side != num or size != p * p * chans:
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not form a square image of "
            f"{p}x{p}x{chans} patches"
        )
    x = patches.reshape(batch, side, side, p, p, chans).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(batch, chans, side * p, side * p)


@dataclass
class ViTOutput:
    """Output of :class:`VisionTransformer`.

    Attributes:
        tokens (Tensor[B, K, D]): final-normed states of the encoded patches (all P
            patches, or the K visible ones in ``keep_idx`` order).
        pooled (Tensor[B, D]): the [CLS] state or the mean of ``tokens``.
        intermediate (Tensor[B, K or P, D] | None): final-normed patch states after the
            first ``intermediate`` blocks, when asked for.
        cells (Tensor[B, P, C] | None): a frozen CNN stem's per-cell features of the whole
            image (no gradient) — AttMIM's ``stem`` target; None with a linear patch
            embedding, a trainable stem or a ``keep_idx``.
    """

    tokens: Tensor
    pooled: Tensor
    intermediate: Tensor | None = None
    cells: Tensor | None = None


class VisionTransformer(nn.Module):
    """ViT with pre-norm blocks, grey-scale by default.

    Args:
        image_size: square input side in pixels (multiple of ``patch_size``).
        patch_size: patch side (16).
        in_chans: input channels (1).
        width, depth, heads, mlp_ratio: transformer sizes.
        pos_embed: ``"sincos"`` (fixed) or ``"learned"``.
        pool: ``"cls"`` or ``"mean"`` for :attr:`ViTOutput.pooled`.
        qkv_bias: bias in the attention projections.
        drop_path: stochastic depth of the last block (linear in depth).

    Sizes: tiny (192, 4, 3), small = ViT-S/16 (384, 12, 6), base = ViT-B/16 (768, 12, 12).
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 1,
        width: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        pos_embed: str = "sincos",
        pool: str = "cls",
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        stem: str = "patch",
        stem_frozen: bool = True,
        image_mean: float = 0.5,
        image_std: float = 0.5,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {list(STEMS)}; got {stem!r}")
        if stem != "patch" and patch_size != STEM_STRIDES[stem]:
            raise ValueError(
                f"stem {stem!r} makes one token per {STEM_STRIDES[stem]}-pixel cell: "
                f"patch_size must be {STEM_STRIDES[stem]}; got {patch_size}"
            )
        if image_size % patch_size:
            raise ValueError(
                f"image_size {image_size} is not a multiple of patch_size {patch_size}"
            )
        if pos_embed not in ("sincos", "learned"):
            raise ValueError(f"pos_embed must be 'sincos' or 'learned'; got {pos_embed!r}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean'; got {pool!r}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.width = width
        self.depth = depth
        self.pool = pool
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2
        self.patch_embed = nn.Conv2d(in_chans, width, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        if pos_embed == "sincos":
            self.register_buffer(
                "pos_embed", sincos_pos_embed_2d(width, self.grid_size)[None], persistent=False
            )
        else:
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, width))
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            TransformerBlock(width, heads, mlp_ratio, qkv_bias=qkv_bias, drop_path=r) for r in rates
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self._init()
        # After _init: the stem keeps its pretrained weights.
        self.stem: EfficientNetStem | None = None
        if stem != "patch":
            self.stem = EfficientNetStem(
                width, image_mean, image_std, frozen=stem_frozen, stride=STEM_STRIDES[stem]
            )
            self.patch_embed.requires_grad_(False)  # unused: the stem makes the tokens

    @classmethod
    def from_config(cls, config: VisionConfig) -> VisionTransformer:
        """Build from a :class:`~mmclip.models.VisionConfig`."""
        return cls(
            image_size=config.image_size,
            patch_size=config.patch_size,
            in_chans=config.in_chans,
            width=config.width,
            depth=config.depth,
            heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            pos_embed=config.pos_embed,
            pool=config.pool,
            qkv_bias=config.qkv_bias,
            drop_path=config.drop_path,
            stem=config.stem,
            stem_frozen=config.stem_frozen,
            image_mean=config.image_mean,
            image_std=config.image_std,
        )

    def _init(self) -> None:
        init_weights(self)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        if isinstance(self.pos_embed, nn.Parameter):
            nn.init.normal_(self.pos_embed, std=0.02)

    def check_images(self, images: Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` is a float [B, in_chans, S, S] batch."""
        if not isinstance(images, Tensor):
            raise TypeError(f"images must be a Tensor; got {type(images).__name__}")
        if images.ndim != 4:
            raise ValueError(
                f"images must have shape (B, {self.in_chans}, {self.image_size}, "
                f"{self.image_size}); got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise ValueError(f"images must be floating point; got {images.dtype}")
        if images.shape[1] != self.in_chans:
            raise ValueError(
                f"images must have {self.in_chans} channel(s) (model in_chans); got "
                f"{images.shape[1]} in shape {tuple(images.shape)}"
            )
        if tuple(images.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"images must be {self.image_size}x{self.image_size} (model image_size); got "
                f"{images.shape[2]}x{images.shape[3]} — resize them, e.g. with "
                "mmclip.models.preprocess_image"
            )

    def hide_cells(self, images: Tensor, keep_idx: Tensor) -> Tensor:
        """Fill every patch not in ``keep_idx`` with 0 (the mean grey in model units).

        Args:
            images (Tensor[B, C, S, S]).
            keep_idx (Tensor[B, K] int64): the visible patches.

        Returns:
            Tensor[B, C, S, S]: a copy whose hidden patches carry no trace of their pixels.
        """
        visible = images.new_zeros(images.shape[0], self.num_patches)
        visible.scatter_(1, keep_idx, 1.0)
        grid = visible.view(-1, 1, self.grid_size, self.grid_size)
        pixels = grid.repeat_interleave(self.patch_size, 2).repeat_interleave(self.patch_size, 3)
        return torch.where(pixels.bool(), images, torch.zeros((), dtype=images.dtype))

    def embed(self, images: Tensor, keep_idx: Tensor | None = None) -> Tensor:
        """Patch embeddings plus positions (see :meth:`embed_with_cells`): Tensor[B, P or K, D]."""
        return self.embed_with_cells(images, keep_idx)[0]

    def embed_with_cells(
        self, images: Tensor, keep_idx: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Patch embeddings plus positions, of all patches or of the visible ones.

        With a CNN stem the hidden patches are filled with the mean grey *before* the stem
        runs (:meth:`hide_cells`), so no hidden pixel reaches a visible token; the linear
        patch embedding sees one patch per token, so it gathers after embedding.

        Args:
            images (Tensor[B, C, H, W]).
            keep_idx (Tensor[B, K] int64 | None): the patches to embed; None = all.

        Returns:
            (Tensor[B, P or K, D], Tensor[B, P, C] | None): the embeddings, and a frozen stem's
            per-cell features of the whole image (None otherwise, see :class:`ViTOutput`).
        """
        self.check_images(images)
        cells = None
        if self.stem is not None:
            if keep_idx is not None:
                images = self.hide_cells(images, keep_idx)
            features = self.stem.cell_features(images)
            x = self.stem.proj(features)
            if keep_idx is None and self.stem.frozen:
                cells = features
        else:
            x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = x + self.pos_embed.to(x.dtype)
        if keep_idx is not None:
            x = masked_gather(x, keep_idx)
        return x, cells

    def forward(
        self,
        images: Tensor,
        keep_idx: Tensor | None = None,
        depth: int | None = None,
        intermediate: int | None = None,
    ) -> ViTOutput:
        """Encode all patches, or only the visible ones.

        Args:
            images (Tensor[B, C, H, W]): ``C = in_chans``, ``H = W = image_size``.
            keep_idx (Tensor[B, K] int64 | None): patches to encode (e.g. the visible
                ones of a mask); None = all P patches.
            depth: run only the first ``depth`` blocks (the final norm still applies);
                None = all blocks.
            intermediate: also return the (final-normed) patch states after this many
                blocks, ``<= depth``; None = not.

        Returns:
            :class:`ViTOutput` with ``tokens`` [B, K or P, D] and ``pooled`` [B, D].
        """
        x, cells = self.embed_with_cells(images, keep_idx)
        cls = self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        n_blocks = self.depth if depth is None else int(depth)
        if not 0 <= n_blocks <= self.depth:
            raise ValueError(f"depth must lie in [0, {self.depth}]; got {depth}")
        if intermediate is not None and not 0 <= intermediate <= n_blocks:
            raise ValueError(f"intermediate must lie in [0, {n_blocks}]; got {intermediate}")
        middle = None
        if intermediate == 0:
            middle = self.norm(x)[:, 1:]
        for i, block in enumerate(self.blocks[:n_blocks]):
            x = block(x)
            if intermediate == i + 1:
                middle = self.norm(x)[:, 1:]
        x = self.norm(x)
        tokens = x[:, 1:]
        if self.pool == "cls":
            pooled = x[:, 0]
        else:
            pooled = tokens.mean(dim=1) if tokens.shape[1] else x[:, 0]
        return ViTOutput(tokens=tokens, pooled=pooled, intermediate=middle, cells=cells)

    def patchify(self, images: Tensor) -> Tensor:
        """images (Tensor[B, C, H, W]) → Tensor[B, P, patch_size² · C]."""
        return patchify(images, self.patch_size)

    def unpatchify(self, patches: Tensor) -> Tensor:
        """patches (Tensor[B, P, patch_size² · C]) → Tensor[B, C, H, W]."""
        return unpatchify(patches, self.patch_size, self.in_chans)
