"""Image preprocessing for inference: grey-scale, resize, centre-crop, normalise.

Training images come from the data pipeline already preprocessed; these helpers serve
:meth:`mmclip.models.MMCLIPModel.encode` and demos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ImageLike", "load_image", "preprocess_image", "to_unit_tensor"]

ImageLike = Any  # str | Path | PIL.Image.Image | numpy.ndarray | Tensor

_LUMA = (0.299, 0.587, 0.114)


def load_image(path: str | Path) -> Any:
    """Open an image file with Pillow (fully loaded; the file is closed on return)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for bad image bytes
        raise ValueError(f"image file {str(path)!r} cannot be decoded ({error})") from None


def _from_array(array: np.ndarray) -> Tensor:
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"image arrays must be integer or floating point; got {array.dtype}")
    if array.ndim == 3:
        if array.shape[-1] not in (1, 2, 3, 4):
            raise ValueError(
                f"image arrays must be channels-last [H, W, C]; got shape {array.shape}"
            )
        array = np.moveaxis(array, -1, 0)
    dtype = array.dtype
    tensor = torch.from_numpy(np.ascontiguousarray(array).astype(np.float32, copy=False))
    if np.issubdtype(dtype, np.integer):
        tensor = tensor / float(np.iinfo(dtype).max)
    return tensor


def to_unit_tensor(image: ImageLike) -> Tensor:
    """Any supported image → float32 Tensor[C, H, W] with intensities in [0, 1].

    Accepts a file path, a PIL image (any mode; 16-bit and float modes are scaled), a
    numpy array ([H, W] or channels-last [H, W, C]; integers scaled by their maximum,
    floats taken as [0, 1]) or a tensor ([H, W] or [C, H, W]; uint8 scaled by 255,
    floats taken as [0, 1]).
    """
    if isinstance(image, (str, Path)):
        image = load_image(image)
    if isinstance(image, Tensor):
        t = image.detach()
        if t.ndim == 2:
            t = t[None]
        if t.ndim != 3:
            raise ValueError(f"image tensors must be [H, W] or [C, H, W]; got {tuple(image.shape)}")
        if t.dtype == torch.uint8:
            return t.float() / 255.0
        if not t.is_floating_point():
            raise ValueError(f"image tensors must be uint8 or floating point; got {t.dtype}")
        return t.float()
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise ValueError(f"image arrays must be [H, W] or [H, W, C]; got shape {image.shape}")
        t = _from_array(image)
        return t[None] if t.ndim == 2 else t
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency of the encode helpers
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(image, Image.Image):
        from mmclip.data.transforms import HIGH_BIT_DEPTH_MODES, high_bit_depth_to_unit

        if image.mode in HIGH_BIT_DEPTH_MODES:  # the same scaling as the training loader
            return torch.from_numpy(high_bit_depth_to_unit(image))[None]
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        return to_unit_tensor(np.asarray(image))
    raise TypeError(
        "images must be file paths, PIL images, numpy arrays or tensors; "
        f"got {type(image).__name__}"
    )


def preprocess_image(
    image: ImageLike,
    image_size: int = 224,
    in_chans: int = 1,
    mean: float = 0.5,
    std: float = 0.5,
) -> Tensor:
    """Prepare one image for the model.

    Steps: intensities to [0, 1] (:func:`to_unit_tensor`); RGB(A) → grey by luminance
    (alpha dropped); shorter side resized to ``image_size`` (bilinear, antialiased);
    centre crop to ``image_size²``; ``(x - mean) / std``; the grey channel repeated when
    ``in_chans = 3``.

    Returns:
        Tensor[in_chans, image_size, image_size] float32.
    """
    t = to_unit_tensor(image)
    chans, height, width = t.shape
    if height == 0 or width == 0:
        raise ValueError(f"image is empty ({height}x{width})")
    if chans in (3, 4):
        luma = torch.tensor(_LUMA, dtype=t.dtype).view(3, 1, 1)
        t = (t[:3] * luma).sum(dim=0, keepdim=True)
    elif chans == 2:
        t = t[:1]  # grey + alpha
    elif chans != 1:
        raise ValueError(f"images must have 1, 3 or 4 channels; got {chans}")
    scale = image_size / min(height, width)
    new_h, new_w = max(image_size, round(height * scale)), max(image_size, round(width * scale))
    if (new_h, new_w) != (height, width):
        t = F.interpolate(
            t[None], size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
        )[0]
    top, left = (new_h - image_size) // 2, (new_w - image_size) // 2
    t = t[:, top : top + image_size, left : left + image_size]
    t = (t - mean) / std
    if in_chans != 1:
        t = t.expand(in_chans, -1, -1)
    return t.contiguous()
