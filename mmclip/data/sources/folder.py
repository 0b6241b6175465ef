"""Folder-per-class image sets (Kermany pediatric pneumonia and the like).

Expected layout, either with split folders::

    root/train/<class>/*.jpeg   root/val/<class>/...   root/test/<class>/...

or without (the split then comes from a hash of the patient id)::

    root/<class>/*.png

The class folder gives the labels: ``class_labels[class]`` when given, else ``{class: 1}``.
``patient_pattern`` (a regex with one group, matched against the file stem) extracts the
patient id; without it each image is its own patient.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from mmclip.data.records import DataError, XrayRecord, normalize_split, patient_split

__all__ = ["KERMANY_CLASS_LABELS", "KERMANY_PATIENT_PATTERN", "load_image_folder", "load_kermany"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

KERMANY_CLASS_LABELS: dict[str, dict[str, int]] = {
    "NORMAL": {"No Finding": 1, "Pneumonia": 0},
    "PNEUMONIA": {"Pneumonia": 1},
}
KERMANY_PATIENT_PATTERN = r"^(person\d+|NORMAL2-IM-\d+|IM-\d+)"
"""``person1000_bacteria_2931`` → ``person1000``; ``IM-0115-0001`` → ``IM-0115``."""


def _split_dirs(root: Path) -> list[tuple[str | None, Path]]:
    subdirs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    named = [p for p in subdirs if p.name.lower() in ("train", "val", "valid", "test")]
    if named:
        return [(normalize_split(p.name, str(p)), p) for p in named]
    return [(None, root)]


def load_image_folder(
    root: str | Path,
    class_labels: Mapping[str, Mapping[str, int]] | None = None,
    patient_pattern: str | None = None,
    source: str = "image-folder",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> list[XrayRecord]:
    """Image-only labelled records, one per image file under ``root/[split/]class/``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    pattern = re.compile(patient_pattern) if patient_pattern else None
    records: list[XrayRecord] = []
    for split, base in _split_dirs(root):
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            if class_labels is not None and class_dir.name not in class_labels:
                raise DataError(f"{class_dir}: unknown class folder (known: {list(class_labels)})")
            labels = dict(class_labels[class_dir.name]) if class_labels else {class_dir.name: 1}
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                patient = path.stem
                if pattern is not None:
                    match = pattern.match(path.stem)
                    if match is None:
                        raise DataError(f"{path}: name does not match {patient_pattern!r}")
                    patient = match.group(1)
                records.append(
                    XrayRecord(
                        image_path=path,
                        report=None,
                        labels=dict(labels),
                        patient_id=patient,
                        split=split or patient_split(patient, val_fraction, test_fraction),
                        source=source,
                        meta={"class": class_dir.name},
                    )
                )
    if not records:
        raise DataError(f"{root}: no images found in class folders")
    return records


def load_kermany(root: str | Path) -> list[XrayRecord]:
    """Kermany et al. 2018 pediatric pneumonia: ``{train,test}/{NORMAL,PNEUMONIA}/*.jpeg``."""
    return load_image_folder(
        root, KERMANY_CLASS_LABELS, KERMANY_PATIENT_PATTERN, source="kermany-pneumonia"
    )
