"""NIH ChestX-ray14 (NIH Clinical Center).

Expected layout, as downloaded::

    root/Data_Entry_2017.csv       Image Index, Finding Labels, Follow-up #, Patient ID,
                                   Patient Age, Patient Gender, View Position, ...
                                   (Data_Entry_2017_v2020.csv is accepted too)
    root/train_val_list.txt        official patient-wise split, one image name per line
    root/test_list.txt
    root/images/00000001_000.png   or root/images_001/images/00000001_000.png, ...

``Finding Labels`` is ``|``-separated (``No Finding`` for none); each of the 14 findings is
1 when listed and 0 otherwise. ``test_list`` → test; ``train_val_list`` is split into train /
val by a hash of the patient id.
"""

from __future__ import annotations

from pathlib import Path

from mmclip.data.records import DataError, XrayRecord, patient_split, read_csv_rows, text_errors
from mmclip.findings import CHESTXRAY14_FINDINGS

__all__ = ["NIH_FINDINGS", "load_nih_chestxray14"]

NIH_FINDINGS: tuple[str, ...] = CHESTXRAY14_FINDINGS
"""The 14 ChestX-ray14 findings (:data:`mmclip.findings.CHESTXRAY14_FINDINGS`)."""


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with text_errors(path):  # utf-8-sig: a byte-order mark is not part of the first name
        text = path.read_text(encoding="utf-8-sig")
    return {line.strip() for line in text.splitlines() if line.strip()}


def _image_index(root: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for folder in sorted([root / "images", *root.glob("images_*/images"), *root.glob("images_*")]):
        if folder.is_dir():
            for path in folder.glob("*.png"):
                index.setdefault(path.name, path)
    return index


def load_nih_chestxray14(root: str | Path, val_fraction: float = 0.1) -> list[XrayRecord]:
    """Image-only records with the 14 NIH labels (and ``No Finding``)."""
    root = Path(root)
    csv_path = root / "Data_Entry_2017.csv"
    if not csv_path.is_file() and (root / "Data_Entry_2017_v2020.csv").is_file():
        csv_path = root / "Data_Entry_2017_v2020.csv"
    rows = read_csv_rows(csv_path, ["Image Index", "Finding Labels", "Patient ID", "View Position"])
    test = _read_list(root / "test_list.txt")
    train_val = _read_list(root / "train_val_list.txt")
    images = _image_index(root)
    records: list[XrayRecord] = []
    for i, row in enumerate(rows, start=2):
        name = row["Image Index"].strip()
        where = f"{csv_path}:{i}"
        found = {f.strip() for f in row["Finding Labels"].split("|") if f.strip()}
        unknown = found - set(NIH_FINDINGS) - {"No Finding"}
        if unknown:
            raise DataError(f"{where}: unknown finding labels {sorted(unknown)}")
        labels = {f: int(f in found) for f in NIH_FINDINGS}
        labels["No Finding"] = int("No Finding" in found)
        patient = row["Patient ID"].strip()
        if name in test:
            split = "test"
        elif name in train_val:
            split = patient_split(patient, val_fraction, 0.0, salt="nih")
        else:
            raise DataError(f"{where}: image {name} is in neither train_val_list nor test_list")
        records.append(
            XrayRecord(
                image_path=images.get(name, root / "images" / name),
                report=None,
                labels=labels,
                patient_id=patient,
                view=row["View Position"].strip() or None,
                split=split,
                source="nih-chestxray14",
            )
        )
    return records
