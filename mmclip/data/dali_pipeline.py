"""The NVIDIA DALI implementation of :mod:`mmclip.data.transforms`.

Encoded JPEG / PNG bytes and the per-sample parameters drawn by
:func:`~mmclip.data.transforms.sample_params` are fed through ``external_source``; the graph
decodes grey-scale (``device="mixed"``: nvJPEG on the GPU; ``device="cpu"`` without one),
crops, resizes, rotates, flips and applies the intensity transform. Output: float32
``[B, 1, S, S]`` torch tensor on the GPU (mixed) or the CPU.

A decode failure invalidates a DALI pipeline; :class:`DaliImagePipeline` then rebuilds it and
re-raises, so the loader can decode the failed batch sample by sample and name the bad file.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np
import torch

from mmclip.data.transforms import AugmentParams, TransformConfig

__all__ = ["DaliImagePipeline", "dali_available"]

logger = logging.getLogger(__name__)


@functools.cache
def dali_available() -> bool:
    """Whether ``nvidia.dali`` imports."""
    try:
        import nvidia.dali  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA install raising something else
        return False
    return True


_INPUTS = ("encoded", "anchor", "shape", "angle", "brightness", "contrast", "gamma", "flip")


def _build(
    config: TransformConfig, batch_size: int, num_threads: int, device_id: int | None, gpu: bool
) -> Any:
    import nvidia.dali.fn as fn
    import nvidia.dali.math as dmath
    import nvidia.dali.types as types
    from nvidia.dali import pipeline_def

    size = config.image_size

    @pipeline_def(
        batch_size=batch_size,
        num_threads=num_threads,
        device_id=device_id,
        prefetch_queue_depth=1,
        exec_dynamic=True,
    )
    def graph():
        encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
        anchor = fn.external_source(name="anchor", dtype=types.FLOAT, ndim=1)
        shape = fn.external_source(name="shape", dtype=types.FLOAT, ndim=1)
        angle = fn.external_source(name="angle", dtype=types.FLOAT, ndim=0)
        brightness = fn.external_source(name="brightness", dtype=types.FLOAT, ndim=0)
        contrast = fn.external_source(name="contrast", dtype=types.FLOAT, ndim=0)
        gamma = fn.external_source(name="gamma", dtype=types.FLOAT, ndim=0)
        flip = fn.external_source(name="flip", dtype=types.INT32, ndim=0)
        decode_device = "mixed" if gpu else "cpu"
        if config.train:
            image = fn.decoders.image_slice(
                encoded,
                anchor,
                shape,
                device=decode_device,
                output_type=types.GRAY,
                normalized_anchor=True,
                normalized_shape=True,
                axis_names="WH",
            )
            image = fn.resize(image, size=(size, size), antialias=True)
            image = fn.rotate(image, angle=angle, keep_size=True, fill_value=0)
            image = fn.flip(image, horizontal=flip)
        else:
            image = fn.decoders.image(encoded, device=decode_device, output_type=types.GRAY)
            image = fn.resize(image, resize_shorter=size, antialias=True)
            image = fn.crop(image, crop=(size, size), crop_pos_x=0.5, crop_pos_y=0.5)
        x = fn.cast(image, dtype=types.FLOAT) * (1.0 / 255.0)
        if config.train:
            if gpu:
                contrast, brightness, gamma = contrast.gpu(), brightness.gpu(), gamma.gpu()
            x = dmath.clamp(contrast * (x - 0.5) + (brightness + 0.5), 0.0, 1.0)
            x = dmath.pow(x, gamma)
        x = (x - config.mean) * (1.0 / config.std)
        return fn.transpose(x, perm=[2, 0, 1])

    pipe = graph()
    pipe.build()
    return pipe


class DaliImagePipeline:
    """Decode + augment with DALI.

    Args:
        config: the transforms.
        batch_size: largest batch fed (smaller batches are fine).
        device: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"`` (mixed decoding on that GPU).
        num_threads: DALI CPU worker threads.
    """

    def __init__(
        self,
        config: TransformConfig,
        batch_size: int,
        device: str | torch.device = "cpu",
        num_threads: int = 1,
    ) -> None:
        if not dali_available():
            raise RuntimeError("nvidia.dali is not installed (pip install nvidia-dali-cuda130)")
        self.config = config
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.gpu = self.device.type == "cuda"
        self.device_id = (self.device.index or 0) if self.gpu else None
        self.num_threads = max(1, num_threads)
        self._pipe = self._new()

    def _new(self) -> Any:
        return _build(self.config, self.batch_size, self.num_threads, self.device_id, self.gpu)

    def __call__(self, encoded: list[bytes], params: AugmentParams) -> torch.Tensor:
        """Encoded images (``len(encoded) <= batch_size``) → float32 [B, 1, S, S]."""
        n = len(encoded)
        if n == 0:
            size = self.config.image_size
            return torch.empty((0, 1, size, size), device=self.device)
        if n > self.batch_size:
            raise ValueError(f"batch of {n} exceeds the pipeline batch size {self.batch_size}")
        pipe = self._pipe
        feeds = {
            "encoded": [np.frombuffer(b, dtype=np.uint8) for b in encoded],
            "anchor": list(params.anchor),
            "shape": list(params.shape),
            "angle": list(params.angle),
            "brightness": list(params.brightness),
            "contrast": list(params.contrast),
            "gamma": list(params.gamma),
            "flip": list(params.flip),
        }
        try:
            for name in _INPUTS if self.config.train else ("encoded",):
                pipe.feed_input(name, feeds[name])
            (out,) = pipe.run()
        except Exception:
            # The pipeline is invalid after a failure: build a fresh one for the next batch.
            self._pipe = self._new()
            raise
        return _to_torch(out, self.device)


def _to_torch(out: Any, device: torch.device) -> torch.Tensor:
    from nvidia.dali.plugin.pytorch import feed_ndarray

    tensor = out.as_tensor()
    result = torch.empty(tuple(tensor.shape()), dtype=torch.float32, device=device)
    if device.type == "cuda":
        feed_ndarray(tensor, result, cuda_stream=torch.cuda.current_stream(device))
        return result
    feed_ndarray(tensor, result)
    return result
