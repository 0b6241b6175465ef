"""Data pipeline speed: ``pytest bench/test_data.py --benchmark-only``.

* the synthetic generator (images / s at 256 px, one core; goal >= 200);
* training decode + augmentation of 1024 x 1024 grey-scale JPEGs to 224 px: DALI on the CPU
  (one thread), the PIL fallback (one thread), and a plain PIL + ``torch.utils.data``
  DataLoader baseline measured in the same run; DALI ``mixed`` decoding on a GPU when one is
  present (goal >= 5,000 images / s at batch 128).

Each test stores its rate in ``benchmark.extra_info["images_per_s"]`` and logs it.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmclip.data import TransformConfig, dali_available, sample_params, synthetic
from mmclip.data.transforms import PilImagePipeline

logger = logging.getLogger(__name__)

N_IMAGES = 64
BATCH = 32


@pytest.fixture(scope="module")
def jpeg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_IMAGES 1024 x 1024 grey-scale JPEGs (synthetic radiographs, upscaled)."""
    root = tmp_path_factory.mktemp("jpeg1024")
    for i, sample in enumerate(synthetic.generate(N_IMAGES, size=256, seed=0)):
        image = Image.fromarray(sample.image).resize((1024, 1024), Image.Resampling.BILINEAR)
        image.save(root / f"{i:04d}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def encoded(jpeg_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(jpeg_dir.glob("*.jpg"))]


def _rate(benchmark, n: int, name: str) -> None:
    rate = n / benchmark.stats.stats.mean
    benchmark.extra_info["images_per_s"] = round(rate, 1)
    logger.warning("%s: %.0f images/s", name, rate)


def test_synthetic_generator(benchmark) -> None:
    n = 100
    benchmark.pedantic(lambda: list(synthetic.generate(n, 256, 0)), rounds=3, iterations=1)
    _rate(benchmark, n, "synthetic generator, 256 px, 1 core")
    assert n / benchmark.stats.stats.mean >= 200


def test_synthetic_write(benchmark, tmp_path: Path) -> None:
    n = 100
    benchmark.pedantic(lambda: synthetic.write_dataset(tmp_path, n, 256, 0), rounds=2, iterations=1)
    _rate(benchmark, n, "synthetic write_dataset (JPEG + mask PNG + manifest), 256 px")


def _batches(encoded: list[bytes]) -> list[list[bytes]]:
    return [encoded[i : i + BATCH] for i in range(0, len(encoded), BATCH)]


def test_pil_pipeline_cpu(benchmark, encoded: list[bytes]) -> None:
    config = TransformConfig(image_size=224, train=True)
    pipe = PilImagePipeline(config, num_threads=1)
    rng = np.random.default_rng(0)

    def run() -> None:
        for batch in _batches(encoded):
            pipe(batch, sample_params(config, len(batch), rng))

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    _rate(benchmark, len(encoded), "PIL fallback pipeline, 1024->224 train aug, 1 thread")


@pytest.mark.skipif(not dali_available(), reason="nvidia.dali not installed")
def test_dali_pipeline_cpu(benchmark, encoded: list[bytes]) -> None:
    from mmclip.data import DaliImagePipeline

    config = TransformConfig(image_size=224, train=True)
    pipe = DaliImagePipeline(config, BATCH, "cpu", num_threads=1)
    rng = np.random.default_rng(0)

    def run() -> None:
        for batch in _batches(encoded):
            pipe(batch, sample_params(config, len(batch), rng))

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    _rate(benchmark, len(encoded), "DALI cpu pipeline, 1024->224 train aug, 1 thread")


@pytest.mark.skipif(
    not (dali_available() and torch.cuda.is_available()), reason="needs DALI and a CUDA GPU"
)
def test_dali_pipeline_mixed_gpu(benchmark, encoded: list[bytes]) -> None:
    from mmclip.data import DaliImagePipeline

    batch_size = 128
    config = TransformConfig(image_size=224, train=True)
    pipe = DaliImagePipeline(config, batch_size, "cuda", num_threads=4)
    data = (encoded * math.ceil(batch_size * 4 / len(encoded)))[: batch_size * 4]
    rng = np.random.default_rng(0)

    def run() -> None:
        for i in range(0, len(data), batch_size):
            batch = data[i : i + batch_size]
            pipe(batch, sample_params(config, len(batch), rng))
        torch.cuda.synchronize()

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=2)
    _rate(benchmark, len(data), "DALI mixed (GPU) pipeline, 1024->224, batch 128")
    assert len(data) / benchmark.stats.stats.mean >= 5000


class _PilDataset(torch.utils.data.Dataset):
    """Baseline: full-resolution PIL decode, random-resized crop, rotation, intensity."""

    def __init__(self, encoded: list[bytes], size: int = 224) -> None:
        self.encoded, self.size = encoded, size
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = Image.open(io.BytesIO(self.encoded[i])).convert("L")
        w, h = image.size
        area = self.rng.uniform(0.6, 1.0)
        cw, ch = int(w * math.sqrt(area)), int(h * math.sqrt(area))
        x0, y0 = int(self.rng.integers(0, w - cw + 1)), int(self.rng.integers(0, h - ch + 1))
        image = image.crop((x0, y0, x0 + cw, y0 + ch)).resize((self.size, self.size))
        image = image.rotate(float(self.rng.uniform(-10, 10)), fillcolor=0)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
        x = ((x - 0.5) * float(self.rng.uniform(0.8, 1.2)) + 0.5).clamp(0, 1)
        return ((x ** float(self.rng.uniform(0.8, 1.25)) - 0.5) / 0.25)[None]


def test_baseline_pil_dataloader(benchmark, encoded: list[bytes]) -> None:
    loader = torch.utils.data.DataLoader(_PilDataset(encoded), batch_size=BATCH, num_workers=0)

    def run() -> None:
        for _ in loader:
            pass

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    _rate(benchmark, len(encoded), "baseline PIL + torch DataLoader, 1024->224, 1 process")
