"""`No Finding` as an evaluation target: normal vs abnormal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmclip.data import XrayRecord
from mmclip.eval.embed import label_matrix, no_finding_label
from mmclip.text import zero_shot_prompts
from mmclip.text.prompts import FINDING_PHRASES, NORMAL_PROMPTS


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"No Finding": 1}, 1.0),
        ({"No Finding": 0, "Pneumonia": 0}, 0.0),  # an explicit label wins
        ({"Pneumonia": 1}, 0.0),
        ({"Pneumonia": -1, "Edema": 0}, 0.0),  # uncertain counts as abnormal
        ({"Pneumonia": 0, "Edema": 0}, 1.0),  # every labelled finding negative
        ({}, math.nan),  # nothing known: left out
    ],
)
def test_no_finding_label(labels: dict[str, int], expected: float) -> None:
    got = no_finding_label(labels)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_label_matrix_derives_no_finding_beside_other_findings() -> None:
    records = [
        XrayRecord(image_path=None, report="a", labels={"Pneumonia": 1}),
        XrayRecord(image_path=None, report="b", labels={"Pneumonia": 0}),
        XrayRecord(image_path=None, report="c", labels={}),
    ]
    got = label_matrix(records, ["No Finding", "Pneumonia"])
    np.testing.assert_array_equal(got[:2], [[0.0, 1.0], [1.0, 0.0]])
    assert math.isnan(got[2, 0]) and got[2, 1] == 0.0


def test_no_finding_prompts_are_normal_against_every_finding() -> None:
    prompts = zero_shot_prompts("No Finding")
    assert prompts["positive"] == list(NORMAL_PROMPTS)
    negatives = " ".join(prompts["negative"]).lower()
    for name, phrases in FINDING_PHRASES.items():
        if name != "No Finding":
            assert phrases[0].lower() in negatives, name
    assert not set(prompts["positive"]) & set(prompts["negative"])


def test_an_unknown_finding_still_has_no_prompts() -> None:
    with pytest.raises(ValueError, match="No Finding"):
        zero_shot_prompts("Nosuchfinding")
