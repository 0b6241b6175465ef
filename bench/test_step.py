"""One optimiser step of MMCLIPModel, compiled ops vs ``use_reference(True)``.

CPU: ``mmclip-tiny`` (96 px, batch 32, half image–report pairs, half image + prompt),
float32. CUDA (when present): ``mmclip-base`` at 224 px, batch 256, bf16 autocast.
``extra_info`` records pairs/s and, on CUDA, the model-FLOPs utilisation.
Both rows of a group run the same model, batch and masks; only the operator
implementation differs. Compare the medians of ``compiled`` and ``reference``.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from mmclip import ops
from mmclip.batch import SampleKind
from mmclip.models import create_model
from mmclip.train.logging import estimate_step_flops, peak_flops

from .conftest import run_timed

IMPLS = ["compiled", "reference"]
SETUPS = {
    "cpu": {"model": "mmclip-tiny", "batch": 32, "overrides": {}},
    "cuda": {"model": "mmclip-base", "batch": 256, "overrides": {}},
}


def _batch(model, n: int, device: str):
    """Half paired (report), half image + prompt; random pixels, templated text."""
    from tests.models.helpers import make_batch

    kinds = [SampleKind.PAIRED, SampleKind.IMAGE_PROMPT] * (n // 2)
    batch = make_batch(
        model.tokenizer, kinds, image_size=model.config.vision.image_size, max_length=64
    )
    return batch.to(torch.device(device))


@pytest.mark.parametrize("impl", IMPLS)
def test_train_step(benchmark, bench_device, impl):
    if impl == "compiled" and not ops.has_ops():
        pytest.skip("compiled mmclip._C not built")
    from tests.models.helpers import make_tokenizer

    setup = SETUPS[bench_device]
    torch.manual_seed(0)
    model = create_model(
        setup["model"],
        tokenizer=make_tokenizer(),
        overrides={
            "attmim.guide_warmup_steps": 0,
            "attmim.tau_anneal_steps": 1,
            **setup["overrides"],
        },
    ).to(bench_device)
    model.train()
    batch = _batch(model, setup["batch"], bench_device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=bench_device == "cuda")
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if bench_device == "cuda"
        else contextlib.nullcontext()
    )
    benchmark.group = f"train_step[{setup['model']}, {bench_device}]"
    benchmark.extra_info.update(model=setup["model"], batch=setup["batch"])

    def step():
        with ops.use_reference(impl == "reference"), autocast:
            gen = torch.Generator(device=bench_device).manual_seed(0)
            out = model(batch, step=1000, generator=gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        return out.loss.detach()

    flops = estimate_step_flops(step) if bench_device == "cuda" else None
    run_timed(benchmark, bench_device, step, rounds=10 if bench_device == "cpu" else 20)
    median = benchmark.stats.stats.median
    benchmark.extra_info["pairs_per_s"] = setup["batch"] / median
    peak = peak_flops(torch.device(bench_device))
    if flops and peak:
        benchmark.extra_info["mfu"] = flops / (median * peak)
