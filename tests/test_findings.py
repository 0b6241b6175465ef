"""One finding-name normaliser (mmclip.findings) behind the folder, manifest and zero-shot
lookups."""

from __future__ import annotations

import pytest

from mmclip.data.sources.folder import class_finding
from mmclip.data.sources.manifest import _is_finding_name
from mmclip.eval.predict import canonical_finding
from mmclip.findings import finding_key, match_finding


def test_finding_key_ignores_case_separators_and_spacing() -> None:
    assert finding_key(" PLEURAL-thickening ") == "pleural thickening"
    assert finding_key("Pleural_Thickening") == "pleural thickening"
    assert finding_key("COVID-19") == "covid 19"
    assert match_finding("no_finding", ["Edema", "No Finding"]) == "No Finding"
    assert match_finding("cat", ["Edema"]) is None


@pytest.mark.parametrize(
    ("spelling", "finding"),
    [
        ("pleural_effusion", "Pleural Effusion"),
        ("PLEURAL  EFFUSION", "Pleural Effusion"),
        ("pleural-thickening", "Pleural_Thickening"),
        ("Pleural_Thickening", "Pleural_Thickening"),
        ("covid_19", "COVID-19"),
        ("ards", "ARDS"),
    ],
)
def test_the_three_lookups_read_a_spelling_alike(spelling: str, finding: str) -> None:
    assert class_finding(spelling) == finding
    assert _is_finding_name(spelling)
    assert canonical_finding(spelling) == finding


def test_names_that_are_no_finding_stay_apart() -> None:
    assert class_finding("cat") == "cat" and not _is_finding_name("site")
    assert class_finding("NORMAL") == "No Finding"  # a class folder's own alias
    with pytest.raises(ValueError, match="no zero-shot prompts"):
        canonical_finding("cat")
