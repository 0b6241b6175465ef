"""Indiana University chest X-ray collection (Open-i, NLM), as our JSONL of reports.

Expected layout (as in ``shared/data/iu-reports``)::

    root/reports.jsonl        {"id", "indication", "comparison", "findings", "impression",
                               "mesh_major", "images": [image ids]} per line
    images_dir/<image id>.png (optional: the Open-i PNGs, e.g. CXR1_1_IM-0001-3001.png)

Without ``images_dir`` every report is a text-only record; with it, each image of a report
becomes a paired record. The report text is ``FINDINGS: … IMPRESSION: …`` (the sections that
are non-empty). A report with neither section is a :class:`DataError`, or a counted skip
with ``on_error="skip"``. Split by a hash of the report id (one report = one patient here).
"""

from __future__ import annotations

from pathlib import Path

from mmclip.data.records import (
    DataError,
    ErrorPolicy,
    SkipCounter,
    XrayRecord,
    check_error_policy,
    patient_split,
    read_jsonl,
    resolve_under_root,
)

__all__ = ["iu_report_text", "load_iu_xray"]


def iu_report_text(obj: dict[str, object]) -> str:
    """``FINDINGS: … \\nIMPRESSION: …`` from the JSON fields (empty sections left out)."""
    parts = []
    for key, title in (("findings", "FINDINGS"), ("impression", "IMPRESSION")):
        value = str(obj.get(key) or "").strip()
        if value:
            parts.append(f"{title}: {value}")
    return "\n".join(parts)


def load_iu_xray(
    root: str | Path,
    images_dir: str | Path | None = None,
    on_error: ErrorPolicy = "raise",
    skips: SkipCounter | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> list[XrayRecord]:
    """Text-only (or, with ``images_dir``, paired) records of the IU / Open-i reports."""
    check_error_policy(on_error)
    root = Path(root)
    path = root / "reports.jsonl" if root.is_dir() else root
    image_root = Path(images_dir) if images_dir is not None else None
    skips = skips if skips is not None else SkipCounter()
    records: list[XrayRecord] = []
    for number, obj in read_jsonl(path):
        where = f"{path}:{number}"
        report_id = str(obj.get("id", "")).strip()
        if not report_id:
            raise DataError(f"{where}: missing 'id'")
        text = iu_report_text(obj)
        if not text:
            if on_error == "raise":
                raise DataError(f"{where}: empty report (no findings, no impression)")
            skips.add("empty report", where)
            continue
        split = patient_split(report_id, val_fraction, test_fraction, salt="iu")
        meta = {"report_id": report_id, "mesh_major": obj.get("mesh_major", [])}
        if image_root is None:
            records.append(XrayRecord(None, text, {}, report_id, None, split, "iu-xray", meta))
            continue
        for image_id in obj.get("images", []) or []:
            image = resolve_under_root(image_root, f"{image_id}.png", where)
            records.append(
                XrayRecord(image, text, {}, report_id, None, split, "iu-xray", dict(meta))
            )
    skips.report(str(path))
    return records
