"""16-bit X-ray exports: the training / evaluation loader and encode_image see one image."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from mmclip.data import LoaderConfig, XrayLoader, XrayRecord, dali_available
from mmclip.data.transforms import (
    TransformConfig,
    bit_depth_scale,
    reduce_high_bit_depth,
    sample_params,
    transform_one,
)
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


BACKENDS = ["pil", pytest.param("dali", marks=pytest.mark.skipif(
    not dali_available(), reason="nvidia.dali not installed"))]  # fmt: skip


def _write_12bit_png(tmp_path: Path, size: int = 64) -> tuple[Path, np.ndarray]:
    data, ramp = _png_12bit(size)
    path = tmp_path / "xray16.png"
    path.write_bytes(data)
    return path, ramp.astype(np.float32) / 4095.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_loader_reads_a_12_bit_png_file_scaled_on_every_backend(
    tmp_path: Path, backend: str
) -> None:
    path, expected = _write_12bit_png(tmp_path)
    transform = TransformConfig(image_size=64, train=False, mean=0.0, std=1.0)
    config = LoaderConfig(batch_size=2, backend=backend, transform=transform)  # type: ignore[arg-type]
    loader = XrayLoader([XrayRecord(path, None, source="t")], config)
    (batch,) = list(loader)
    assert batch.images is not None
    x = batch.images[0, 0].numpy()
    # before: PIL's convert("L") left 94 % of the pixels white; DALI divided by 65,535 (black)
    assert (x >= 0.999).mean() < 0.01 and float(x.max()) > 0.99
    np.testing.assert_allclose(x, expected, atol=2.5 / 255)


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluation_load_images_scales_a_12_bit_png_like_encode_image(
    tmp_path: Path, backend: str
) -> None:
    from mmclip.eval.embed import load_images
    from mmclip.models.preprocess import preprocess_image

    path, _ = _write_12bit_png(tmp_path)
    vision = SimpleNamespace(image_size=64, image_mean=0.5, image_std=0.25, in_chans=1)
    model = SimpleNamespace(config=SimpleNamespace(vision=vision))
    images = load_images(model, [XrayRecord(path, None, source="t")], backend=backend)
    inference = preprocess_image(path, image_size=64, in_chans=1, mean=0.5, std=0.25)
    assert images.shape == (1, 1, 64, 64)
    torch.testing.assert_close(images[0], inference, atol=2.5 / 255 / 0.25, rtol=0)


def test_reduce_high_bit_depth_leaves_8_bit_and_undecodable_bytes_alone() -> None:
    data, ramp = _png_12bit(16)
    reduced = reduce_high_bit_depth(data)
    image = Image.open(io.BytesIO(reduced))
    assert image.mode == "L"
    np.testing.assert_array_equal(
        np.asarray(image), np.round(ramp.astype(np.float32) / 4095.0 * 255.0).astype(np.uint8)
    )
    tiff = io.BytesIO()
    Image.fromarray(ramp).save(tiff, format="TIFF")  # 16-bit TIFF: reduced the same way
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(reduce_high_bit_depth(tiff.getvalue())))),
        np.asarray(image),
    )
    buffer = io.BytesIO()
    Image.fromarray((ramp >> 4).astype(np.uint8)).save(buffer, format="PNG")
    for other in (buffer.getvalue(), data[:40], b"\xff\xd8 not a jpeg"):
        assert reduce_high_bit_depth(other) is other
