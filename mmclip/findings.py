"""The label schemas of the public chest X-ray sets: one definition for data and text."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CHESTXRAY14_FINDINGS",
    "CHEXPERT_FINDINGS",
    "NO_FINDING",
    "finding_key",
    "match_finding",
]

NO_FINDING = "No Finding"

CHEXPERT_FINDINGS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
"""The 14 CheXpert / MIMIC-CXR observations, in the order of their label CSVs."""

CHESTXRAY14_FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
"""The 14 NIH ChestX-ray14 findings, in the NIH order ("No Finding" is added by the labeler)."""


def finding_key(name: str) -> str:
    """The spelling-free form of a finding name, the one rule every finding lookup uses:
    lower case, ``_`` and ``-`` read as spaces, runs of white space as one space, trimmed.

    ``"Pleural_Thickening"``, ``"pleural thickening"`` and ``" PLEURAL-thickening "`` all give
    ``"pleural thickening"``; ``"COVID-19"`` gives ``"covid 19"``.
    """
    return " ".join(name.replace("_", " ").replace("-", " ").split()).lower()


def match_finding(name: str, known: Iterable[str]) -> str | None:
    """The name among ``known`` that ``name`` spells (equal :func:`finding_key`), else None.

    The first match wins, so ``known`` in order of preference (``"No Finding"`` for
    ``"no_finding"``; ``"Pleural_Thickening"`` for ``"pleural thickening"``).
    """
    key = finding_key(name)
    for finding in known:
        if finding_key(finding) == key:
            return finding
    return None
