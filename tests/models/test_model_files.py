"""A saved model directory that is corrupt or hostile: one error naming the file or key."""

from __future__ import annotations

import json

import pytest

from mmclip.models import MMCLIPModel
from tests.models.helpers import make_tokenizer, tiny_model


@pytest.fixture
def saved(tmp_path):
    model = tiny_model(make_tokenizer())
    model.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_a_truncated_or_empty_weights_file_is_named(saved) -> None:
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"model\.safetensors is unreadable"):
        MMCLIPModel.from_pretrained(saved)
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match=r"model\.safetensors is unreadable"):
        MMCLIPModel.from_pretrained(saved)


def test_a_corrupt_config_or_tokenizer_is_named(saved) -> None:
    config = saved / "config.json"
    text = config.read_text(encoding="utf-8")
    config.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        MMCLIPModel.from_pretrained(saved)
    config.write_text(text, encoding="utf-8")
    (saved / "tokenizer.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokenizer files in .* are unreadable"):
        MMCLIPModel.from_pretrained(saved)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("vision", "patch_size", 0, r"vision\.patch_size = 0 is outside"),
        ("vision", "depth", 100000, r"vision\.depth = 100000 is outside"),
        ("text", "hidden_size", -4, r"text\.hidden_size = -4 is outside"),
        ("vision", "patch_size", 7, "multiple of patch_size"),
    ],
)
def test_hostile_sizes_in_config_json_are_refused_before_allocating(
    saved, section, key, value, message
) -> None:
    config = saved / "config.json"
    data = json.loads(config.read_text(encoding="utf-8"))
    data[section][key] = value
    config.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        MMCLIPModel.from_pretrained(saved)


def test_a_corrupt_image_file_is_named(tmp_path) -> None:
    from mmclip.models.preprocess import load_image

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"bad\.jpg' cannot be decoded"):
        load_image(bad)
