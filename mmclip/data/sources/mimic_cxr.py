"""MIMIC-CXR-JPG (PhysioNet) with the MIMIC-CXR report text files.

Expected layout, as downloaded (``.csv`` or ``.csv.gz``)::

    root/mimic-cxr-2.0.0-split.csv.gz      dicom_id, study_id, subject_id, split
    root/mimic-cxr-2.0.0-metadata.csv.gz   dicom_id, subject_id, study_id, ViewPosition, ...
    root/mimic-cxr-2.0.0-chexpert.csv.gz   subject_id, study_id, <14 CheXpert columns>
    root/files/p10/p10000032/s50414267/<dicom_id>.jpg
    reports_root/files/p10/p10000032/s50414267.txt     (mimic-cxr-reports.zip, unzipped)

``reports_root`` defaults to ``root``. The official split (train / validate / test) is used;
it is already by patient.
"""

from __future__ import annotations

from pathlib import Path

from mmclip.data.records import (
    CHEXPERT_FINDINGS,
    DataError,
    XrayRecord,
    normalize_labels,
    normalize_split,
    read_csv_rows,
    text_errors,
)

__all__ = ["load_mimic_cxr"]


def _find(root: Path, stem: str) -> Path:
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root / (stem + '.csv.gz')}: file not found (nor {stem}.csv)")


def load_mimic_cxr(
    root: str | Path,
    reports_root: str | Path | None = None,
    views: tuple[str, ...] | None = ("PA", "AP"),
    with_reports: bool = True,
) -> list[XrayRecord]:
    """Records of MIMIC-CXR-JPG: one per image, paired with its study's report.

    Args:
        root: the ``mimic-cxr-jpg/2.x.x`` folder.
        reports_root: folder holding ``files/pXX/pXXXXXXXX/sXXXXXXXX.txt``.
        views: keep only these ``ViewPosition`` values (``None`` keeps all).
        with_reports: read the report files (a missing report is a :class:`DataError`).
    """
    root = Path(root)
    rep_root = Path(reports_root) if reports_root is not None else root
    split_rows = read_csv_rows(
        _find(root, "mimic-cxr-2.0.0-split"), ["dicom_id", "study_id", "subject_id", "split"]
    )
    meta_path = _find(root, "mimic-cxr-2.0.0-metadata")
    meta = {
        r["dicom_id"]: r for r in read_csv_rows(meta_path, ["dicom_id", "study_id", "ViewPosition"])
    }
    label_path = _find(root, "mimic-cxr-2.0.0-chexpert")
    label_rows = read_csv_rows(label_path, ["subject_id", "study_id", *CHEXPERT_FINDINGS])
    labels = {
        r["study_id"]: normalize_labels(
            {k: r[k] for k in CHEXPERT_FINDINGS}, f"{label_path}: study {r['study_id']}"
        )
        for r in label_rows
    }
    reports: dict[str, str] = {}
    records: list[XrayRecord] = []
    for row in split_rows:
        dicom_id, study, subject = row["dicom_id"], row["study_id"], row["subject_id"]
        info = meta.get(dicom_id)
        if info is None:
            raise DataError(f"{meta_path}: no row for dicom_id {dicom_id}")
        view = info["ViewPosition"].strip() or None
        if views is not None and view not in views:
            continue
        rel = Path("files") / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        report: str | None = None
        if with_reports:
            if study not in reports:
                report_path = rep_root / rel.with_suffix(".txt")
                if not report_path.is_file():
                    raise DataError(f"{report_path}: report file not found")
                with text_errors(report_path):
                    text = report_path.read_text(encoding="utf-8-sig").strip()
                if not text:
                    raise DataError(f"{report_path}: empty report")
                reports[study] = text
            report = reports[study]
        records.append(
            XrayRecord(
                image_path=root / rel / f"{dicom_id}.jpg",
                report=report,
                labels=dict(labels.get(study, {})),
                patient_id=subject,
                view=view,
                split=normalize_split(row["split"], f"{meta_path.parent}: {dicom_id}"),
                source="mimic-cxr",
                meta={"study_id": study, "dicom_id": dicom_id},
            )
        )
    return records
