"""Model blocks and the whole MMCLIPModel on CPU: shapes, gradients, losses, save/load."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmclip.batch import SampleKind
from mmclip.models import (
    AttMIM,
    CheckpointMismatchError,
    ContrastiveLoss,
    MMCLIPModel,
    VisionTransformer,
    contrastive_targets,
    create_model,
    list_models,
    tau_schedule,
)
from mmclip.models.config import VisionConfig
from mmclip.ops import use_reference

from .helpers import MIXED, make_batch, make_tokenizer
from .helpers import tiny_model as tiny

SIZE = 32


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


def test_registry_lists_the_three_sizes_and_rejects_unknown_names():
    names = list_models()
    assert {"mmclip-tiny", "mmclip-small", "mmclip-base"} <= set(names)
    with pytest.raises(Exception, match="mmclip-tiny"):
        create_model("mmclip-huge")
    with pytest.raises(Exception, match="no_such_key"):
        create_model("mmclip-tiny", overrides={"attmim.no_such_key": 1})


@pytest.mark.parametrize("name", list_models())
def test_every_registered_config_runs_a_forward_pass_on_the_cpu(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    v, t = model.config.vision, model.config.text
    images = torch.randn(2, v.in_chans, v.image_size, v.image_size)
    ids = torch.randint(5, t.vocab_size, (2, 12))
    with torch.no_grad():
        image_embeds = model.encode_pixels(images)
        text_states = model.text(ids, torch.ones_like(ids))
    assert image_embeds.shape == (2, model.config.contrastive.embed_dim)
    torch.testing.assert_close(image_embeds.norm(dim=-1), torch.ones(2))
    assert text_states.tokens.shape == (2, 12, t.hidden_size)
    assert torch.isfinite(image_embeds).all() and torch.isfinite(text_states.tokens).all()


def test_vit_visible_tokens_depth_and_shapes():
    vit = VisionTransformer.from_config(
        VisionConfig(image_size=SIZE, width=32, depth=3, heads=2)
    ).eval()
    images = torch.randn(2, 1, SIZE, SIZE)
    full = vit(images)
    assert full.tokens.shape == (2, 4, 32) and full.pooled.shape == (2, 32)
    keep = torch.tensor([[0, 2], [1, 3]])
    vis = vit(images, keep_idx=keep)
    assert vis.tokens.shape == (2, 2, 32)
    shallow = vit(images, depth=1)
    assert not torch.allclose(shallow.tokens, full.tokens)
    with pytest.raises(ValueError, match="depth"):
        vit(images, depth=7)
    with pytest.raises(Exception, match=r"(?i)chan|image"):
        vit(torch.randn(2, 3, SIZE, SIZE))
    with pytest.raises(Exception, match=r"(?i)size|image"):
        vit(torch.randn(2, 1, SIZE + 16, SIZE + 16))


def test_contrastive_loss_matches_a_reference_and_label_aware_targets():
    torch.manual_seed(0)
    img, txt = torch.randn(6, 8), torch.randn(6, 8)
    loss_fn = ContrastiveLoss(init_temperature=0.1, label_aware=False)
    logits = 10.0 * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
    target = torch.arange(6)
    ref = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
    torch.testing.assert_close(loss_fn(img, txt), ref, rtol=1e-5, atol=1e-5)
    labels = torch.tensor([0, 0, 1, -1, -1, 1])
    t = contrastive_targets(labels, 6, torch.device("cpu"))
    torch.testing.assert_close(t.sum(1), torch.ones(6))
    assert t[0, 1] == 0.5 and t[3, 4] == 0 and t[3, 3] == 1
    clamped = ContrastiveLoss(init_temperature=1e-4, max_logit_scale=50.0)
    assert float(clamped.scale().detach()) == 50.0


def test_tau_schedule_is_inf_during_warmup_then_anneals_down_to_the_final_value():
    assert math.isinf(tau_schedule(0, 0.5, 10, 100))
    assert math.isinf(tau_schedule(9, 0.5, 10, 100))
    values = [tau_schedule(s, 0.5, 10, 100) for s in range(10, 200, 5)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[-1] == pytest.approx(0.5)


def test_attmim_on_its_own_masks_the_ratio_and_gives_a_loss():
    vit = VisionTransformer.from_config(VisionConfig(image_size=64, width=32, depth=2, heads=2))
    attmim = AttMIM(
        vit, mask_ratio=0.75, decoder_width=32, decoder_depth=1, decoder_heads=2, text_dim=32
    )
    images = torch.randn(3, 1, 64, 64)
    text = torch.randn(3, 5, 32)
    weight = torch.ones(3, 5)
    out = attmim(images, text, weight, tau=0.5, generator=torch.Generator().manual_seed(0))
    assert out.mask.shape == (3, 16) and out.mask.sum(1).tolist() == [12, 12, 12]
    assert out.scores.shape == (3, 16)
    torch.testing.assert_close(out.scores.sum(1), torch.ones(3))
    assert out.pred.shape == (3, 16, 256)
    assert torch.isfinite(out.loss) and out.loss > 0
    out.loss.backward()
    assert vit.patch_embed.weight.grad is not None


def test_mixed_batch_gives_finite_terms_and_gradients_reach_the_encoders(tokenizer):
    model = tiny(tokenizer)
    batch = make_batch(tokenizer, MIXED, image_size=SIZE)
    out = model(batch, step=10_000, generator=torch.Generator().manual_seed(0))
    for term in ("clip", "mim", "mlm", "tp"):
        value = getattr(out, term)
        assert value is not None and torch.isfinite(value), term
    out.loss.backward()
    # a mixed batch exercises every term, so every parameter must receive a gradient
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and not p.grad.any()]
    assert missing == [] and zero == [], (missing, zero)


def test_text_only_batch_skips_the_image_terms(tokenizer):
    model = tiny(tokenizer)
    batch = make_batch(tokenizer, [SampleKind.TEXT_ONLY] * 4, image_size=SIZE)
    out = model(batch)
    assert out.clip is None and out.mim is None
    assert out.mlm is not None and torch.isfinite(out.loss)


def test_loss_weight_zero_switches_a_term_off(tokenizer):
    model = tiny(tokenizer, {"loss_weights.mim": 0.0})
    out = model(make_batch(tokenizer, [SampleKind.PAIRED] * 4, image_size=SIZE))
    assert out.mim is None and out.clip is not None


def test_fused_ops_and_references_give_the_same_losses(tokenizer):
    model = tiny(tokenizer).eval()
    batch = make_batch(tokenizer, MIXED, image_size=SIZE)
    with torch.no_grad():
        fused = model(batch, step=10_000, generator=torch.Generator().manual_seed(3))
        with use_reference(True):
            ref = model(batch, step=10_000, generator=torch.Generator().manual_seed(3))
    for term in ("clip", "mim", "mlm", "tp"):
        torch.testing.assert_close(getattr(fused, term), getattr(ref, term), rtol=1e-4, atol=1e-4)


def test_save_and_load_reproduce_encode_exactly(tokenizer, tmp_path):
    model = tiny(tokenizer).eval()
    array = (np.random.default_rng(0).random((48, 40)) * 255).astype(np.uint8)
    path = tmp_path / "xray.png"
    Image.fromarray(array).save(path)
    text = "This X-ray shows signs of pneumonia."
    img_a, txt_a = model.encode(str(path), text)
    assert img_a.shape[0] == 1 and txt_a.shape[0] == 1
    torch.testing.assert_close(img_a.norm(dim=-1), torch.ones(1))
    torch.testing.assert_close(model.encode_image(Image.open(path)), img_a)
    torch.testing.assert_close(model.encode_image(array), img_a)
    model.save_pretrained(tmp_path / "model")
    loaded = MMCLIPModel.from_pretrained(tmp_path / "model").eval()
    img_b, txt_b = loaded.encode(str(path), text)
    assert torch.equal(img_a, img_b) and torch.equal(txt_a, txt_b)


def test_loading_a_mismatched_checkpoint_names_the_problem(tokenizer, tmp_path):
    tiny(tokenizer).save_pretrained(tmp_path / "model")
    other = tiny(tokenizer, {"vision.depth": 3})
    from safetensors.torch import load_file

    files = list((tmp_path / "model").glob("*.safetensors"))
    state = load_file(str(files[0]))
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys|missing keys"):
        other.load_checkpoint_state(state)


def test_a_tiny_model_overfits_eight_samples(tokenizer):
    model = tiny(tokenizer, {"attmim.guide_warmup_steps": 0, "attmim.tau_anneal_steps": 1})
    batch = make_batch(tokenizer, [SampleKind.PAIRED] * 8, image_size=SIZE, fixed=True)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for step in range(100):
        out = model(batch, step=step, generator=torch.Generator().manual_seed(step % 4))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        values = {t: float(getattr(out, t).detach()) for t in ("clip", "mim", "mlm")}
        if step == 0:
            first = values
        last = values
    for term in ("clip", "mim", "mlm"):
        assert last[term] <= 0.5 * first[term], (term, first[term], last[term])
