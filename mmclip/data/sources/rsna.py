"""RSNA Pneumonia Detection Challenge (Kaggle, stage 2).

Expected layout, as downloaded::

    root/stage_2_train_labels.csv          patientId, x, y, width, height, Target
    root/stage_2_detailed_class_info.csv   patientId, class   (optional)
    root/stage_2_train_images/<patientId>.dcm

Each DICOM is converted once to ``cache_dir/<patientId>.png`` (default
``root/png_cache``). A patient has several rows when it has several boxes; they become one
record with ``meta["boxes"]`` (x, y, width, height in pixels). Split by a hash of the
patient id.
"""

from __future__ import annotations

from pathlib import Path

from mmclip.data.records import DataError, XrayRecord, read_csv_rows
from mmclip.data.sources.dicom import DicomSplit, dicom_image_record

__all__ = ["load_rsna_pneumonia"]


def load_rsna_pneumonia(
    root: str | Path,
    cache_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> list[XrayRecord]:
    """Image-only records labelled ``Pneumonia`` 1 / 0 (DICOMs converted to cached PNGs)."""
    root = Path(root)
    split = DicomSplit.under(root, cache_dir, val_fraction, test_fraction, salt="rsna")
    csv_path = root / "stage_2_train_labels.csv"
    rows = read_csv_rows(csv_path, ["patientId", "x", "y", "width", "height", "Target"])
    classes: dict[str, str] = {}
    info_path = root / "stage_2_detailed_class_info.csv"
    if info_path.is_file():
        classes = {
            r["patientId"]: r["class"] for r in read_csv_rows(info_path, ["patientId", "class"])
        }
    targets: dict[str, int] = {}
    boxes: dict[str, list[list[float]]] = {}
    for i, row in enumerate(rows, start=2):
        pid = row["patientId"].strip()
        where = f"{csv_path}:{i}"
        if row["Target"].strip() not in ("0", "1"):
            raise DataError(f"{where}: Target must be 0 or 1, got {row['Target']!r}")
        target = int(row["Target"])
        targets[pid] = max(targets.get(pid, 0), target)
        if target == 1:
            try:
                box = [float(row[k]) for k in ("x", "y", "width", "height")]
            except ValueError as err:
                raise DataError(f"{where}: bad box {row}") from err
            boxes.setdefault(pid, []).append(box)
    records: list[XrayRecord] = []
    for pid, target in targets.items():
        meta: dict[str, object] = {"boxes": boxes.get(pid, [])}
        if pid in classes:
            meta["class"] = classes[pid]
        dcm = root / "stage_2_train_images" / f"{pid}.dcm"
        records.append(
            dicom_image_record(dcm, split, {"Pneumonia": target}, pid, "rsna-pneumonia", meta)
        )
    return records
