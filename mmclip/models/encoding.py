"""The inference API of :class:`~mmclip.models.MMCLIPModel`: images and texts → joint space.

:class:`ImageTextEncoding` is a mixin of the model (as Hugging Face's ``ModuleUtilsMixin``):
it reads the model's towers (``visual``, ``text``), projections (``image_proj``,
``text_proj``), ``config`` and ``tokenizer``, and holds no state of its own.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .config import MMCLIPConfig
from .preprocess import ImageLike, preprocess_image, to_model_images
from .text import TextEncoder
from .vit import VisionTransformer

__all__ = ["UNTRAINED_MESSAGE", "ImageTextEncoding", "UntrainedModelWarning"]

UNTRAINED_MESSAGE = (
    "this MMCLIPModel has random weights (it was built without loading any), so its "
    "embeddings and zero-shot scores mean nothing. Train and register a small model with "
    "`mmclip demo` (minutes on a CPU), then load it with "
    "mmclip.create_model('mmclip-tiny', pretrained='demo'); or load a directory written by "
    "save_pretrained / `mmclip pretrain` with MMCLIPModel.from_pretrained(path). "
    "mmclip.list_pretrained() lists the registered models."
)


class UntrainedModelWarning(UserWarning):
    """An inference call on a model whose weights are still the random initialisation."""


def _user_stacklevel() -> int:
    """The ``stacklevel`` of a warning issued here that names the first frame outside mmclip."""
    package = str(Path(__file__).resolve().parent.parent)
    frame, level = sys._getframe(1), 1  # the frame that calls warnings.warn
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


class ImageTextEncoding:
    """``preprocess``, ``to_model_images``, ``encode_image``, ``encode_pixels``, ``tokenize``,
    ``encode_text``, ``encode`` and ``zeroshot``."""

    config: MMCLIPConfig
    tokenizer: Any
    visual: VisionTransformer
    text: TextEncoder
    image_proj: nn.Linear
    text_proj: nn.Linear

    def preprocess(self, image: ImageLike) -> Tensor:
        """One image in any supported form → Tensor[C, S, S] model input.

        The input contract of :mod:`mmclip.models.preprocess` (paths incl. DICOM, PIL,
        numpy, tensors; 1-4 channels; floats in [0, 1], integers by their bit depth).
        """
        v = self.config.vision
        return preprocess_image(image, v.image_size, v.in_chans, v.image_mean, v.image_std)

    def to_model_images(self, images: ImageLike | Sequence[ImageLike]) -> Tensor:
        """One image, a list of them or a 4-D batch → Tensor[N, C, S, S] on the model's device
        (:func:`mmclip.models.preprocess.to_model_images` with this model's vision config)."""
        v = self.config.vision
        batch = to_model_images(images, v.image_size, v.in_chans, v.image_mean, v.image_std)
        return batch.to(self.visual.cls_token.device)

    def encode_image(
        self, images: ImageLike | Sequence[ImageLike], normalize: bool = True
    ) -> Tensor:
        """Image embeddings in the joint space.

        Args:
            images: one image, a list / tuple of images or a 4-D batch ``[N, C, H, W]``, each
                image a file path (PNG, JPEG, 16-bit PNG, DICOM), a PIL image, a pydicom
                dataset, a numpy array or a tensor with 1-4 channels; floats in [0, 1],
                integers scaled by their bit depth (``uint8`` / 255). Every form goes through
                :meth:`to_model_images` (grey, resize, centre crop, normalise), so the same
                image gives the same embedding in any form; the rules are in
                :mod:`mmclip.models.preprocess`. For a batch the data loader already
                normalised, use :meth:`encode_pixels`.
            normalize: L2-normalise.

        Returns:
            Tensor[N, E] float32. Gradients are kept; wrap in ``torch.no_grad()`` for inference.
        """
        self._warn_if_untrained()
        return self.encode_pixels(self.to_model_images(images), normalize=normalize)

    def encode_pixels(self, pixels: Tensor, normalize: bool = True) -> Tensor:
        """Image embeddings of an already preprocessed batch (no preprocessing here).

        Args:
            pixels (Tensor[N, C, S, S] | Tensor[C, S, S]): model-sized, normalised images
                (``(x - vision.image_mean) / vision.image_std``), as the data loader and
                :meth:`to_model_images` make them; checked, not changed.
            normalize: L2-normalise.

        Returns:
            Tensor[N, E] float32.
        """
        batch = pixels[None] if pixels.ndim == 3 else pixels
        self.visual.check_images(batch)
        z = self.image_proj(self.visual(batch.to(self.visual.cls_token.device)).pooled).float()
        return F.normalize(z, dim=-1) if normalize else z

    def _warn_if_untrained(self) -> None:
        """Warn once per model when its weights are the random initialisation.

        ``weights_source`` (set by :class:`~mmclip.models.pretrained.PretrainedModelIO` when
        weights are loaded, and by the trainer) is None for a model built and never loaded.
        """
        if getattr(self, "weights_source", None) is not None:
            return
        if getattr(self, "_warned_untrained", False):
            return
        self._warned_untrained = True
        warnings.warn(UntrainedModelWarning(UNTRAINED_MESSAGE), stacklevel=_user_stacklevel())

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
        self._warn_if_untrained()
        enc = texts if isinstance(texts, dict) else self.tokenize(texts)
        pooled = self.text(enc["input_ids"], enc.get("attention_mask")).pooled
        z = self.text_proj(pooled).float()
        return F.normalize(z, dim=-1) if normalize else z

    def zeroshot(
        self,
        images: ImageLike | Sequence[ImageLike],
        findings: Sequence[str] | None = None,
        *,
        prompts: Sequence[str] | None = None,
        mode: str = "multilabel",
    ) -> Any:
        """Zero-shot probabilities of the images per finding (or over your own ``prompts``):
        :func:`mmclip.eval.predict.zeroshot` of this model (which it puts in eval mode).

        Returns:
            :class:`~mmclip.eval.predict.ImageTextTable`, images × findings; ``print`` it or
            call ``to_dict()``.
        """
        from mmclip.eval.predict import zeroshot

        return zeroshot(self, images, findings, prompts=prompts, mode=mode)

    def encode(
        self, image: ImageLike | Sequence[ImageLike], text: str | Sequence[str]
    ) -> tuple[Tensor, Tensor]:
        """``(encode_image(image), encode_text(text))``: Tensor[N_i, E] and Tensor[N_t, E]."""
        return self.encode_image(image), self.encode_text(text)
