"""MMCLIPModel: a step without an active loss term still backpropagates with a fixed
temperature; the guidance's logit scale follows one rule in the model and in a standalone
AttMIM block."""

from __future__ import annotations

import copy

import pytest
import torch

from mmclip.batch import SampleKind
from mmclip.models import AttMIM
from mmclip.models.attmim import DEFAULT_GUIDE_SCALE

from .helpers import make_batch, make_tokenizer
from .helpers import tiny_model as tiny

SIZE = 32


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


# ---------------------------------------------------------------------------------
# A batch without an active loss term.


@pytest.mark.parametrize("learn_temperature", [False, True])
def test_batch_without_active_term_gives_a_loss_that_backpropagates(tokenizer, learn_temperature):
    """Before: with learn_temperature=False the loss had no graph and backward() raised."""
    model = tiny(
        tokenizer,
        {"contrastive.learn_temperature": learn_temperature},
        use_unpaired=False,  # image-only samples are then left out: no term is active
    )
    batch = make_batch(tokenizer, [SampleKind.IMAGE_ONLY, SampleKind.IMAGE_ONLY], SIZE)
    out = model(batch)
    assert out.clip is None and out.mim is None and out.mlm is None
    assert float(out.loss.detach()) == 0.0
    assert out.loss.requires_grad
    out.loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable
    assert all(p.grad is not None and not bool(p.grad.any()) for p in trainable)


def test_zero_loss_has_no_graph_under_no_grad(tokenizer):
    model = tiny(tokenizer, {"contrastive.learn_temperature": False}, use_unpaired=False)
    batch = make_batch(tokenizer, [SampleKind.IMAGE_ONLY], SIZE)
    with torch.no_grad():
        out = model(batch)
    assert float(out.loss) == 0.0 and not out.loss.requires_grad


def test_active_terms_are_unchanged_by_the_zero_loss(tokenizer):
    model = tiny(tokenizer, {"contrastive.learn_temperature": False})
    batch = make_batch(tokenizer, [SampleKind.PAIRED] * 3, SIZE, fixed=True)
    out = model(batch, generator=torch.Generator().manual_seed(0))
    w = model.config.loss_weights
    expected = sum(
        getattr(w, name) * getattr(out, name)
        for name in ("clip", "local", "mim", "mlm", "tp")
        if getattr(out, name) is not None
    )
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()


# ---------------------------------------------------------------------------------
# One default guidance scale.


def _guidance_inputs(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 1, SIZE, SIZE, generator=g)
    text_states = torch.randn(2, 6, model.text.hidden_size, generator=g)
    weight = torch.rand(2, 6, generator=g)
    return images, text_states, weight


def _standalone(model, **kwargs):
    """An AttMIM block built from the model's config with a copy of its towers."""
    return AttMIM(
        copy.deepcopy(model.visual),
        copy.deepcopy(model.config.attmim),
        text_dim=model.text.hidden_size,
        image_proj=copy.deepcopy(model.image_proj),
        text_proj=copy.deepcopy(model.text_proj),
        **kwargs,
    )


def test_model_and_standalone_block_agree_on_a_configured_scale(tokenizer):
    model = tiny(tokenizer, {"attmim.guide_scale": 12.5})
    block = _standalone(model)
    assert model.guide_scale() == block.guide_scale() == model.attmim.guide_scale() == 12.5
    images, states, weight = _guidance_inputs(model)
    torch.testing.assert_close(
        block.guidance_scores(images, states, weight),
        model.attmim.guidance_scores(images, states, weight, scale=model.guide_scale()),
    )


@pytest.mark.parametrize("local", [0.0, 1.0])
def test_unset_scale_follows_the_models_learned_scale_through_the_block(tokenizer, local):
    """Before: model.attmim's own default (1/0.07) differed from model.guide_scale()."""
    model = tiny(tokenizer, {"attmim.guide_scale": None, "loss_weights.local": local})
    with torch.no_grad():  # move the learned scales away from their initial values
        model.contrastive.logit_scale.fill_(2.0)
        model.local.attention_logit_scale.fill_(1.5)
    learned = float(torch.tensor(1.5).exp()) if local else float(torch.tensor(2.0).exp())
    assert model.guide_scale() == pytest.approx(learned)
    assert model.attmim.guide_scale() == model.guide_scale()  # the block's default is the model's
    images, states, weight = _guidance_inputs(model)
    default = model.attmim.guidance_scores(images, states, weight)
    explicit = model.attmim.guidance_scores(images, states, weight, scale=model.guide_scale())
    torch.testing.assert_close(default, explicit)
    # a standalone block given the model's scale source agrees with the model
    block = _standalone(model, scale_source=model.learned_guide_scale)
    assert block.guide_scale() == model.guide_scale()
    torch.testing.assert_close(block.guidance_scores(images, states, weight), default)


def test_standalone_block_without_scale_or_source_uses_the_documented_default(tokenizer):
    model = tiny(tokenizer, {"attmim.guide_scale": None})
    block = _standalone(model)
    assert block.guide_scale() == DEFAULT_GUIDE_SCALE == pytest.approx(1 / 0.07)


def test_deep_copied_model_follows_its_own_learned_scale(tokenizer):
    model = tiny(tokenizer, {"attmim.guide_scale": None, "loss_weights.local": 0.0})
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone.contrastive.logit_scale.fill_(1.0)
    assert clone.attmim.guide_scale() == pytest.approx(float(torch.tensor(1.0).exp()))
    assert model.attmim.guide_scale() != clone.attmim.guide_scale()
