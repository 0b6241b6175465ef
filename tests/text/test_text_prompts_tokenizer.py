"""Prompts and tokenizers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mmclip.text import (
    build_prompt,
    load_tokenizer,
    report_prompt,
    train_wordpiece_tokenizer,
    zero_shot_prompts,
)
from mmclip.text.prompts import FINDING_PHRASES, NORMAL_PROMPTS
from mmclip.text.tokenizer import SPECIAL_TOKENS


def test_build_prompt_is_seeded_and_ordered() -> None:
    labels = {"Pleural Effusion": 1, "Pneumonia": -1, "Edema": 0, "Fracture": None}
    first = build_prompt(labels, seed=3, laterality={"Pleural Effusion": "right"})
    assert first == build_prompt(labels, seed=3, laterality={"Pleural Effusion": "right"})
    assert "right " in first.lower()
    assert "edema" not in first.lower()
    variants = {build_prompt(labels, seed=s) for s in range(20)}
    assert len(variants) > 3
    with_negative = build_prompt(labels, seed=1, include_negatives=1)
    assert "edema" in with_negative.lower()


def test_build_prompt_normal_and_nan() -> None:
    assert build_prompt({"Edema": 0, "Cardiomegaly": math.nan}, seed=0) in NORMAL_PROMPTS
    assert build_prompt({}, seed=5) in NORMAL_PROMPTS


def test_build_prompt_errors() -> None:
    with pytest.raises(ValueError, match="no prompt phrases for finding 'Flu'"):
        build_prompt({"Flu": 1})
    with pytest.raises(ValueError, match="must be 1, 0, -1 or None"):
        build_prompt({"Edema": 2})
    with pytest.raises(ValueError, match="laterality must be one of"):
        build_prompt({"Edema": 1}, laterality={"Edema": "up"})
    with pytest.raises(TypeError, match="labels must be a mapping"):
        build_prompt([("Edema", 1)])  # type: ignore[arg-type]


def test_zero_shot_prompts() -> None:
    prompts = zero_shot_prompts("Pleural Effusion")
    assert set(prompts) == {"positive", "negative"}
    assert "Findings consistent with pleural effusion." in prompts["positive"]
    assert "No pleural effusion." in prompts["negative"]
    assert not set(prompts["positive"]) & set(prompts["negative"])
    for finding in FINDING_PHRASES:
        assert zero_shot_prompts(finding)["positive"]
    with pytest.raises(ValueError, match="no prompt phrases"):
        zero_shot_prompts("Flu")


def test_report_prompt_uses_labeler() -> None:
    prompt = report_prompt("FINDINGS: Small right pleural effusion. No pneumothorax.", seed=0)
    assert "right" in prompt.lower() and ("effusion" in prompt or "fluid" in prompt)
    assert "pneumothorax" not in prompt.lower()
    assert report_prompt("Lungs are clear.", seed=0) in NORMAL_PROMPTS


def test_train_save_load_roundtrip(tmp_path: Path) -> None:
    corpus = ["No pneumothorax or pleural effusion.", "Mild cardiomegaly. XXXX opacity."] * 30
    tokenizer = train_wordpiece_tokenizer(
        corpus, vocab_size=120, min_frequency=1, save_dir=tmp_path / "tok"
    )
    assert tokenizer.is_fast
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    ids = tokenizer("Pleural effusion")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    loaded = load_tokenizer(tmp_path / "tok")
    assert loaded("Pleural effusion")["input_ids"] == ids
    assert loaded.mask_token == "[MASK]" and loaded.pad_token_id == 0


def test_tokenizer_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tokenizer path not found"):
        load_tokenizer(tmp_path / "nothing")
    with pytest.raises(TypeError, match="training text #1 must be a str"):
        train_wordpiece_tokenizer(["ok", 3], vocab_size=50)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="vocab_size must be"):
        train_wordpiece_tokenizer(["ok"], vocab_size=3)


def test_load_vocab_file(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join([*SPECIAL_TOKENS, "no", "effusion", "##s"]) + "\n", "utf-8")
    tokenizer = load_tokenizer(vocab)
    assert tokenizer.tokenize("No effusions") == ["no", "effusion", "##s"]
