"""The packaged default tokenizer: the seed's two-line usage works offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import mmclip
from mmclip.models import MMCLIPModel
from mmclip.text import default_tokenizer


def test_the_packaged_vocabulary_is_cxr_bert_with_bert_special_tokens() -> None:
    tokenizer = default_tokenizer()
    assert len(tokenizer) == 30522
    assert (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.mask_token_id) == (0, 2, 4)
    ids = tokenizer("Small LEFT pleural effusion.").input_ids
    assert tokenizer.convert_ids_to_tokens(ids)[1:5] == ["small", "left", "pleural", "effusion"]


def test_the_seeds_two_lines_encode_an_image_file_and_a_report(tmp_path) -> None:
    path = tmp_path / "x.png"
    Image.fromarray((np.random.default_rng(0).random((80, 90)) * 255).astype("uint8")).save(path)
    torch.manual_seed(0)
    model = mmclip.create_model("mmclip-tiny")
    image, text = model.encode(str(path), "Small left pleural effusion.")
    dim = model.config.contrastive.embed_dim
    assert image.shape == (1, dim) and text.shape == (1, dim)
    assert model.config.text.vocab_size == 30522  # raised from tiny's 4096 to fit the vocabulary


def test_a_saved_model_keeps_its_tokenizer_and_one_saved_without_stays_without(tmp_path) -> None:
    torch.manual_seed(0)
    model = mmclip.create_model("mmclip-tiny")
    model.save_pretrained(tmp_path / "with")
    loaded = MMCLIPModel.from_pretrained(tmp_path / "with")
    assert loaded.tokenizer is not None and len(loaded.tokenizer) == 30522
    bare = MMCLIPModel(mmclip.models.get_model_config("mmclip-tiny"), default_tokenizer=False)
    assert bare.tokenizer is None and bare.config.text.vocab_size == 4096
    bare.save_pretrained(tmp_path / "bare")
    reloaded = MMCLIPModel.from_pretrained(tmp_path / "bare")
    assert reloaded.tokenizer is None and reloaded.config.text.vocab_size == 4096
    with pytest.raises(RuntimeError, match="no tokenizer"):
        reloaded.encode_text(["x"])
