"""Focus spans: the present / uncertain findings of a report and where they are."""

from __future__ import annotations

import pytest

from mmclip.text import focus_mentions, focus_spans, report_text


def _focus_texts(report: str) -> list[str]:
    return [report[start:end] for start, end in focus_spans(report)]


def test_present_finding_with_its_place_is_focus_and_the_negated_one_is_not() -> None:
    report = "FINDINGS: There is a left apical pneumothorax. There is no pleural effusion."
    texts = _focus_texts(report)
    assert texts == ["left", "apical", "pneumothorax"]
    assert not any("effusion" in t or "pleural" in t for t in texts)


def test_spans_are_in_text_order_and_inside_the_text() -> None:
    report = "Small right pleural effusion. No pneumothorax."
    spans = focus_spans(report)
    assert spans == sorted(spans)
    assert all(0 <= start < end <= len(report) for start, end in spans)
    assert [report[a:b] for a, b in spans] == ["right", "pleural effusion"]


@pytest.mark.parametrize(
    "report",
    [
        "No acute cardiopulmonary abnormality.",
        "There is no pneumothorax or pleural effusion. The lungs are clear.",
        "No pleural effusion. No pneumothorax.",
    ],
)
def test_a_report_with_only_negations_or_normal_phrases_has_no_focus(report: str) -> None:
    assert focus_spans(report) == []
    assert focus_mentions(report) == []


def test_an_uncertain_finding_is_focus_with_its_laterality_and_anatomy() -> None:
    report = "Possible right upper lung nodule."
    texts = _focus_texts(report)
    assert "nodule" in texts
    assert "right" in texts
    assert any("upper" in t for t in texts)
    assert {m.assertion for m in focus_mentions(report) if m.type == "finding"} == {"uncertain"}


def test_laterality_of_a_negated_sentence_is_left_out() -> None:
    report = "There is a left pneumothorax. There is no right pleural effusion."
    texts = _focus_texts(report)
    assert texts == ["left", "pneumothorax"]
    assert "right" not in texts


def test_sections_mapping_is_read_like_the_text() -> None:
    sections = {"findings": "There is a left apical pneumothorax.", "impression": "No effusion."}
    text = report_text(sections)
    assert [text[a:b] for a, b in focus_spans(sections)] == ["left", "apical", "pneumothorax"]
    assert [m.text for m in focus_mentions(sections)] == ["left", "apical", "pneumothorax"]
