"""Per-term gradient norms and shares on the image tower (mmclip.train.gradients)."""

from __future__ import annotations

import pytest
import torch

from mmclip.train.gradients import GradientShares, gradient_shares, term_gradient_norms
from tests.models.helpers import MIXED, make_batch, make_tokenizer, tiny_model


def test_term_norms_match_autograd_and_scale_with_the_weight() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    other = torch.nn.Parameter(torch.tensor(3.0))
    terms = {"a": (w**2).sum(), "b": other * 2.0, "c": None}
    norms = term_gradient_norms(terms, {"a": 0.5, "b": 1.0, "c": 1.0}, [w])
    # d(0.5 * sum w²)/dw = w → norm sqrt(5); "b" does not reach w; "c" is absent
    assert norms["a"] == pytest.approx(5**0.5)
    assert norms["b"] == 0.0 and "c" not in norms


def test_shares_sum_to_one_and_the_masked_pass_is_mim_plus_clip_masked() -> None:
    shares = GradientShares(norms={"clip": 3.0, "clip_masked": 1.0, "mim": 1.0, "mlm": 0.0})
    assert sum(shares.shares().values()) == pytest.approx(1.0)
    assert shares.masked_pass_share() == pytest.approx(0.4)
    assert "**40.0 %**" in shares.markdown()


def test_the_encoder_gradient_scale_multiplies_only_the_masked_image_term() -> None:
    tok = make_tokenizer()
    batch = make_batch(tok, MIXED, image_size=32)
    base = {"attmim.guide_warmup_steps": 0, "loss_weights.clip_masked": 1.0}
    one = gradient_shares(tiny_model(tok, base).train(), [batch], step=0)
    scaled = tiny_model(tok, {**base, "attmim.encoder_grad_scale": 10.0}).train()
    ten = gradient_shares(scaled, [batch], step=0)
    assert ten.norms["mim"] == pytest.approx(10 * one.norms["mim"], rel=1e-4)
    assert ten.norms["clip"] == pytest.approx(one.norms["clip"], rel=1e-5)
    assert one.norms["clip_masked"] > 0 and ten.masked_pass_share() > one.masked_pass_share()


def test_the_guided_row_share_counts_image_text_rows_with_a_focus_token() -> None:
    tok = make_tokenizer()
    batch = make_batch(tok, MIXED, image_size=32)
    shares = gradient_shares(tiny_model(tok).train(), [batch], step=0)
    # MIXED: 3 pairs + 2 image-prompt rows have an image and a text; each names a present
    # finding ("Findings consistent with pneumonia."), so each is guided
    assert (shares.guided_rows, shares.image_text_rows) == (5, 5)
    assert shares.to_dict()["guided_row_share"] == 1.0
