"""COVID-19 image data collection (Cohen et al., ieee8023/covid-chestxray-dataset).

Expected layout (the repository's, as in ``shared/data/covid-notes``)::

    root/metadata.csv    patientid, offset, sex, age, finding, view, modality, filename,
                         ..., clinical_notes
    root/images/<filename>

Only ``modality == X-ray`` rows are read. ``clinical_notes`` is the text (records without
notes are image-only with labels). ``finding`` gives the labels: ``COVID-19`` (1 when the
finding names it, else 0), ``Pneumonia`` (1 for any infectious pneumonia, COVID-19 included),
``ARDS``, ``No Finding``; ``todo`` means unlabelled. Split by a hash of ``patientid`` — never
by image, patients have several images.
"""

from __future__ import annotations

from pathlib import Path

from mmclip.data.records import XrayRecord, patient_split, read_csv_rows, resolve_under_root

__all__ = ["finding_labels", "load_covid_collection"]

_NON_INFECTIOUS = {"ards", "lipoid", "no finding", "todo", ""}


def finding_labels(finding: str) -> dict[str, int]:
    """Labels of one ``finding`` value (``"COVID-19, ARDS"``, ``"Pneumocystis"``, …)."""
    parts = [p.strip().lower() for p in finding.replace("/", ",").split(",") if p.strip()]
    if not parts or parts == ["todo"]:
        return {}
    if parts == ["no finding"]:
        return {"No Finding": 1, "COVID-19": 0, "Pneumonia": 0}
    labels = {"COVID-19": int(any("covid" in p for p in parts))}
    infectious = any(p not in _NON_INFECTIOUS for p in parts)
    labels["Pneumonia"] = int(infectious)
    if "ards" in parts:
        labels["ARDS"] = 1
    return labels


def load_covid_collection(
    root: str | Path, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> list[XrayRecord]:
    """Paired (image + clinical notes) and image-only records of the collection."""
    root = Path(root)
    csv_path = root / "metadata.csv"
    rows = read_csv_rows(
        csv_path, ["patientid", "finding", "view", "modality", "filename", "clinical_notes"]
    )
    records: list[XrayRecord] = []
    for i, row in enumerate(rows, start=2):
        if row["modality"].strip() != "X-ray":
            continue
        where = f"{csv_path}:{i}"
        patient = row["patientid"].strip()
        notes = row["clinical_notes"].strip() or None
        view = row["view"].strip()
        records.append(
            XrayRecord(
                image_path=resolve_under_root(root, Path("images") / row["filename"], where),
                report=notes,
                labels=finding_labels(row["finding"]),
                patient_id=patient,
                view=view if view and view != "?" else None,
                split=patient_split(patient, val_fraction, test_fraction, salt="covid"),
                source="covid-collection",
                meta={"finding": row["finding"]},
            )
        )
    return records
