"""Image transforms: one config, parameters drawn in numpy, two implementations.

Augmentation parameters for a batch are drawn from a seeded numpy generator by
:func:`sample_params` and then applied by either the DALI pipeline
(:mod:`mmclip.data.dali_pipeline`) or the PIL / numpy fallback here
(:class:`PilImagePipeline`). Both apply the same steps in the same order, so a run is
reproducible from ``(seed, epoch, step)`` whichever backend decodes:

1. decode grey-scale;
2. training: random-resized crop (area ``crop_scale``, aspect ``crop_ratio``, in coordinates
   normalised to the image) resized to ``image_size``²; evaluation: the shorter side resized
   to ``image_size`` and a centre crop (deterministic);
3. training: rotation by ``±rotation`` degrees (zero fill), optional horizontal flip
   (``hflip_prob``, off by default: laterality matters in reports);
4. ``x ← clip(contrast·(x − ½) + ½ + brightness, 0, 1) ** gamma`` on ``x ∈ [0, 1]``;
5. ``(x − mean) / std``.

Output: float32 ``[B, 1, S, S]``.
"""

from __future__ import annotations

import io
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

__all__ = [
    "HIGH_BIT_DEPTH_MODES",
    "AugmentParams",
    "PilImagePipeline",
    "TransformConfig",
    "bit_depth_scale",
    "high_bit_depth_to_unit",
    "reduce_high_bit_depth",
    "sample_params",
]

logger = logging.getLogger(__name__)


@dataclass
class TransformConfig:
    """Image transform settings (the same for the DALI and the PIL pipelines)."""

    image_size: int = 224
    train: bool = True
    crop_scale: tuple[float, float] = (0.6, 1.0)
    crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    rotation: float = 10.0
    brightness: float = 0.1
    contrast: float = 0.2
    gamma: tuple[float, float] = (0.8, 1.25)
    hflip_prob: float = 0.0
    mean: float = 0.5
    std: float = 0.25

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        if not 0.0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"bad crop_ratio {self.crop_ratio}")
        if not 0.0 < self.gamma[0] <= self.gamma[1]:
            raise ValueError(f"bad gamma range {self.gamma}")
        if not 0.0 <= self.hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob must be in [0, 1], got {self.hflip_prob}")
        if self.std <= 0.0:
            raise ValueError(f"std must be > 0, got {self.std}")


@dataclass
class AugmentParams:
    """Per-sample transform parameters of a batch of ``n`` images (all float32 but ``flip``).

    Attributes:
        anchor (array[n, 2]): crop origin (x, y) as a fraction of the image width / height.
        shape (array[n, 2]): crop size (w, h) as a fraction of the image width / height.
        angle (array[n]): rotation in degrees, counter-clockwise.
        brightness (array[n]), contrast (array[n]), gamma (array[n]): intensity transform.
        flip (array[n] int32): 1 = flip horizontally.
    """

    anchor: NDArray[np.float32]
    shape: NDArray[np.float32]
    angle: NDArray[np.float32]
    brightness: NDArray[np.float32]
    contrast: NDArray[np.float32]
    gamma: NDArray[np.float32]
    flip: NDArray[np.int32]

    def __len__(self) -> int:
        return int(self.angle.shape[0])

    def select(self, keep: list[int]) -> AugmentParams:
        """Parameters of the samples ``keep`` only."""
        idx = np.asarray(keep, dtype=np.int64)
        return AugmentParams(
            self.anchor[idx], self.shape[idx], self.angle[idx], self.brightness[idx],
            self.contrast[idx], self.gamma[idx], self.flip[idx],
        )  # fmt: skip


def sample_params(config: TransformConfig, n: int, rng: np.random.Generator) -> AugmentParams:
    """Draw the transform parameters of ``n`` images (identity-like ones for evaluation)."""
    f32 = np.float32
    if not config.train:
        return AugmentParams(
            anchor=np.zeros((n, 2), f32),
            shape=np.ones((n, 2), f32),
            angle=np.zeros(n, f32),
            brightness=np.zeros(n, f32),
            contrast=np.ones(n, f32),
            gamma=np.ones(n, f32),
            flip=np.zeros(n, np.int32),
        )
    area = rng.uniform(config.crop_scale[0], config.crop_scale[1], n)
    log_r = rng.uniform(math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1]), n)
    ratio = np.exp(log_r)
    w = np.clip(np.sqrt(area * ratio), 0.0, 1.0)
    h = np.clip(np.sqrt(area / ratio), 0.0, 1.0)
    ax = rng.uniform(0.0, 1.0, n) * (1.0 - w)
    ay = rng.uniform(0.0, 1.0, n) * (1.0 - h)
    log_g = rng.uniform(math.log(config.gamma[0]), math.log(config.gamma[1]), n)
    return AugmentParams(
        anchor=np.stack([ax, ay], axis=1).astype(f32),
        shape=np.stack([w, h], axis=1).astype(f32),
        angle=rng.uniform(-config.rotation, config.rotation, n).astype(f32),
        brightness=rng.uniform(-config.brightness, config.brightness, n).astype(f32),
        contrast=rng.uniform(1.0 - config.contrast, 1.0 + config.contrast, n).astype(f32),
        gamma=np.exp(log_g).astype(f32),
        flip=(rng.random(n) < config.hflip_prob).astype(np.int32),
    )


HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
"""PIL modes of 16-bit / 32-bit X-ray exports (PNG, TIFF)."""


def bit_depth_scale(max_value: float) -> float:
    """The full scale of an image whose largest pixel is ``max_value``: ``2^bits - 1`` for the
    fewest bits (at least 8) that hold it. A 12-bit X-ray stored in a 16-bit PNG (values up
    to 4,095) is scaled by 4,095, not 65,535 (dark) nor clipped at 255 (white)."""
    bits = max(8, math.ceil(math.log2(max(float(max_value), 1.0) + 1.0)))
    return float(2**bits - 1)


def high_bit_depth_to_unit(image: Image.Image) -> np.ndarray:
    """A 16-bit / 32-bit grey image → float32 [H, W] in [0, 1] (see :func:`bit_depth_scale`);
    float (``F``) images are taken as [0, 1] already."""
    if image.mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    array = np.asarray(image, dtype=np.int64)
    top = float(array.max()) if array.size else 0.0
    return (np.clip(array, 0, None).astype(np.float32) / bit_depth_scale(top)).clip(0.0, 1.0)


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    if image.mode in HIGH_BIT_DEPTH_MODES:
        # convert("L") would clip at 255: scale by the image's bit depth, then 8 bits
        unit = high_bit_depth_to_unit(image)
        image = Image.fromarray(np.round(unit * 255.0).astype(np.uint8), mode="L")
    return image


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")


def _may_be_high_bit_depth(data: bytes) -> bool:
    """Cheap header test: a 16-bit grey PNG (IHDR bit depth 16, colour type 0) or a TIFF."""
    if data.startswith(_PNG_SIGNATURE):
        return len(data) > 25 and data[24] == 16 and data[25] == 0
    return data.startswith(_TIFF_SIGNATURES)


def reduce_high_bit_depth(data: bytes) -> bytes:
    """Encoded image bytes for a decoder that only reads 8 bits faithfully (DALI).

    A 16-bit / 32-bit grey image (PIL modes :data:`HIGH_BIT_DEPTH_MODES`) is scaled by its bit
    depth exactly as the PIL pipeline scales it (:func:`high_bit_depth_to_unit`, then 8 bits)
    and returned as an 8-bit grey PNG; DALI alone divides a 16-bit PNG by 65,535, so a 12-bit
    X-ray would come out nearly black. Any other bytes (JPEG, 8-bit PNG, undecodable data,
    whose error the decoder reports) are returned unchanged; only the header is read for them.
    """
    if not _may_be_high_bit_depth(data):
        return data
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode not in HIGH_BIT_DEPTH_MODES:
                return data
        out = io.BytesIO()
        _open(data).save(out, format="PNG", compress_level=1)
    except Exception:  # undecodable: the decoder names the file
        return data
    return out.getvalue()


def transform_one(data: bytes, config: TransformConfig, p: AugmentParams, i: int) -> np.ndarray:
    """Decode and transform one encoded image → float32 [S, S] (PIL / numpy).

    Raises whatever PIL raises for undecodable bytes; the loader turns that into a
    :class:`~mmclip.data.records.DataError` naming the file.
    """
    size = config.image_size
    image = _open(data)
    width, height = image.size
    if config.train:
        cw, ch = float(p.shape[i, 0]) * width, float(p.shape[i, 1]) * height
        # JPEG DCT-domain downscaling: decode at the smallest scale that keeps the crop >= S.
        scale = max(size / max(cw, 1.0), size / max(ch, 1.0))
        image.draft("L", (math.ceil(width * scale), math.ceil(height * scale)))
        image = image.convert("L")
        sx, sy = image.size[0] / width, image.size[1] / height
        x0, y0 = float(p.anchor[i, 0]) * width * sx, float(p.anchor[i, 1]) * height * sy
        box = (x0, y0, x0 + cw * sx, y0 + ch * sy)
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
        angle = float(p.angle[i])
        if angle != 0.0:
            image = image.rotate(angle, Image.Resampling.BILINEAR, fillcolor=0)
        if p.flip[i]:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    else:
        scale = size / min(width, height)
        image.draft("L", (math.ceil(width * scale), math.ceil(height * scale)))
        image = image.convert("L")
        w2, h2 = image.size
        side = min(w2, h2)
        left, top = (w2 - side) / 2.0, (h2 - side) / 2.0
        box = (left, top, left + side, top + side)
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
    x = np.asarray(image, dtype=np.float32) * (1.0 / 255.0)
    if config.train:
        x = (x - 0.5) * float(p.contrast[i]) + (0.5 + float(p.brightness[i]))
        np.clip(x, 0.0, 1.0, out=x)
        g = float(p.gamma[i])
        if g != 1.0:
            np.power(x, g, out=x)
    x -= config.mean
    x *= 1.0 / config.std
    return x


class PilImagePipeline:
    """The PIL / numpy implementation of the transforms (fallback when DALI is absent).

    ``__call__(encoded, params)`` → float32 tensor [B, 1, S, S] on the CPU. Decoding runs in
    ``num_threads`` threads (PIL releases the GIL while decoding and resizing).
    """

    def __init__(self, config: TransformConfig, num_threads: int = 1) -> None:
        self.config = config
        self.num_threads = max(1, num_threads)
        self._pool = ThreadPoolExecutor(self.num_threads) if self.num_threads > 1 else None

    def decode_one(self, data: bytes, params: AugmentParams, i: int) -> np.ndarray:
        """One image → float32 [S, S]; raises on undecodable data."""
        return transform_one(data, self.config, params, i)

    def __call__(self, encoded: list[bytes], params: AugmentParams) -> torch.Tensor:
        size = self.config.image_size
        out = np.empty((len(encoded), 1, size, size), dtype=np.float32)

        def work(i: int) -> None:
            out[i, 0] = transform_one(encoded[i], self.config, params, i)

        if self._pool is None:
            for i in range(len(encoded)):
                work(i)
        else:
            list(self._pool.map(work, range(len(encoded))))
        return torch.from_numpy(out)
