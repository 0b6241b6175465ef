"""COVIDx CXR (COVID-Net).

Expected layout, as downloaded::

    root/train.txt   root/val.txt (v9+)   root/test.txt
    root/train/<filename>   root/val/<filename>   root/test/<filename>

Each line of a split file is ``<patient id> <filename> <class> <data source>`` separated by
spaces. Classes ``positive`` / ``COVID-19`` → ``COVID-19`` 1; ``negative`` / ``normal`` →
``No Finding`` 1 (and ``COVID-19`` 0); ``pneumonia`` → ``Pneumonia`` 1 (and ``COVID-19`` 0).
The official split files are used as they are.
"""

from __future__ import annotations

from pathlib import Path

from mmclip.data.records import DataError, XrayRecord, resolve_under_root, text_errors

__all__ = ["load_covidx"]

_CLASS_LABELS: dict[str, dict[str, int]] = {
    "positive": {"COVID-19": 1},
    "covid-19": {"COVID-19": 1},
    "covid": {"COVID-19": 1},
    "negative": {"COVID-19": 0},
    "normal": {"COVID-19": 0, "No Finding": 1},
    "pneumonia": {"COVID-19": 0, "Pneumonia": 1},
}


def load_covidx(root: str | Path) -> list[XrayRecord]:
    """Image-only labelled records from the COVIDx split files present under ``root``."""
    root = Path(root)
    records: list[XrayRecord] = []
    found = False
    for split, name in (("train", "train.txt"), ("val", "val.txt"), ("test", "test.txt")):
        path = root / name
        if not path.is_file():
            continue
        found = True
        with text_errors(path):  # utf-8-sig: a byte-order mark is not part of the patient id
            text = path.read_text(encoding="utf-8-sig")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            where = f"{path}:{number}"
            if len(parts) < 3:
                raise DataError(f"{where}: expected '<patient> <file> <class> [<source>]'")
            patient, filename, cls = parts[0], parts[1], parts[2]
            labels = _CLASS_LABELS.get(cls.lower())
            if labels is None:
                raise DataError(f"{where}: unknown class {cls!r}")
            records.append(
                XrayRecord(
                    image_path=resolve_under_root(root, Path(split) / filename, where),
                    report=None,
                    labels=dict(labels),
                    patient_id=patient,
                    split=split,  # type: ignore[arg-type]
                    source="covidx",
                    meta={"class": cls, "origin": parts[3] if len(parts) > 3 else None},
                )
            )
    if not found:
        raise DataError(f"{root}: no train.txt / val.txt / test.txt split file")
    return records
