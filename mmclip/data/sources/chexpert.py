"""CheXpert (Stanford ML Group), the ``CheXpert-v1.0`` or ``CheXpert-v1.0-small`` download.

Expected layout::

    root/train.csv    Path, Sex, Age, Frontal/Lateral, AP/PA, <14 observation columns>
    root/valid.csv
    root/train/patient00001/study1/view1_frontal.jpg
    root/valid/...

``Path`` values start with the folder name (``CheXpert-v1.0-small/train/...``); that prefix
is stripped and the rest resolved under ``root``. ``train.csv`` → train, ``valid.csv`` → val
(official split, by patient). Labels are 1 / 0 / -1 with blanks unmentioned.
"""

from __future__ import annotations

from pathlib import Path

from mmclip.data.records import (
    CHEXPERT_FINDINGS,
    DataError,
    Split,
    XrayRecord,
    normalize_labels,
    read_csv_rows,
    resolve_under_root,
)

__all__ = ["load_chexpert"]


def load_chexpert(
    root: str | Path, frontal_only: bool = False, splits: tuple[Split, ...] = ("train", "val")
) -> list[XrayRecord]:
    """Image-only records with CheXpert labels (they become disease-kind prompt samples)."""
    root = Path(root)
    records: list[XrayRecord] = []
    for split, name in (("train", "train.csv"), ("val", "valid.csv")):
        if split not in splits:
            continue
        csv_path = root / name
        for i, row in enumerate(read_csv_rows(csv_path, ["Path", *CHEXPERT_FINDINGS]), start=2):
            where = f"{csv_path}:{i}"
            rel = Path(row["Path"])
            if rel.parts and rel.parts[0].startswith("CheXpert-v1.0"):
                rel = Path(*rel.parts[1:])
            if frontal_only and row.get("Frontal/Lateral", "Frontal") != "Frontal":
                continue
            patient = next((p for p in rel.parts if p.startswith("patient")), None)
            if patient is None:
                raise DataError(f"{where}: no patientXXXXX folder in path {row['Path']!r}")
            view = (row.get("AP/PA") or "").strip() or row.get("Frontal/Lateral", "").upper()
            records.append(
                XrayRecord(
                    image_path=resolve_under_root(root, rel, where),
                    report=None,
                    labels=normalize_labels({k: row[k] for k in CHEXPERT_FINDINGS}, where),
                    patient_id=patient,
                    view=view or None,
                    split=split,  # type: ignore[arg-type]
                    source="chexpert",
                )
            )
    return records
