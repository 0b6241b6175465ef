"""16-bit X-ray exports: the training / evaluation loader and encode_image see one image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from mmclip.data.transforms import TransformConfig, bit_depth_scale, sample_params, transform_one
from mmclip.models.preprocess import to_unit_tensor


def _png_12bit(size: int = 64) -> tuple[bytes, np.ndarray]:
    ramp = np.linspace(0, 4095, size * size).reshape(size, size).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")  # a 16-bit grey PNG
    return buffer.getvalue(), ramp


def test_bit_depth_scale_is_the_smallest_full_scale_that_holds_the_maximum() -> None:
    assert bit_depth_scale(200) == 255.0
    assert bit_depth_scale(4095) == 4095.0
    assert bit_depth_scale(3000) == 4095.0
    assert bit_depth_scale(40000) == 65535.0
    assert bit_depth_scale(0) == 255.0


def test_a_12_bit_png_is_scaled_not_saturated_by_the_loader_transform() -> None:
    data, ramp = _png_12bit()
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    config = TransformConfig(image_size=64, train=False, mean=0.0, std=1.0)
    params = sample_params(config, 1, np.random.default_rng(0))
    x = transform_one(data, config, params, 0)
    expected = ramp.astype(np.float32) / 4095.0
    assert (x >= 0.999).mean() < 0.01  # convert("L") made 94 % of such an image white
    np.testing.assert_allclose(x, expected, atol=2.5 / 255)


def test_the_loader_and_encode_image_preprocessing_agree_on_a_16_bit_image() -> None:
    data, _ = _png_12bit()
    config = TransformConfig(image_size=64, train=False, mean=0.0, std=1.0)
    params = sample_params(config, 1, np.random.default_rng(0))
    loader_view = torch.from_numpy(transform_one(data, config, params, 0))
    inference_view = to_unit_tensor(Image.open(io.BytesIO(data)))[0]
    torch.testing.assert_close(loader_view, inference_view, atol=2.5 / 255, rtol=0)


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_both_16_bit_modes_scale_the_same(mode: str) -> None:
    _, ramp = _png_12bit(16)
    image = Image.fromarray(ramp.astype(np.int32 if mode == "I" else np.uint16))
    if mode == "I":
        image = image.convert("I")
    assert float(to_unit_tensor(image).max()) == pytest.approx(1.0)
