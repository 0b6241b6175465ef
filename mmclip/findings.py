"""The label schemas of the public chest X-ray sets: one definition for data and text."""

from __future__ import annotations

__all__ = ["CHESTXRAY14_FINDINGS", "CHEXPERT_FINDINGS", "NO_FINDING"]

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
