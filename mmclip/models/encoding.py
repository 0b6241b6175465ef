"""The inference API of :class:`~mmclip.models.MMCLIPModel`: images and texts → joint space.

:class:`ImageTextEncoding` is a mixin of the model (as Hugging Face's ``ModuleUtilsMixin``):
it reads the model's towers (``visual``, ``text``), projections (``image_proj``,
``text_proj``), ``config`` and ``tokenizer``, and holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import MMCLIPConfig
from .preprocess import ImageLike, preprocess_image
from .text import TextEncoder
from .vit import VisionTransformer

__all__ = ["ImageTextEncoding"]


class ImageTextEncoding:
    """``preprocess``, ``encode_image``, ``tokenize``, ``encode_text`` and ``encode``."""

    config: MMCLIPConfig
    tokenizer: Any
    visual: VisionTransformer
    text: TextEncoder
    image_proj: nn.Linear
    text_proj: nn.Linear

    def preprocess(self, image: ImageLike) -> Tensor:
        """One image (path, PIL, numpy, tensor in [0, 1]) → Tensor[C, S, S] model input."""
        v = self.config.vision
        return preprocess_image(image, v.image_size, v.in_chans, v.image_mean, v.image_std)

    def _image_batch(self, images: ImageLike | Sequence[ImageLike]) -> Tensor:
        device = self.visual.cls_token.device
        if isinstance(images, Tensor):
            batch = images[None] if images.ndim == 3 else images
            self.visual.check_images(batch)
            return batch.to(device)
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError("no image given")
            items = list(images)
        else:
            items = [images]
        return torch.stack([self.preprocess(x) for x in items]).to(device)

    def encode_image(
        self, images: ImageLike | Sequence[ImageLike], normalize: bool = True
    ) -> Tensor:
        """Image embeddings in the joint space.

        Args:
            images: a path, PIL image, numpy array, or a list of them (preprocessed with
                :meth:`preprocess`); or an already preprocessed tensor [C, S, S] /
                [N, C, S, S] (checked, not preprocessed again).
            normalize: L2-normalise.

        Returns:
            Tensor[N, E] float32. Gradients are kept; wrap in ``torch.no_grad()`` for inference.
        """
        x = self._image_batch(images)
        z = self.image_proj(self.visual(x).pooled).float()
        return F.normalize(z, dim=-1) if normalize else z

    def tokenize(self, texts: str | Sequence[str]) -> dict[str, Tensor]:
        """Tokenise with the model's tokenizer, truncating to ``text.max_length`` tokens.

        Returns:
            ``{"input_ids": Tensor[N, L], "attention_mask": Tensor[N, L]}`` on the model's device.
        """
        if self.tokenizer is None:
            raise RuntimeError(
                "this model has no tokenizer; pass tokenizer= to create_model/MMCLIPModel or "
                "load a saved model that has one"
            )
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            raise ValueError("no text given")
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise TypeError(f"texts must be strings; item {i} is {type(t).__name__}")
            if not t.strip():
                raise ValueError(f"text {i} is empty")
        enc = self.tokenizer(
            items,
            padding=True,
            truncation=True,
            max_length=self.config.text.max_length,
            return_tensors="pt",
        )
        device = self.visual.cls_token.device
        return {
            "input_ids": enc["input_ids"].to(device),
            "attention_mask": enc["attention_mask"].to(device),
        }

    def encode_text(
        self, texts: str | Sequence[str] | dict[str, Tensor], normalize: bool = True
    ) -> Tensor:
        """Text embeddings in the joint space.

        Args:
            texts: a string or a list of strings (tokenised by :meth:`tokenize`, truncated
                to ``text.max_length`` tokens), or a dict with ``input_ids`` and
                ``attention_mask`` tensors.
            normalize: L2-normalise.

        Returns:
            Tensor[N, E] float32.
        """
        enc = texts if isinstance(texts, dict) else self.tokenize(texts)
        pooled = self.text(enc["input_ids"], enc.get("attention_mask")).pooled
        z = self.text_proj(pooled).float()
        return F.normalize(z, dim=-1) if normalize else z

    def encode(
        self, image: ImageLike | Sequence[ImageLike], text: str | Sequence[str]
    ) -> tuple[Tensor, Tensor]:
        """``(encode_image(image), encode_text(text))``: Tensor[N_i, E] and Tensor[N_t, E]."""
        return self.encode_image(image), self.encode_text(text)
