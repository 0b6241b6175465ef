"""Generic manifests: a CSV or JSONL file listing images, reports and labels.

JSONL (one object per line; what :func:`mmclip.data.synthetic.write_dataset` writes)::

    {"image": "images/0001.jpg", "report": "FINDINGS: ...", "labels": {"Cardiomegaly": 1},
     "patient_id": "p1", "view": "PA", "split": "train", "mask": "masks/0001.png"}

CSV: columns ``image``, ``report``, ``patient_id``, ``view``, ``split`` (any may be absent
except that ``image`` or ``report`` must be there), ``labels`` as a JSON object, and / or the
columns named in ``label_columns``.

Every path resolves under the dataset root (the manifest's folder unless ``root`` is given);
``../`` or an absolute path elsewhere is a :class:`~mmclip.data.records.DataError`. A row
without image and report, an empty report, or a bad label → a :class:`DataError` naming the
file and line, or with ``on_error="skip"`` a counted skip. Rows without ``split`` are split by
a hash of the patient id (of the image path when there is none).

Column problems are file errors, raised once whatever ``on_error`` says, never blamed on a
row: a missing ``image`` column while another column looks like image paths (``path``,
``filename``, ``Image``, values ending in ``.png`` …), a missing ``report`` column beside one
named like a report (``text``, ``caption`` …), or a listed label column that is not there; the
message names the column and the columns found. A row whose image is bad is skipped whole
with ``on_error="skip"``: it is never kept as a text-only record (only a blank ``image`` cell
makes one). Columns that look like finding labels (a finding's name, or only 1 / 0 / -1
values) but are not in ``label_columns`` are kept as metadata and named in one warning.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmclip.data.records import (
    CHEXPERT_FINDINGS,
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    DataError,
    ErrorPolicy,
    SkipCounter,
    XrayRecord,
    check_error_policy,
    normalize_labels,
    normalize_split,
    open_text,
    patient_split,
    read_jsonl,
    resolve_under_root,
    text_errors,
)
from mmclip.findings import CHESTXRAY14_FINDINGS, match_finding

__all__ = ["PATH_FIELDS", "load_manifest", "manifest_base", "write_manifest"]

logger = logging.getLogger(__name__)

PATH_FIELDS: tuple[str, ...] = ("mask",)
"""Extra fields that hold paths: resolved under the root like ``image``."""

_KNOWN = {"image", "report", "labels", "patient_id", "view", "split"}


_IMAGE_NAMES = {
    "path", "paths", "image_path", "imagepath", "image_paths", "images", "img", "img_path",
    "file", "filename", "file_name", "filepath", "file_path", "image_file", "image_name",
    "dicom", "dicom_path", "png", "jpg", "jpeg", "xray", "x-ray",
}  # fmt: skip
_REPORT_NAMES = {"text", "texts", "report_text", "reports", "caption", "captions", "impression"}
_LABEL_VALUES = {"0", "1", "-1", "0.0", "1.0", "-1.0"}
_WARNED: set[tuple[str, tuple[str, ...]]] = set()


def _looks_like_image(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().endswith(
        IMAGE_SUFFIXES + DICOM_SUFFIXES
    )


def _check_fields(path: Path, fields: Sequence[str], first: Mapping[str, Any] | None) -> None:
    """A misnamed ``image`` / ``report`` column is one error naming it and the columns found
    (before, each row was blamed for having neither image nor report)."""
    found = list(fields)
    others = [f for f in found if f not in _KNOWN and f not in PATH_FIELDS]
    if "image" not in found:
        named = [f for f in others if f.strip().lower() in _IMAGE_NAMES | {"image"}]
        valued = [f for f in others if first is not None and _looks_like_image(first.get(f))]
        suspects = named + [f for f in valued if f not in named]
        if suspects:
            raise DataError(
                f"{path}: no 'image' column, but {suspects[0]!r} looks like the image paths; "
                f"rename it to 'image' (columns found: {found})"
            )
    if "report" not in found:
        suspects = [f for f in others if f.strip().lower() in _REPORT_NAMES | {"report"}]
        if suspects:
            raise DataError(
                f"{path}: no 'report' column, but {suspects[0]!r} looks like the report text; "
                f"rename it to 'report' (columns found: {found})"
            )
    if "image" not in found and "report" not in found:
        raise DataError(f"{path}: needs an 'image' or a 'report' column (columns found: {found})")


def _csv_rows(path: Path, label_columns: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    # text_errors: a truncated .csv.gz or a non-UTF-8 CSV is one DataError naming the file
    with text_errors(path), open_text(path) as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        missing = [c for c in label_columns if c not in columns]
        if missing:
            raise DataError(f"{path}: label columns {missing} not found (columns found: {columns})")
        for number, row in enumerate(reader, start=2):
            # A blank CSV cell means "absent" (an image-only row has an empty report cell).
            obj: dict[str, Any] = {k: (v or None) for k, v in row.items() if k is not None}
            if number == 2:
                _check_fields(path, columns, obj)
            labels: dict[str, Any] = {}
            if obj.get("labels"):
                try:
                    labels = json.loads(obj["labels"])
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{number}: 'labels' is not JSON ({err.msg})") from err
            for column in label_columns:
                labels[column] = obj.pop(column) or ""
            obj["labels"] = labels
            yield number, obj
        if reader.line_num <= 1:  # a header without rows: still check its columns
            _check_fields(path, columns, None)


def _jsonl_rows(path: Path, label_columns: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    seen: set[str] = set()
    first = True
    for number, obj in read_jsonl(path):
        if first:
            _check_fields(path, list(obj), obj)
            first = False
        if label_columns:
            labels = obj.get("labels") or {}
            if isinstance(labels, dict):
                labels = dict(labels)
                for column in label_columns:
                    if column in obj:
                        seen.add(column)
                        labels[column] = obj.pop(column)
                obj["labels"] = labels
        yield number, obj
    missing = [c for c in label_columns if c not in seen]
    if missing and not first:
        raise DataError(f"{path}: label keys {missing} are in no row")


def _is_finding_name(name: str) -> bool:
    """Whether a column name spells a finding (:func:`mmclip.findings.match_finding`)."""
    from mmclip.text.prompts import FINDING_PHRASES

    known = (*CHEXPERT_FINDINGS, *CHESTXRAY14_FINDINGS, *FINDING_PHRASES)
    return match_finding(name, known) is not None


def _label_like(values: Iterable[Any]) -> bool:
    present = [v for v in values if v is not None and v != ""]
    if not present:
        return False
    for value in present:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return False
        if str(value).strip() not in _LABEL_VALUES:
            return False
    return True


def _warn_unlisted_labels(path: Path, records: Sequence[XrayRecord]) -> None:
    """One warning naming the columns that look like labels but are kept as metadata."""
    keys: dict[str, list[Any]] = {}
    for record in records:
        for key, value in record.meta.items():
            if key not in PATH_FIELDS:
                keys.setdefault(key, []).append(value)
    unlisted = [k for k, v in keys.items() if _is_finding_name(k) or _label_like(v)]
    said = (str(path.resolve()), tuple(unlisted))
    if unlisted and said not in _WARNED:  # once per file, though a command reads it per split
        _WARNED.add(said)
        listed = ", ".join(unlisted)
        logger.warning(
            "%s: columns %s look like labels but are not read as labels (kept as "
            "metadata; zero-shot and the probe see no positives for them); to use them, pass "
            "label_columns=[%s] (CLI: --option 'label_columns=[%s]')",
            path,
            unlisted,
            listed,
            listed,
        )


def load_manifest(
    path: str | Path,
    root: str | Path | None = None,
    label_columns: Sequence[str] = (),
    source: str | None = None,
    on_error: ErrorPolicy = "raise",
    skips: SkipCounter | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    image_root: str | Path | None = None,
) -> list[XrayRecord]:
    """Records of a ``.jsonl`` / ``.csv`` (optionally ``.gz``) manifest.

    Relative paths in the rows are resolved under ``root`` (or ``image_root``, the same
    setting under a name that does not clash with a config's ``root`` = the manifest
    file), by default the manifest's folder; a path that leaves it is an error.
    """
    check_error_policy(on_error)
    path = Path(path)
    if root is not None and image_root is not None and Path(root) != Path(image_root):
        raise ValueError("give the manifest's base folder as root or image_root, not both")
    root = root if root is not None else image_root
    base = Path(root) if root is not None else path.parent
    skips = skips if skips is not None else SkipCounter()
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        rows = _jsonl_rows(path, label_columns)
    elif name.endswith(".csv"):
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        rows = _csv_rows(path, label_columns)
    else:
        raise DataError(f"{path}: manifest must be .jsonl or .csv")
    src = source or path.stem
    records: list[XrayRecord] = []
    for number, obj in rows:
        where = f"{path}:{number}"
        try:
            records.append(_record(obj, base, where, src, val_fraction, test_fraction))
        except DataError as err:
            if on_error == "raise" or "escapes the dataset root" in str(err):
                raise
            skips.add("bad manifest row", str(err))
    skips.report(str(path))
    _warn_unlisted_labels(path, records)
    return records


def _record(
    obj: dict[str, Any], root: Path, where: str, source: str, val: float, test: float
) -> XrayRecord:
    image_value = obj.get("image")
    if image_value == "":  # a blank CSV cell / an empty string: no image
        image_value = None
    if image_value is not None and not isinstance(image_value, str):  # 12345, 0, false, [...]
        raise DataError(
            f"{where}: 'image' must be a path string; got {type(image_value).__name__} "
            f"{image_value!r}"
        )
    report = obj.get("report")
    if report is not None and not isinstance(report, str):
        raise DataError(f"{where}: 'report' must be a string")
    if report is not None and not report.strip():
        raise DataError(f"{where}: empty report")
    if image_value is None and report is None:
        raise DataError(f"{where}: row has neither 'image' nor 'report'")
    image = resolve_under_root(root, image_value, where) if image_value is not None else None
    raw_labels = obj.get("labels") or {}
    if not isinstance(raw_labels, dict):
        raise DataError(f"{where}: 'labels' must be an object")
    labels = normalize_labels(raw_labels, where)
    patient = str(obj["patient_id"]) if obj.get("patient_id") not in (None, "") else None
    split_value = obj.get("split")
    if split_value:
        split = normalize_split(str(split_value), where)
    else:
        split = patient_split(patient or str(image_value or report), val, test)
    meta: dict[str, Any] = {}
    for key, value in obj.items():
        if key in _KNOWN:
            continue
        if key in PATH_FIELDS and value is not None and value != "":
            if not isinstance(value, str):
                raise DataError(
                    f"{where}: {key!r} must be a path string; got {type(value).__name__} {value!r}"
                )
            meta[key] = resolve_under_root(root, value, where)
        else:
            meta[key] = value
    view = str(obj["view"]) if obj.get("view") else None
    return XrayRecord(image, report, labels, patient, view, split, source, meta)


def manifest_base(root: str | Path, records: Sequence[XrayRecord]) -> Path:
    """The folder a manifest of ``records`` has its paths relative to: the dataset folder
    ``root`` (the folder of ``root`` when it is a file), or the closest folder holding it and
    every file of the records (a cache or image folder outside ``root``). Absolute.
    """
    root = Path(root).resolve()
    paths = [str(root if root.is_dir() else root.parent)]
    for r in records:
        if r.image_path is not None:
            paths.append(str(Path(r.image_path).resolve().parent))
        paths += [str(Path(v).resolve().parent) for v in r.meta.values() if isinstance(v, Path)]
    return Path(os.path.commonpath(paths))


def write_manifest(records: Sequence[XrayRecord], path: str | Path, base: str | Path) -> Path:
    """Write ``records`` as a JSONL manifest (atomically), paths relative to ``base``.

    :func:`load_manifest` with ``image_root=base`` reads it back.
    """
    from mmclip.io import atomic_write_text

    lines = [json.dumps(r.to_json(Path(base)), sort_keys=True, default=str) for r in records]
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
