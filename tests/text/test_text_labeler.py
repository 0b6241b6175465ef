"""Report labels in the CheXpert convention."""

from __future__ import annotations

import pytest

from mmclip.text import CHESTXRAY14_FINDINGS, CHEXPERT_FINDINGS, RadiologyLabeler, label_report
from mmclip.text.labeler import findings_for_schema, label_reports


def test_chexpert_labels() -> None:
    labels = label_report(
        "FINDINGS: Heart is enlarged. No pneumothorax. Possible left lower lobe pneumonia."
    )
    assert tuple(labels) == CHEXPERT_FINDINGS
    assert labels["Cardiomegaly"] == 1
    assert labels["Pneumothorax"] == 0
    assert labels["Pneumonia"] == -1
    assert labels["Edema"] is None
    assert labels["No Finding"] is None


def test_aggregation_positive_beats_uncertain_beats_negative() -> None:
    assert label_report("No effusion. Possible effusion.")["Pleural Effusion"] == -1
    assert label_report("Possible effusion. Small effusion.")["Pleural Effusion"] == 1
    assert label_report("No effusion. Effusion cannot be excluded.")["Pleural Effusion"] == -1


def test_indication_is_ignored() -> None:
    labels = label_report({"indication": "Pneumonia.", "findings": "Lungs are clear."})
    assert labels["Pneumonia"] is None
    assert labels["No Finding"] == 1


def test_no_finding_rules() -> None:
    assert label_report("No acute cardiopulmonary abnormality.")["No Finding"] == 1
    # Support devices do not make a CheXpert study abnormal.
    chexpert = label_report("Pacemaker in place. Lungs are clear.")
    assert chexpert["Support Devices"] == 1 and chexpert["No Finding"] == 1
    # For ChestX-ray14, any abnormality of the lexicon (devices too) does.
    cxr14 = label_report("Pacemaker in place. Lungs are clear.", schema="chestxray14")
    assert cxr14["No Finding"] is None
    assert label_report("Calcified granuloma.", schema="chestxray14")["No Finding"] is None
    assert label_report("Calcified granuloma.")["No Finding"] == 1


def test_chestxray14_schema() -> None:
    labels = label_report("Right upper lobe infiltrate. Small hiatal hernia.", schema="chestxray14")
    assert tuple(labels)[1:] == CHESTXRAY14_FINDINGS
    assert labels["Infiltration"] == 1
    assert labels["Hernia"] == 1
    assert labels["Effusion"] is None


def test_unknown_schema_and_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown label schema 'mimic'"):
        label_report("text", schema="mimic")
    with pytest.raises(ValueError, match="unknown label schema"):
        RadiologyLabeler("mimic")
    with pytest.raises(TypeError, match="a report must be a str"):
        label_report(42)  # type: ignore[arg-type]


def test_batch_matches_single() -> None:
    reports = ["No effusion.", "Edema.", ""]
    assert label_reports(reports) == [label_report(r) for r in reports]
    assert findings_for_schema("chexpert")[0] == "No Finding"
