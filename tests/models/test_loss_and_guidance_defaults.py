"""MMCLIPModel: a step without an active loss term still backpropagates with a fixed
temperature; the guidance's logit scale follows one rule (the objective's), which a
standalone AttMIM block matches when given that scale."""

from __future__ import annotations

import copy

import pytest
import torch

from mmclip.batch import SampleKind, row_groups
from mmclip.models import AttMIM
from mmclip.models.attmim import DEFAULT_GUIDE_SCALE, text_guidance

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


def _model_scores(model, images, states, weight):
    """The model's guidance from text states (as the objective computes it in training)."""
    patches = model.guidance_patch_states(images)
    with torch.no_grad():
        return text_guidance(
            model.text_proj(states),
            model.image_proj(patches),
            weight,
            model.objective.guide_scale(),
        )


def test_model_and_standalone_block_agree_on_a_configured_scale(tokenizer):
    model = tiny(tokenizer, {"attmim.guide_scale": 12.5})
    block = _standalone(model)
    assert model.objective.guide_scale() == block.guide_scale() == 12.5
    assert model.objective.attmim.guide_scale() == 12.5
    images, states, weight = _guidance_inputs(model)
    torch.testing.assert_close(
        block.guidance_scores(images, states, weight), _model_scores(model, images, states, weight)
    )


@pytest.mark.parametrize("local", [0.0, 1.0])
def test_unset_scale_follows_the_models_learned_scale(tokenizer, local):
    """One rule (PretrainingObjective.guide_scale): the local term's attention scale when the
    local term is on, else the contrastive logit scale; a standalone block agrees when given
    that scale."""
    model = tiny(tokenizer, {"attmim.guide_scale": None, "loss_weights.local": local})
    with torch.no_grad():  # move the learned scales away from their initial values
        model.objective.contrastive.logit_scale.fill_(2.0)
        model.objective.local.attention_logit_scale.fill_(1.5)
    learned = float(torch.tensor(1.5).exp()) if local else float(torch.tensor(2.0).exp())
    assert model.objective.guide_scale() == pytest.approx(learned)
    images, states, weight = _guidance_inputs(model)
    block = _standalone(model)
    torch.testing.assert_close(
        block.guidance_scores(images, states, weight, scale=learned),
        _model_scores(model, images, states, weight),
    )
    # the training step reads the same scale: its guidance equals the model's on its texts
    model.set_step(10**6)
    model.eval()  # no dropout: the step's towers equal the inference pass
    batch = make_batch(tokenizer, [SampleKind.PAIRED] * 2, SIZE, fixed=True)
    out = model(batch, generator=torch.Generator().manual_seed(0))
    text = row_groups(batch).pair_texts
    weights = model.objective.guidance_weights(text)
    expected = model.guidance_scores(batch.images, text.input_ids, text.attention_mask, weights)
    torch.testing.assert_close(out.guidance, expected)


def test_standalone_block_without_scale_uses_the_documented_default(tokenizer):
    model = tiny(tokenizer, {"attmim.guide_scale": None})
    block = _standalone(model)
    assert block.guide_scale() == DEFAULT_GUIDE_SCALE == pytest.approx(1 / 0.07)


def test_deep_copied_model_follows_its_own_learned_scale(tokenizer):
    model = tiny(tokenizer, {"attmim.guide_scale": None, "loss_weights.local": 0.0})
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone.objective.contrastive.logit_scale.fill_(1.0)
    assert clone.objective.guide_scale() == pytest.approx(float(torch.tensor(1.0).exp()))
    assert model.objective.guide_scale() != clone.objective.guide_scale()
