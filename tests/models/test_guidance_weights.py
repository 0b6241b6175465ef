"""Guidance token weights on real tokenised reports, and the model's tower layout (v2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from mmclip.data.collate import RadiologyTextEncoder, TokenizedText
from mmclip.models import (
    AttMIM,
    AttMIMConfig,
    CheckpointMismatchError,
    MMCLIPModel,
    TextEncoder,
    VisionTransformer,
    build_wordpiece_tokenizer,
    guidance_token_weights,
)
from mmclip.models.config import VisionConfig
from mmclip.ops import cross_modal_attention_score

from .helpers import make_tokenizer, tiny_model

REPORTS = [
    "There is a left pneumothorax. There is no pleural effusion.",
    "No acute cardiopulmonary abnormality.",
    "Possible right upper lung nodule.",
]


@pytest.fixture(scope="module")
def word_tokenizer() -> Any:
    """A WordPiece tokenizer whose vocabulary holds every word of ``REPORTS`` whole."""
    return build_wordpiece_tokenizer(REPORTS * 8, vocab_size=200)


@pytest.fixture(scope="module")
def encoded(word_tokenizer: Any) -> TokenizedText:
    return RadiologyTextEncoder(word_tokenizer, max_length=32)(REPORTS)


def _by_token(tokenizer: Any, ids: Tensor, weight: Tensor) -> list[tuple[str, float]]:
    """(token, weight) of every position of one row."""
    tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
    return list(zip(tokens, weight.tolist(), strict=True))


def _weights(config: AttMIMConfig, tok: TokenizedText, with_focus: bool = True) -> Tensor:
    return guidance_token_weights(
        config,
        tok.attention_mask,
        tok.special_tokens_mask,
        tok.span_offsets,
        tok.spans,
        tok.focus_offsets if with_focus else None,
        tok.focus_spans if with_focus else None,
    )


def test_the_test_tokenizer_keeps_the_report_words_whole(
    word_tokenizer: Any, encoded: TokenizedText
) -> None:
    tokens = word_tokenizer.convert_ids_to_tokens(encoded.input_ids[0].tolist())
    assert tokens[:6] == ["[CLS]", "there", "is", "a", "left", "pneumothorax"]
    assert "pleural" in tokens and "effusion" in tokens and "no" in tokens
    assert int(encoded.attention_mask[1].sum()) < encoded.input_ids.shape[1]  # row 1 padded


def test_focus_tokens_get_entity_weight_and_negated_mentions_zero(
    word_tokenizer: Any, encoded: TokenizedText
) -> None:
    config = AttMIMConfig(entity_weight=3.0)
    weight = _weights(config, encoded)
    assert weight.dtype == torch.float32 and weight.shape == encoded.input_ids.shape
    row = _by_token(word_tokenizer, encoded.input_ids[0], weight[0])
    focus = {"left": 3.0, "pneumothorax": 3.0}
    for token, w in row:
        assert w == focus.get(token, 0.0), (token, w)
    assert dict(row)["pleural"] == 0.0 and dict(row)["effusion"] == 0.0
    # the uncertain finding and its place are focus too
    row2 = dict(_by_token(word_tokenizer, encoded.input_ids[2], weight[2]))
    assert row2["nodule"] == 3.0 and row2["right"] == 3.0 and row2["upper"] == 3.0
    assert row2["possible"] == 0.0 and row2["[CLS]"] == 0.0 and row2["[SEP]"] == 0.0
    # padding is 0
    assert torch.all(weight[encoded.attention_mask == 0] == 0)


def test_context_weight_goes_to_every_other_real_token(
    word_tokenizer: Any, encoded: TokenizedText
) -> None:
    weight = _weights(AttMIMConfig(entity_weight=3.0, context_weight=0.5), encoded)
    row = dict(_by_token(word_tokenizer, encoded.input_ids[0], weight[0]))
    assert row["left"] == 3.0 and row["pneumothorax"] == 3.0
    assert row["pleural"] == 0.5 and row["there"] == 0.5 and row["no"] == 0.5
    assert row["[CLS]"] == 0.0 and row["[SEP]"] == 0.0
    assert torch.all(weight[encoded.attention_mask == 0] == 0)


@pytest.mark.parametrize("ablation", ["assertion_blind", "no_focus_spans"])
def test_without_assertions_every_entity_gets_entity_weight_and_others_one(
    word_tokenizer: Any, encoded: TokenizedText, ablation: str
) -> None:
    if ablation == "assertion_blind":
        weight = _weights(AttMIMConfig(entity_weight=3.0, assertion_aware=False), encoded)
    else:  # an older batch without focus spans falls back to the entity spans
        weight = _weights(AttMIMConfig(entity_weight=3.0), encoded, with_focus=False)
    row = dict(_by_token(word_tokenizer, encoded.input_ids[0], weight[0]))
    assert row["pneumothorax"] == 3.0
    assert row["pleural"] == 3.0 and row["effusion"] == 3.0  # negated, yet an entity
    assert row["left"] == 1.0 and row["there"] == 1.0 and row["no"] == 1.0
    assert row["[CLS]"] == 0.0 and row["[SEP]"] == 0.0
    normal = weight[1][encoded.special_tokens_mask[1] == 0]
    assert normal.numel() == 5 and torch.all(normal == 1.0)
    assert torch.all(weight[encoded.attention_mask == 0] == 0)


def test_a_report_without_focus_gives_zero_weights_and_uniform_guidance(
    encoded: TokenizedText,
) -> None:
    weight = _weights(AttMIMConfig(), encoded)
    assert torch.all(weight[1] == 0)
    assert float(weight[0].sum()) > 0
    g = torch.Generator().manual_seed(0)
    n_patch = 9
    q = torch.randn(3, weight.shape[1], 8, generator=g)
    k = torch.randn(3, n_patch, 8, generator=g)
    scores = cross_modal_attention_score(q, k, weight, 2.0)
    torch.testing.assert_close(scores[1], torch.full((n_patch,), 1.0 / n_patch))
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(3))
    assert float(scores[0].max() - scores[0].min()) > 1e-3  # a focus report is not uniform


# ---------------------------------------------------------------- the model's layout (v3)
@pytest.fixture(scope="module")
def model() -> MMCLIPModel:
    return tiny_model(make_tokenizer())


def test_the_model_owns_its_towers_and_the_objective_its_heads(model: MMCLIPModel) -> None:
    state = model.state_dict()
    for prefix in ("visual.", "text.", "image_proj.", "text_proj."):
        assert any(key.startswith(prefix) for key in state), prefix
    for head in ("contrastive", "local", "attmim.decoder", "entmlm.blocks", "tp_loss"):
        assert any(key.startswith(f"objective.{head}.") for key in state), head
    tops = {key.split(".")[0] for key in state}
    assert tops == {"visual", "text", "image_proj", "text_proj", "objective"}
    assert "objective.local.attention_logit_scale" in state  # the mil kind's scale


def test_the_objective_holds_no_tower(model: MMCLIPModel) -> None:
    towers = (model.visual, model.text, model.image_proj, model.text_proj)
    inside = list(model.objective.modules())
    assert not any(m is t for m in inside for t in towers)
    assert not any(isinstance(m, (VisionTransformer, TextEncoder)) for m in inside)
    tower_params = {id(p) for t in towers for p in t.parameters()}
    assert not tower_params & {id(p) for p in model.objective.parameters()}
    assert not hasattr(model.objective.attmim, "encoder")
    assert not hasattr(model.objective.entmlm, "encoder")


def test_every_parameter_is_registered_once(model: MMCLIPModel) -> None:
    named = dict(model.named_parameters(remove_duplicate=False))
    state = model.state_dict()
    assert set(named) <= set(state)
    pointers = {p.data_ptr() for p in named.values()}
    assert len(pointers) == len(named)  # no tensor under two names
    in_state = {state[name].data_ptr(): state[name].numel() for name in named}
    assert sum(p.numel() for p in model.parameters()) == sum(in_state.values())
    storages = [v.data_ptr() for v in state.values() if v.numel()]
    assert len(storages) == len(set(storages))


def test_a_standalone_attmim_registers_its_encoder() -> None:
    vit = VisionTransformer.from_config(VisionConfig(image_size=32, width=32, depth=1, heads=2))
    head = AttMIM(vit, text_dim=32, decoder_width=32, decoder_depth=1, decoder_heads=2)
    keys = set(head.state_dict())
    assert {f"encoder.{k}" for k in vit.state_dict()} <= keys
    assert any(p is vit.patch_embed.weight for p in head.parameters())


def _rewrite_format_version(directory: Path, version: int | None) -> None:
    """Set ``format_version`` of a saved config.json (None: remove it)."""
    path = directory / "config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if version is None:
        del data["format_version"]
    else:
        data["format_version"] = version
    path.write_text(json.dumps(data), encoding="utf-8")


def test_a_format_version_2_directory_loads_and_1_is_refused_by_name(
    model: MMCLIPModel, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    directory = model.save_pretrained(tmp_path / "model")
    saved = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    assert saved["format_version"] == 3
    loaded = MMCLIPModel.from_pretrained(directory)  # the version it writes loads
    assert set(loaded.state_dict()) == set(model.state_dict())
    # format 2: the same tensors with the heads at the top of the state dict
    weights = directory / "model.safetensors"
    state = load_file(str(weights))
    old = {k.removeprefix("objective."): v for k, v in state.items()}
    assert "attmim.decoder.head.weight" in old and "local.attention_logit_scale" in old
    save_file(old, str(weights))
    _rewrite_format_version(directory, 2)
    upgraded = MMCLIPModel.from_pretrained(directory)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(upgraded.state_dict()[key], value, rtol=0, atol=0)
    _rewrite_format_version(directory, 1)
    with pytest.raises(CheckpointMismatchError, match="format_version 1") as info:
        MMCLIPModel.from_pretrained(directory)
    assert "attmim.encoder" in str(info.value)
    _rewrite_format_version(directory, 4)
    with pytest.raises(CheckpointMismatchError, match=r"format_version 4.*newer"):
        MMCLIPModel.from_pretrained(directory)


def test_a_config_without_format_version_is_read_as_version_1(
    model: MMCLIPModel, tmp_path: Path
) -> None:
    directory = model.save_pretrained(tmp_path / "model")
    _rewrite_format_version(directory, None)
    with pytest.raises(CheckpointMismatchError, match="format_version 1"):
        MMCLIPModel.from_pretrained(directory)


def test_vit_intermediate_states_are_the_normed_states_of_a_shallower_pass() -> None:
    from mmclip.models import VisionConfig, VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer.from_config(
        VisionConfig(image_size=32, patch_size=16, width=16, depth=3, heads=2)
    ).eval()
    images = torch.randn(2, 1, 32, 32)
    out = vit(images, intermediate=1)
    shallow = vit(images, depth=1)
    assert out.intermediate is not None
    torch.testing.assert_close(out.intermediate, shallow.tokens)
    torch.testing.assert_close(out.tokens, vit(images).tokens)
    assert vit(images).intermediate is None
    with pytest.raises(ValueError, match="intermediate"):
        vit(images, depth=2, intermediate=3)


def test_entmlm_memory_is_the_last_block_whatever_guide_depth() -> None:
    """guide_depth (the guidance's depth) must not truncate EntMLM's image memory."""
    from mmclip.batch import SampleKind

    from .helpers import make_batch, make_tokenizer, tiny_model

    tokenizer = make_tokenizer()
    for local in (0.0, 1.0):
        model = tiny_model(
            tokenizer,
            {
                "attmim.guide_warmup_steps": 0,
                "attmim.tau_anneal_steps": 1,
                "attmim.guide_depth": 1,
                "loss_weights.local": local,
            },
        )
        memories: list[Tensor] = []

        def record(module, args, kwargs, out, memories=memories) -> None:
            memories.append(kwargs["context"])

        handle = model.objective.entmlm.blocks[0].register_forward_hook(record, with_kwargs=True)
        batch = make_batch(tokenizer, [SampleKind.PAIRED] * 3, image_size=32)
        model(batch, step=10, generator=torch.Generator().manual_seed(0))
        handle.remove()
        with torch.no_grad():
            full = model.visual(batch.images).tokens
        assert len(memories) == 1
        torch.testing.assert_close(memories[0], full, msg=f"local={local}")


def test_dilate_scores_spreads_a_peak_to_its_neighbours() -> None:
    from mmclip.models.attmim import dilate_scores

    scores = torch.full((1, 16), 0.01)
    scores[0, 5] = 0.85  # row 1, column 1 of a 4 x 4 grid
    scores = scores / scores.sum()
    out = dilate_scores(scores, 4, 3)
    grid = out.view(4, 4)
    high = grid > grid.min() + 1e-6
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0:3, 0:3] = True  # the 3 x 3 neighbourhood of (1, 1)
    assert torch.equal(high, expected)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(1))
    assert dilate_scores(scores, 4, 1) is scores
    with pytest.raises(ValueError, match="odd"):
        dilate_scores(scores, 4, 2)
