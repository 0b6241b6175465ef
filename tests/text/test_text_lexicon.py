"""Lexicon loading, validation and extension."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmclip.text import CHESTXRAY14_FINDINGS, CHEXPERT_FINDINGS, Lexicon, load_lexicon
from mmclip.text.lexicon import normalize_term
from mmclip.text.ner import RadiologyNER


def _write(tmp_path: Path, data: object, name: str = "extra.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_default_lexicon_covers_both_label_sets() -> None:
    lexicon = load_lexicon()
    for label in CHEXPERT_FINDINGS[1:]:
        assert lexicon.concepts_for_label("chexpert", label), label
    for label in CHESTXRAY14_FINDINGS:
        assert lexicon.concepts_for_label("chestxray14", label), label
    types = {c.type for c in lexicon.concepts}
    assert {"finding", "device", "anatomy", "laterality"} <= types
    assert lexicon.concept("Pleural effusion").labels_for("chestxray14") == ("Effusion",)


def test_default_lexicon_is_cached() -> None:
    assert load_lexicon() is load_lexicon()


def test_normalize_term() -> None:
    assert normalize_term("  Port-A-Cath\tLine ") == "port a cath line"


def test_extra_file_adds_terms_and_concepts(tmp_path: Path) -> None:
    extra = _write(
        tmp_path,
        {
            "concepts": [
                {"name": "Pneumothorax", "type": "finding", "terms": ["air leak"]},
                {
                    "name": "Bronchiolitis",
                    "type": "finding",
                    "terms": ["bronchiolitis"],
                    "labels": {"chexpert": ["Lung Opacity"]},
                },
            ],
            "triggers": {"pre_negation": ["nope"]},
        },
    )
    lexicon = Lexicon.load(extra=extra)
    assert "air leak" in lexicon.concept("Pneumothorax").terms
    assert "pneumothorax" in lexicon.concept("Pneumothorax").terms
    assert lexicon.concept("Bronchiolitis").labels_for("chexpert") == ("Lung Opacity",)
    ner = RadiologyNER(lexicon)
    found = {(m.concept, m.assertion) for m in ner("Nope air leak. Bronchiolitis.")}
    assert found == {("Pneumothorax", "absent"), ("Bronchiolitis", "present")}
    assert load_lexicon(extra).concept("Bronchiolitis").type == "finding"


@pytest.mark.parametrize(
    ("concept", "message"),
    [
        ({"name": "X", "type": "disease", "terms": ["x"]}, "'type' must be one of"),
        ({"name": "X", "terms": "x"}, "concept 'X' terms: expected a list"),
        ({"name": "X", "terms": [""]}, "expected non-empty strings"),
        ({"name": "X", "terms": [3]}, "expected non-empty strings"),
        ({"name": "", "terms": ["x"]}, "'name' must be a non-empty string"),
        ({"name": "X"}, "needs at least one term or pattern"),
        ({"name": "X", "patterns": ["(bad"]}, "bad pattern '(bad'"),
        ({"name": "X", "patterns": ["(a)b"]}, "has capturing groups"),
        ({"name": "X", "patterns": ["a?"]}, "matches the empty string"),
        ({"name": "X", "terms": ["x"], "labels": {"mimic": ["Edema"]}}, "unknown label schema"),
        ({"name": "X", "terms": ["x"], "labels": {"chexpert": ["Flu"]}}, "'Flu' is not a chexpert"),
        ({"name": "X", "terms": ["x"], "assertion": "maybe"}, "'assertion' must be one of"),
        ({"name": "X", "terms": ["x"], "synonyms": ["y"]}, "unknown keys ['synonyms']"),
    ],
)
def test_bad_entry_raises_value_error_naming_problem(
    tmp_path: Path, concept: dict, message: str
) -> None:
    path = _write(tmp_path, {"concepts": [concept]})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        Lexicon.load(extra=path)


def test_bad_files(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        Lexicon.from_file(bad_json)
    with pytest.raises(FileNotFoundError, match="lexicon file not found"):
        Lexicon.from_file(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="unknown trigger kind 'maybe'"):
        Lexicon.from_file(_write(tmp_path, {"triggers": {"maybe": ["x"]}}))
    with pytest.raises(ValueError, match="duplicate concept names"):
        Lexicon.from_dict(
            {"concepts": [{"name": "A", "terms": ["a"]}, {"name": "A", "terms": ["b"]}]}
        )
    with pytest.raises(ValueError, match="has type 'device' but the base lexicon says 'finding'"):
        Lexicon.load(
            extra=_write(
                tmp_path, {"concepts": [{"name": "Edema", "type": "device", "terms": ["x"]}]}
            )
        )


def test_conflicting_trigger_polarity_is_rejected(tmp_path: Path) -> None:
    lexicon = Lexicon.load(extra=_write(tmp_path, {"triggers": {"pre_uncertainty": ["no"]}}))
    with pytest.raises(ValueError, match="trigger 'no' is listed both as negation and as"):
        RadiologyNER(lexicon)
