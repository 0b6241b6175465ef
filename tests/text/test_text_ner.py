"""Entity recognition and NegEx-style assertions."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmclip.text import EntityMention, RadiologyNER, extract_entities, split_sections


def _findings(text: str) -> dict[str, str]:
    return {m.concept: m.assertion for m in extract_entities(text) if m.type == "finding"}


def test_simple_negation_and_presence() -> None:
    assert _findings("No pneumothorax. Mild cardiomegaly.") == {
        "Pneumothorax": "absent",
        "Cardiomegaly": "present",
    }


def test_negation_over_a_list() -> None:
    found = _findings("No evidence of focal airspace consolidation, pneumothorax or effusion.")
    assert found == {
        "Consolidation": "absent",
        "Pneumothorax": "absent",
        "Pleural effusion": "absent",
    }


def test_scope_ends_at_but_and_sentence_end() -> None:
    found = _findings("No pneumothorax but there is a small effusion. Atelectasis.")
    assert found["Pneumothorax"] == "absent"
    assert found["Pleural effusion"] == "present"
    assert found["Atelectasis"] == "present"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Cannot exclude pneumonia.", "uncertain"),
        ("Pneumonia cannot be excluded.", "uncertain"),
        ("Possible small pneumothorax.", "uncertain"),
        ("Opacity may represent atelectasis.", "uncertain"),
        ("The pneumothorax has resolved.", "absent"),
        ("Resolved pneumothorax.", "absent"),
        ("Pneumothorax is not seen.", "absent"),
        ("No change in the small pneumothorax.", "present"),
        ("Findings consistent with pneumothorax.", "present"),
        ("Probable pneumothorax.", "present"),
    ],
)
def test_single_finding_assertions(text: str, expected: str) -> None:
    found = {k: v for k, v in _findings(text).items() if k != "Lung opacity"}
    assert list(found.values()) == [expected]


def test_negation_over_a_suggestion() -> None:
    assert _findings("No focal opacity to suggest pneumonia.")["Pneumonia"] == "absent"
    assert _findings("Opacity suggestive of pneumonia.")["Pneumonia"] == "uncertain"


def test_likely_assertion_option() -> None:
    ner = RadiologyNER(likely_assertion="uncertain")
    assert [m.assertion for m in ner("Probable effusion.")] == ["uncertain"]
    with pytest.raises(ValueError, match="likely_assertion must be"):
        RadiologyNER(likely_assertion="yes")


def test_multi_word_longest_match_and_no_overlap() -> None:
    mentions = extract_entities("Small right pleural effusion and subsegmental atelectasis.")
    texts = [(m.text, m.type) for m in mentions]
    assert ("pleural effusion", "finding") in texts
    assert ("subsegmental atelectasis", "finding") in texts
    assert ("effusion", "finding") not in texts
    for a, b in itertools.pairwise(mentions):
        assert a.end <= b.start


def test_laterality_types_and_attachment() -> None:
    mentions = extract_entities("Right lower lobe consolidation. Effusion on the left.")
    by_text = {m.text: m for m in mentions}
    assert by_text["Right"].type == "laterality"
    assert by_text["lower lobe"].type == "anatomy"
    assert by_text["consolidation"].laterality == "right"
    assert by_text["Effusion"].laterality == "left"


def test_devices() -> None:
    mentions = [
        m
        for m in extract_entities("Left PICC line tip in the SVC. ET tube removed.")
        if m.type == "device"
    ]
    assert [(m.concept, m.assertion) for m in mentions] == [
        ("Central venous catheter", "present"),
        ("Endotracheal tube", "absent"),
    ]


def test_sections_and_indication() -> None:
    text = "INDICATION: Pneumonia?\nFINDINGS: Heart is enlarged.\nIMPRESSION: Cardiomegaly."
    sections = [s.name for s in split_sections(text)]
    assert sections == ["indication", "findings", "impression"]
    by_concept = {m.concept: m.section for m in extract_entities(text) if m.type == "finding"}
    assert by_concept == {"Pneumonia": "indication", "Cardiomegaly": "impression"}
    mapping = {"indication": "pneumonia", "findings": "No effusion.", "id": "7"}
    assert {(m.concept, m.section) for m in extract_entities(mapping)} == {
        ("Pneumonia", "indication"),
        ("Pleural effusion", "findings"),
    }


def test_case_and_xxxx_marks() -> None:
    found = _findings("PLEURAL EFFUSION. XXXX XXXX opacity. No XXXX pneumothorax.")
    assert found == {
        "Pleural effusion": "present",
        "Lung opacity": "present",
        "Pneumothorax": "absent",
    }


def test_empty_and_non_ascii_text() -> None:
    assert extract_entities("") == []
    assert extract_entities("   \n ") == []
    text = "Épanchement İİ ß — kein Befund. Small pleural effusion ✓ without pneumothorax."
    mentions = extract_entities(text)
    for m in mentions:
        assert text[m.start : m.end] == m.text
    assert {m.concept: m.assertion for m in mentions if m.type == "finding"} == {
        "Pleural effusion": "present",
        "Pneumothorax": "absent",
    }


@pytest.mark.parametrize("bad", [None, 3, b"No effusion", ["No effusion"]])
def test_non_string_report_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="a report must be a str or a mapping"):
        extract_entities(bad)  # type: ignore[arg-type]


def test_non_string_section_raises_type_error() -> None:
    with pytest.raises(TypeError, match="section 'findings' must be a string"):
        extract_entities({"findings": 3})


_WORDS = st.sampled_from(
    [
        "no",
        "pleural",
        "effusion",
        "right",
        "left",
        "lower",
        "lobe",
        "XXXX",
        "pneumothorax",
        "but",
        "possible",
        "cardiomegaly",
        ".",
        ",",
        "\n",
        "FINDINGS:",
        "IMPRESSION:",
        "é",
        "İ",
        "heart",
        "is",
        "enlarged",
        "not",
        "seen",
        "-",
        "opacity",
        "chest tube",
        "  ",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_WORDS, max_size=40).map(" ".join) | st.text(max_size=80))
def test_mentions_lie_inside_text_sorted_and_disjoint(text: str) -> None:
    mentions = extract_entities(text)
    last_end = 0
    for m in mentions:
        assert isinstance(m, EntityMention)
        assert 0 <= m.start < m.end <= len(text)
        assert text[m.start : m.end] == m.text
        assert m.start >= last_end
        last_end = m.end
        assert m.assertion in ("present", "absent", "uncertain")
