"""SIIM-ACR Pneumothorax Segmentation (Kaggle release).

Expected layout, as downloaded::

    root/train-rle.csv                       ImageId, EncodedPixels  ("-1" = no pneumothorax)
    root/dicom-images-train/<study>/<series>/<ImageId>.dcm

Each DICOM is converted once to ``cache_dir/<ImageId>.png`` (default ``root/png_cache``);
the patient id is the DICOM ``PatientID`` tag. ``Pneumothorax`` is 1 when any row of the
image has a mask. Split by a hash of the patient id; the RLE masks are kept in
``meta["rle"]``.
"""

from __future__ import annotations

from pathlib import Path

from mmclip.data.records import DataError, XrayRecord, read_csv_rows
from mmclip.data.sources.dicom import DicomSplit, dicom_image_record, dicom_patient_id

__all__ = ["load_siim_pneumothorax"]


def load_siim_pneumothorax(
    root: str | Path,
    cache_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> list[XrayRecord]:
    """Image-only records labelled ``Pneumothorax`` 1 / 0."""
    root = Path(root)
    split = DicomSplit.under(root, cache_dir, val_fraction, test_fraction, salt="siim")
    csv_path = root / "train-rle.csv"
    if not csv_path.is_file() and (root / "train_rle.csv").is_file():
        csv_path = root / "train_rle.csv"
    rows = read_csv_rows(csv_path, ["ImageId"])
    rle_column = next((c for c in rows[0] if c.strip() == "EncodedPixels"), None) if rows else None
    if rows and rle_column is None:
        raise DataError(f"{csv_path}: missing column 'EncodedPixels'")
    rles: dict[str, list[str]] = {}
    for row in rows:
        rle = row[rle_column].strip() if rle_column else "-1"
        entry = rles.setdefault(row["ImageId"].strip(), [])
        if rle != "-1":
            entry.append(rle)
    dicoms = {p.stem: p for p in (root / "dicom-images-train").rglob("*.dcm")}
    records: list[XrayRecord] = []
    for image_id, masks in rles.items():
        dcm = dicoms.get(image_id)
        if dcm is None:
            raise DataError(f"{root / 'dicom-images-train'}: no DICOM for ImageId {image_id}")
        patient = dicom_patient_id(dcm) or image_id
        labels = {"Pneumothorax": int(bool(masks))}
        records.append(
            dicom_image_record(
                dcm, split, labels, patient, "siim-acr", {"rle": masks}, name=image_id
            )
        )
    return records
