"""The image input contract of inference: any image form → the model's input tensor.

Every entry point that takes images from a user (:meth:`MMCLIPModel.encode_image`,
``encode``, ``zeroshot``, ``mmclip encode --images``, ``mmclip zeroshot --images``) calls
:func:`to_model_images`, so one image gives one embedding whatever form it comes in.

**Forms.** One image is

- a file path (``str`` / ``Path``): PNG, JPEG, TIFF… (8 or 16 bit, read with Pillow) or
  DICOM (``.dcm`` / ``.dicom`` or the ``DICM`` magic; read with pydicom);
- a ``PIL.Image`` of any mode, or a ``pydicom.Dataset``;
- a numpy array or a torch tensor: ``[H, W]``, or 3-D with 1–4 channels: channels-first
  ``[C, H, W]`` or channels-last ``[H, W, C]`` (a tensor is read channels-first when its
  first axis has 1–4 entries, an array channels-last when its last axis has).

Several images are a list / tuple of these, or a 4-D array / tensor ``[N, C, H, W]``
(numpy: ``[N, H, W, C]`` also) whose every item along the first axis is one image.

**Value ranges** (:func:`to_unit_tensor`):

- floating point (numpy, torch, PIL ``F``): intensities in [0, 1]; values outside raise
  ``ValueError`` (divide 8-bit values by 255 first);
- ``uint8``: divided by 255;
- any other integer type (``uint16``, ``int32``…, PIL ``I;16`` / ``I``): divided by
  ``2^b - 1``, ``b`` the fewest bits (at least 8) that hold the image's maximum, so a 12-bit
  X-ray stored in 16 bits is scaled by 4,095 — the scaling of the training loader
  (:func:`mmclip.data.transforms.bit_depth_scale`); negative values raise ``ValueError``;
- DICOM: modality rescale, VOI window, min-max to [0, 1], MONOCHROME1 inverted
  (:func:`mmclip.data.sources.dicom.dicom_to_unit`, as the DICOM sources' cache);
- booleans and complex numbers raise ``ValueError``.

**Channels.** 1 channel is grey; 2 is grey + alpha (alpha dropped); 3 or 4 are RGB(A),
turned grey by luminance ``0.299 R + 0.587 G + 0.114 B`` (a grey image stored as RGB stays
the same grey).

**Geometry and normalisation** (:func:`preprocess_image`): the shorter side is resized to
``vision.image_size`` (bilinear, antialiased), the centre square cropped, then
``(x - vision.image_mean) / vision.image_std``, the grey channel repeated when
``vision.in_chans = 3``.

An already preprocessed batch (model size, normalised, as the data loader makes) skips all
of this through :meth:`MMCLIPModel.encode_pixels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.records import DICOM_SUFFIXES  # read as DICOM (so is any file with DICM at 128)

__all__ = [
    "DICOM_SUFFIXES",
    "ImageLike",
    "is_dicom_file",
    "load_image",
    "load_image_input",
    "preprocess_image",
    "to_grey",
    "to_model_images",
    "to_unit_tensor",
]

ImageLike = Any  # str | Path | PIL.Image.Image | numpy.ndarray | Tensor | pydicom.Dataset

_LUMA = (0.299, 0.587, 0.114)
_FLOAT_SLACK = 1e-4  # rounding of a [0, 1] image computed in float


def is_dicom_file(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM file: a DICOM suffix or the ``DICM`` magic at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def load_image(path: str | Path) -> Any:
    """Open a non-DICOM image file with Pillow (fully loaded; the file is closed on return).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a decodable image (the message names it).
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for bad image bytes
        hint = ""
        if path.suffix.lower() not in DICOM_SUFFIXES:
            hint = " (a DICOM file without the DICM preamble needs a .dcm suffix)"
        raise ValueError(f"image file {str(path)!r} cannot be decoded ({error}){hint}") from None


def _read_dicom(source: Any) -> Tensor:
    from mmclip.data.sources.dicom import dicom_to_unit

    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise FileNotFoundError(f"image file {str(source)!r} does not exist")
    return torch.from_numpy(dicom_to_unit(source))[None]


def _integer_to_unit(values: np.ndarray | Tensor, what: str) -> Tensor:
    """An integer image → float32 in [0, 1] (uint8 / 255; others by their bit depth)."""
    from mmclip.data.transforms import bit_depth_scale

    if isinstance(values, np.ndarray):
        values = values if values.dtype == np.uint8 else values.astype(np.int64, copy=False)
        t = torch.from_numpy(values)
    else:
        t = values
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    t = t.to(torch.int64)
    if t.numel() and int(t.min()) < 0:
        raise ValueError(
            f"{what} has negative values ({int(t.min())}); integer images must be >= 0 "
            "(or give floats in [0, 1])"
        )
    top = float(t.max()) if t.numel() else 0.0
    return (t.double() / bit_depth_scale(top)).float()


def _float_to_unit(t: Tensor, what: str) -> Tensor:
    t = t.float()
    if t.numel():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{what} has NaN or infinite values")
        lo, hi = float(t.min()), float(t.max())
        if lo < -_FLOAT_SLACK or hi > 1.0 + _FLOAT_SLACK:
            raise ValueError(
                f"{what} is floating point with values in [{lo:.4g}, {hi:.4g}]; float images "
                "must hold intensities in [0, 1] (divide 8-bit values by 255, or pass uint8 / "
                "uint16 integers). An already normalised model input goes to "
                "model.encode_pixels"
            )
    return t.clamp(0.0, 1.0)


def _channels_first(t: Tensor, channels_last_first: bool, what: str) -> Tensor:
    """[H, W] → [1, H, W]; 3-D → [C, H, W] with C in 1..4 (see the module docstring)."""
    if t.ndim == 2:
        return t[None]
    if t.ndim != 3:
        raise ValueError(
            f"{what} must be [H, W], [C, H, W] or [H, W, C] (or a 4-D batch where a batch is "
            f"allowed); got shape {tuple(t.shape)}"
        )
    first, last = 1 <= t.shape[0] <= 4, 1 <= t.shape[-1] <= 4
    if channels_last_first and last:
        return t.permute(2, 0, 1)
    if first:
        return t
    if last:
        return t.permute(2, 0, 1)
    raise ValueError(
        f"{what} has shape {tuple(t.shape)}: no axis of 1-4 channels (grey, grey + alpha, "
        "RGB, RGBA) at either end"
    )


def _pil_to_unit(image: Any) -> Tensor:
    from mmclip.data.transforms import HIGH_BIT_DEPTH_MODES

    what = f"PIL image (mode {image.mode})"
    if image.mode == "F":
        return _float_to_unit(torch.from_numpy(np.array(image, dtype=np.float32))[None], what)
    if image.mode in HIGH_BIT_DEPTH_MODES:  # the same scaling as the training loader
        return _integer_to_unit(np.array(image, dtype=np.int64), what)[None]
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    unit = _integer_to_unit(np.array(image), what)  # uint8 [H, W] or [H, W, C]
    return unit.permute(2, 0, 1) if unit.ndim == 3 else unit[None]


def to_unit_tensor(image: ImageLike) -> Tensor:
    """One image in any supported form → float32 Tensor[C, H, W] in [0, 1], C in 1..4.

    The forms and value-range rules are those of the module docstring
    (:mod:`mmclip.models.preprocess`); channels are kept (see :func:`to_grey`).

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: an undecodable file, an unsupported dtype, floats outside [0, 1],
            negative integers or a shape that is not one image.
        TypeError: an object of another type.
    """
    if isinstance(image, (str, Path)):
        if is_dicom_file(image):
            return _read_dicom(image)
        image = load_image(image)
    if isinstance(image, Tensor):
        what = f"image tensor {tuple(image.shape)} {image.dtype}"
        t = image.detach().cpu()
        if t.dtype == torch.bool or t.is_complex():
            raise ValueError(f"{what}: image tensors must be integer or floating point")
        t = _channels_first(t, channels_last_first=False, what=what)
        return _float_to_unit(t, what) if t.is_floating_point() else _integer_to_unit(t, what)
    if isinstance(image, np.ndarray):
        what = f"image array {image.shape} {image.dtype}"
        if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
            raise ValueError(f"{what}: image arrays must be integer or floating point")
        if np.issubdtype(image.dtype, np.integer) and image.dtype != np.uint8:
            image = image.astype(np.int64)  # any width, byte order or signedness
        elif image.dtype.byteorder not in ("=", "|"):
            image = image.astype(image.dtype.newbyteorder("="))
        t = torch.from_numpy(np.ascontiguousarray(image))
        t = _channels_first(t, channels_last_first=True, what=what)
        return _float_to_unit(t, what) if t.is_floating_point() else _integer_to_unit(t, what)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(image, Image.Image):
        return _pil_to_unit(image)
    if type(image).__name__ in ("Dataset", "FileDataset") and hasattr(image, "pixel_array"):
        return _read_dicom(image)  # a pydicom dataset
    raise TypeError(
        "images must be file paths, PIL images, pydicom datasets, numpy arrays or tensors; "
        f"got {type(image).__name__}"
    )


def to_grey(image: Tensor) -> Tensor:
    """Tensor[C, H, W] in [0, 1] (C in 1..4) → grey Tensor[1, H, W]: luminance of RGB(A)
    ``0.299 R + 0.587 G + 0.114 B``, alpha dropped."""
    chans = image.shape[0]
    if chans == 1:
        return image
    if chans == 2:
        return image[:1]
    if chans in (3, 4):
        luma = torch.tensor(_LUMA, dtype=image.dtype).view(3, 1, 1)
        return (image[:3] * luma).sum(dim=0, keepdim=True).clamp(0.0, 1.0)
    raise ValueError(f"images must have 1, 2, 3 or 4 channels; got {chans}")


def load_image_input(image: ImageLike) -> Tensor:
    """One image in any supported form → grey float32 Tensor[1, H, W] in [0, 1].

    :func:`to_unit_tensor` then :func:`to_grey`: the value-range and channel rules of the
    module docstring, before any resizing.
    """
    return to_grey(to_unit_tensor(image))


def preprocess_image(
    image: ImageLike,
    image_size: int = 224,
    in_chans: int = 1,
    mean: float = 0.5,
    std: float = 0.5,
) -> Tensor:
    """Prepare one image for the model.

    Steps: :func:`load_image_input` (intensities to [0, 1], grey); shorter side resized to
    ``image_size`` (bilinear, antialiased); centre crop to ``image_size²``;
    ``(x - mean) / std``; the grey channel repeated when ``in_chans = 3``.

    Returns:
        Tensor[in_chans, image_size, image_size] float32.
    """
    t = load_image_input(image)
    _, height, width = t.shape
    if height == 0 or width == 0:
        raise ValueError(f"image is empty ({height}x{width})")
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


def _items(images: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """The single images of one image, a list / tuple of them, or a 4-D batch."""
    if isinstance(images, (list, tuple)):
        items = list(images)
        if not items:
            raise ValueError("no image given (an empty list)")
        for i, item in enumerate(items):
            if isinstance(item, (Tensor, np.ndarray)) and item.ndim == 4:
                raise ValueError(
                    f"list item {i} is a 4-D batch {tuple(item.shape)}; a list holds single "
                    "images (pass the batch itself, not inside a list)"
                )
        return items
    if isinstance(images, (Tensor, np.ndarray)) and images.ndim == 4:
        if images.shape[0] == 0:
            raise ValueError("no image given (an empty batch)")
        return list(images)
    return [images]


def to_model_images(
    images: ImageLike | Sequence[ImageLike],
    image_size: int = 224,
    in_chans: int = 1,
    mean: float = 0.5,
    std: float = 0.5,
) -> Tensor:
    """One image, a list of images or a 4-D batch → the model's input Tensor[N, C, S, S].

    The one function behind every image entry point: each image goes through
    :func:`preprocess_image` under the rules of the module docstring, whatever its form.

    Args:
        images: see the module docstring (:mod:`mmclip.models.preprocess`).
        image_size, in_chans, mean, std: the model's ``vision`` config.

    Returns:
        Tensor[N, in_chans, image_size, image_size] float32 on the CPU.
    """
    return torch.stack(
        [preprocess_image(x, image_size, in_chans, mean, std) for x in _items(images)]
    )
