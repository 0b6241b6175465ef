"""Folder-per-class image sets (Kermany pediatric pneumonia and the like).

Expected layout, either with split folders::

    root/train/<class>/*.jpeg   root/val/<class>/...   root/test/<class>/...

or without (the split then comes from a hash of the patient id)::

    root/<class>/*.png

A root that is itself a split folder (``.../test`` holding ``<class>/*.png``) gives all its
images that split: ``--root chest_xray/test --split test`` evaluates every test image, not
the tenth of them that a patient hash would put in ``test``.

The class folder gives the labels: ``class_labels[class]`` when given. Otherwise the classes
are exclusive (an image lies in one folder): an image gets ``1`` for its class and ``0`` for
every other class, and a folder named like a finding is read as that finding, in any case
(``PNEUMONIA`` → ``Pneumonia``; ``NORMAL`` / ``normal`` / ``healthy`` → ``No Finding``), so
zero-shot and the probe find the labels under the names their prompts use. Other names are
kept as they are (``cat`` → ``{cat: 1, dog: 0}``).

``patient_pattern`` (a regex with one group, matched against the file stem) extracts the
patient id; without it each image is its own patient.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmclip.data.records import (
    IMAGE_SUFFIXES,
    DataError,
    XrayRecord,
    normalize_split,
    patient_split,
)
from mmclip.findings import (
    CHESTXRAY14_FINDINGS,
    CHEXPERT_FINDINGS,
    NO_FINDING,
    finding_key,
    match_finding,
)

__all__ = [
    "KERMANY_CLASS_LABELS",
    "KERMANY_PATIENT_PATTERN",
    "class_finding",
    "load_image_folder",
    "load_kermany",
]

logger = logging.getLogger(__name__)

_SPLIT_NAMES = ("train", "val", "valid", "test")
_NORMAL_NAMES = ("normal", "no finding", "nofinding", "healthy")  # finding_key forms

KERMANY_CLASS_LABELS: dict[str, dict[str, int]] = {
    "NORMAL": {"No Finding": 1, "Pneumonia": 0},
    "PNEUMONIA": {"Pneumonia": 1},
}
KERMANY_PATIENT_PATTERN = r"^(person\d+|NORMAL2-IM-\d+|IM-\d+)"
"""``person1000_bacteria_2931`` → ``person1000``; ``IM-0115-0001`` → ``IM-0115``."""


def _split_dirs(root: Path) -> list[tuple[str | None, Path]]:
    subdirs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    named = [p for p in subdirs if p.name.lower() in _SPLIT_NAMES]
    if named:
        return [(normalize_split(p.name, str(p)), p) for p in named]
    if root.resolve().name.lower() in _SPLIT_NAMES:  # the root is one split's folder
        split = normalize_split(root.resolve().name, str(root))
        logger.info("%s: a %s split folder; all its images are %s records", root, split, split)
        return [(split, root)]
    return [(None, root)]


def class_finding(folder: str) -> str:
    """The finding a class folder names: ``PNEUMONIA`` → ``Pneumonia``, ``NORMAL`` →
    ``No Finding``, ``pleural_effusion`` → ``Pleural Effusion``; other names unchanged."""
    from mmclip.text.prompts import FINDING_PHRASES

    if finding_key(folder) in _NORMAL_NAMES:
        return NO_FINDING
    known = (*CHEXPERT_FINDINGS, *CHESTXRAY14_FINDINGS, *FINDING_PHRASES)
    return match_finding(folder, known) or folder


def _exclusive_labels(classes: Sequence[str]) -> dict[str, dict[str, int]]:
    """Class folder → ``{its finding: 1, every other class's finding: 0}``."""
    names = {c: class_finding(c) for c in classes}
    seen: dict[str, str] = {}
    for folder, name in names.items():
        if name in seen:
            raise DataError(f"class folders {seen[name]!r} and {folder!r} both mean {name!r}")
        seen[name] = folder
    renamed = {f: n for f, n in names.items() if f != n}
    if renamed:
        logger.info("class folders read as findings: %s", renamed)
    return {c: {n: int(c == other) for other, n in names.items()} for c in classes}


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
    splits = _split_dirs(root)
    if class_labels is None:
        classes = sorted({p.name for _, base in splits for p in base.iterdir() if p.is_dir()})
        class_labels = _exclusive_labels(classes)
    for split, base in splits:
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            if class_dir.name not in class_labels:
                raise DataError(f"{class_dir}: unknown class folder (known: {list(class_labels)})")
            labels = dict(class_labels[class_dir.name])
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
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
