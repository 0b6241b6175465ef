"""The JSRT chest X-ray database with and without a lung nodule (Shiraishi et al., AJR 2000).

Expected layout (as in ``shared/data/jsrt-nodules``)::

    root/nodules.csv    image, nodule, x, y, radius_px, size_mm, subtlety, malignancy,
                        location, diagnosis, age, sex
    root/images/JPCLN001.jpg ...   (adult PA radiographs, 512 × 512)

``image`` is the image's path relative to ``root`` (``images/JPCLN001.jpg``). ``nodule`` is 1
for the 154 images with one nodule (centre ``x``, ``y`` and ``radius_px`` in pixels on the
512 × 512 grid, ``location`` such as ``l.upper lobe(S1+2)``) and 0 for the 93 normals (blank
geometry).

Records are image-only with labels (they become disease-kind prompts): a nodule image is
``{"Nodule": 1, "No Finding": 0}``, a normal ``{"No Finding": 1, "Nodule": 0}`` (``Nodule``
is the ChestX-ray14 name; the lexicon's ``Nodule`` concept feeds it and CheXpert's ``Lung
Lesion``). The nodule's geometry and description are kept in ``meta``: ``nodule`` (0 / 1),
``x``, ``y``, ``radius_px``, ``grid_px`` (512: the grid of the geometry), ``location``,
``finding_text`` (:func:`jsrt_finding_text`), ``side`` (``left`` / ``right`` / None),
``size_mm``, ``subtlety``, ``malignancy``, ``diagnosis``, ``age`` and ``sex``.

Split: by image (each image is its own patient), stratified by ``nodule``: within the nodule
images and within the normals, images are ordered by a BLAKE2b hash of ``"<seed>\\0<image>"``
and the first ``round(test_fraction · n)`` of each group are ``test``, the rest ``train``
(defaults: 40 % test, seed 0 → 62 nodule + 37 normal test images, 92 + 56 train). The split
is the same on every machine and Python version.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from mmclip.data.records import DataError, XrayRecord, read_csv_rows, resolve_under_root

__all__ = [
    "JSRT_COLUMNS",
    "JSRT_GRID",
    "JSRT_NO_NODULE_TEXT",
    "jsrt_finding_text",
    "jsrt_side",
    "jsrt_split",
    "load_jsrt",
]

JSRT_COLUMNS: tuple[str, ...] = (
    "image", "nodule", "x", "y", "radius_px", "size_mm", "subtlety", "malignancy", "location",
    "diagnosis", "age", "sex",
)  # fmt: skip
"""The columns ``nodules.csv`` must have."""

JSRT_GRID = 512
"""Side in pixels of the grid of the nodule geometry (the images are 512 × 512)."""

JSRT_NO_NODULE_TEXT = "No acute cardiopulmonary abnormality."
"""The finding text of a normal image."""

_SIDE_PREFIX = re.compile(r"^\s*(l|r|left|right)\s*[.\s]\s*", re.IGNORECASE)
_SEGMENT = re.compile(r"\([^)]*\)")


def jsrt_side(location: str) -> str | None:
    """``left`` / ``right`` of a JSRT ``location`` (``l.upper lobe`` → ``left``), else None.

    This is the patient's side: a left-lung nodule lies on the image's right half (PA view).
    """
    match = _SIDE_PREFIX.match(location or "")
    if match is None:
        return None
    return "left" if match.group(1).lower().startswith("l") else "right"


def jsrt_finding_text(location: str | None, template: str = "Nodule in the {where}.") -> str:
    """The finding text of a nodule at a JSRT ``location``.

    ``l.`` / ``r.`` become ``left`` / ``right`` and segment codes in parentheses are dropped:
    ``l.upper lobe(S1+2)`` → ``"Nodule in the left upper lobe."``, ``right lung`` →
    ``"Nodule in the right lung."``. An empty location gives ``"Nodule in the lung."``.

    Args:
        location: the ``location`` column of ``nodules.csv``.
        template: the sentence; ``{where}`` is the side and place (``left upper lobe``).
    """
    text = _SEGMENT.sub(" ", location or "")
    side = jsrt_side(text)
    rest = _SIDE_PREFIX.sub("", text) if side is not None else text
    rest = " ".join(rest.replace(".", " ").split()).lower()
    where = " ".join(part for part in (side, rest or "lung") if part)
    return template.format(where=where)


def _order_key(image: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\0{image}".encode(), digest_size=8).digest()


def jsrt_split(
    images: list[str], nodule: list[int], test_fraction: float = 0.4, seed: int = 0
) -> dict[str, str]:
    """Image → ``train`` / ``test``, stratified by ``nodule`` (see the module docstring)."""
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1]; got {test_fraction}")
    if len(images) != len(nodule):
        raise ValueError(f"{len(images)} images but {len(nodule)} nodule flags")
    out: dict[str, str] = {}
    for group in sorted(set(nodule)):
        members = sorted(
            (im for im, n in zip(images, nodule, strict=True) if n == group),
            key=lambda im: _order_key(im, seed),
        )
        n_test = round(test_fraction * len(members))
        for i, image in enumerate(members):
            out[image] = "test" if i < n_test else "train"
    return out


def _number(value: str, where: str, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{where}: column {column!r} must be a number, got {value!r}") from None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _optional(value: str) -> str | None:
    value = value.strip()
    return value or None


def load_jsrt(
    root: str | Path,
    split: str = "all",
    test_fraction: float = 0.4,
    seed: int = 0,
    reports: bool = False,
) -> list[XrayRecord]:
    """Image-only labelled records of the JSRT database, with the nodule geometry in ``meta``.

    Args:
        root: the folder holding ``nodules.csv`` and ``images/``.
        split: ``train``, ``test`` or ``all`` (every record, each with its split).
        test_fraction: share of the nodule images and of the normals in ``test``.
        seed: the split's seed.
        reports: give each record its finding text as a report ("Nodule in the left upper
            lobe." / the no-nodule text), making it an image–report pair: the text then
            says *where* the nodule is, which the local term and AttMIM's guidance can use.
            False (default): image-only records whose labels become disease-kind prompts.

    Raises:
        DataError: a missing folder or ``nodules.csv`` (named with its absolute path), missing
            columns (the columns found are listed), a bad value (file and line), or an image
            path that leaves ``root``.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be train, test or all; got {split!r}")
    root = Path(root)
    csv_path = (root / "nodules.csv").resolve()
    if not root.is_dir():
        raise DataError(f"{root.resolve()}: JSRT folder not found")
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: file not found (the JSRT folder needs nodules.csv)")
    rows = read_csv_rows(csv_path, JSRT_COLUMNS)
    parsed: list[tuple[str, int, dict[str, Any], Path]] = []
    for line, row in enumerate(rows, start=2):
        where = f"{csv_path}:{line}"
        image = row["image"].strip()
        flag = row["nodule"].strip()
        if flag not in ("0", "1"):
            raise DataError(f"{where}: column 'nodule' must be 0 or 1, got {flag!r}")
        nodule = int(flag)
        meta: dict[str, Any] = {"nodule": nodule, "grid_px": JSRT_GRID}
        if nodule:
            location = row["location"].strip()
            meta.update(
                x=_number(row["x"], where, "x"),
                y=_number(row["y"], where, "y"),
                radius_px=_number(row["radius_px"], where, "radius_px"),
                location=location,
                side=jsrt_side(location),
                finding_text=jsrt_finding_text(location),
            )
            if meta["radius_px"] <= 0:
                raise DataError(f"{where}: radius_px must be > 0, got {row['radius_px']!r}")
        else:
            meta["finding_text"] = JSRT_NO_NODULE_TEXT
        for key in ("malignancy", "diagnosis", "sex"):
            meta[key] = _optional(row[key])
        for key, kind in (("size_mm", float), ("subtlety", int), ("age", int)):
            value = row[key].strip()  # blank or "?" (an unknown age): None
            meta[key] = kind(float(value)) if _is_number(value) else None
        path = resolve_under_root(root, image, where)
        parsed.append((image, nodule, meta, path))
    if not parsed:
        raise DataError(f"{csv_path}: no rows")
    splits = jsrt_split([p[0] for p in parsed], [p[1] for p in parsed], test_fraction, seed)
    records: list[XrayRecord] = []
    for image, nodule, meta, path in parsed:
        labels = {"Nodule": 1, "No Finding": 0} if nodule else {"No Finding": 1, "Nodule": 0}
        record_split = splits[image]
        if split != "all" and record_split != split:
            continue
        records.append(
            XrayRecord(
                image_path=path,
                report=meta["finding_text"] if reports else None,
                labels=labels,
                patient_id=Path(image).stem,
                view="PA",
                split=record_split,  # type: ignore[arg-type]
                source="jsrt",
                meta=meta,
            )
        )
    return records
