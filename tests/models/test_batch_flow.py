"""How a batch flows through MMCLIPModel.forward: the image tower's passes per step."""

from __future__ import annotations

import pytest
import torch

from tests.models.helpers import MIXED, make_batch, make_tokenizer, tiny_model


def _count_tower_passes(model, batch) -> dict[str, int]:
    calls = {"whole": 0, "masked": 0}
    original = model.visual.forward

    def counting(images, keep_idx=None, *args, **kwargs):
        calls["whole" if keep_idx is None else "masked"] += 1
        return original(images, keep_idx, *args, **kwargs)

    model.visual.forward = counting
    try:
        model(batch, step=10_000, generator=torch.Generator().manual_seed(0)).loss.backward()
    finally:
        del model.visual.forward
    return calls


@pytest.mark.parametrize(
    "overrides",
    [
        {"attmim.guide_warmup_steps": 0},  # local term on: its whole view serves everything
        {"attmim.guide_warmup_steps": 0, "loss_weights.local": 0},  # guidance-only whole view
        {"attmim.tau_final": float("inf")},  # uniform masking: EntMLM's memory is the view
        {"attmim.guide_warmup_steps": 0, "loss_weights.clip_masked": 1.0},
    ],
)
def test_each_step_encodes_the_whole_images_once_and_each_masked_view_once(overrides) -> None:
    tok = make_tokenizer()
    model = tiny_model(tok, overrides).train()
    calls = _count_tower_passes(model, make_batch(tok, MIXED, image_size=32))
    # one whole-image pass for the paired rows (MIXED has pairs and image + prompt rows);
    # AttMIM's masked views: the paired rows and the image-only row
    assert calls == {"whole": 1, "masked": 2}


def test_without_masked_modelling_only_the_whole_view_runs() -> None:
    tok = make_tokenizer()
    model = tiny_model(tok, {"loss_weights.mim": 0.0}).train()
    calls = _count_tower_passes(model, make_batch(tok, MIXED, image_size=32))
    assert calls == {"whole": 1, "masked": 0}
