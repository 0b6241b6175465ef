"""The findings an evaluation runs on (mmclip.eval.suite.select_findings, behind --findings)."""

from __future__ import annotations

import pytest

from mmclip.data import XrayRecord
from mmclip.demo import SYNTHETIC_FINDINGS
from mmclip.eval.suite import select_findings


def _record(labels: dict[str, int]) -> XrayRecord:
    return XrayRecord(image_path=None, report="x", labels=labels)


def test_given_findings_are_checked_for_prompts_only_when_needed() -> None:
    records = [_record({"Edema": 1})]
    assert select_findings(records, ["Edema", "No Finding"]) == ["Edema", "No Finding"]
    with pytest.raises(ValueError, match=r"no prompts for finding\(s\) \['Gizmo'\]"):
        select_findings(records, ["Gizmo"])
    assert select_findings(records, ["Gizmo"], need_prompts=False) == ["Gizmo"]


def test_without_findings_the_data_decides() -> None:
    records = [_record({"Edema": 1, "Cardiomegaly": 0})]
    assert select_findings(records) == ["Edema"]
    assert select_findings(records, source="synthetic") == list(SYNTHETIC_FINDINGS)
    with pytest.raises(ValueError, match="no labelled findings in the data"):
        select_findings([_record({"Edema": 0})])
