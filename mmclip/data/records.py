"""The record type every dataset adapter yields, plus the helpers adapters share.

A :class:`XrayRecord` is one sample before decoding: an image path and/or a report text,
finding labels, and the patient, view, split and source it came from. Adapters
(:mod:`mmclip.data.sources`) turn each public dataset layout into a list of records; the
loader (:mod:`mmclip.data.loader`) turns records into :class:`~mmclip.batch.MMCLIPBatch`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mmclip.batch import SampleKind
from mmclip.findings import CHEXPERT_FINDINGS, NO_FINDING

__all__ = [
    "CHEXPERT_FINDINGS",
    "DICOM_SUFFIXES",
    "IMAGE_SUFFIXES",
    "NO_FINDING",
    "DataError",
    "ErrorPolicy",
    "SkipCounter",
    "Split",
    "XrayRecord",
    "check_error_policy",
    "normalize_labels",
    "normalize_split",
    "open_text",
    "patient_split",
    "read_csv_rows",
    "read_jsonl",
    "resolve_under_root",
    "text_errors",
]

logger = logging.getLogger(__name__)

Split = Literal["train", "val", "test"]
ErrorPolicy = Literal["raise", "skip"]

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
"""Suffixes (lower case) of the raster image files mmclip reads: the images of a folder
dataset, what a manifest column of image paths looks like, what ``--root`` refuses as one
image. Both decoders read them (Pillow; DALI, which reads no GIF). DICOM files:
:data:`DICOM_SUFFIXES`."""

DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".dic")
"""Suffixes (lower case) of DICOM files (a file with the ``DICM`` magic at byte 128 is one,
too: :func:`mmclip.models.preprocess.is_dicom_file`)."""


_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


class DataError(ValueError):
    """Bad input data: names the file (and row / field) that is wrong."""


@dataclass
class XrayRecord:
    """One chest X-ray sample before decoding.

    Attributes:
        image_path: absolute path of a JPEG / PNG image, or ``None`` for a report without image.
        report: free-text report (or clinical note), or ``None`` for an image without text.
        labels: finding → ``1`` positive, ``0`` negative, ``-1`` uncertain; a finding that is
            missing from the mapping is unmentioned / unknown.
        patient_id: patient identifier (splits are made per patient), or ``None``.
        view: acquisition view (``PA``, ``AP``, ``LATERAL``, …) or ``None``.
        split: ``train`` / ``val`` / ``test``.
        source: the adapter / dataset name (``mimic-cxr``, ``chexpert``, ``synthetic``, …).
        meta: anything else an adapter keeps (lesion mask path, boxes, study id, …).
    """

    image_path: Path | None
    report: str | None
    labels: dict[str, int] = field(default_factory=dict)
    patient_id: str | None = None
    view: str | None = None
    split: Split = "train"
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image_path is None and self.report is None:
            raise DataError(f"{self.source or 'record'}: a record needs an image or a report")
        if self.split not in ("train", "val", "test"):
            raise DataError(f"{self.source or 'record'}: unknown split {self.split!r}")
        for name, value in self.labels.items():
            if value not in (-1, 0, 1):
                raise DataError(f"{self.source or 'record'}: label {name!r} = {value!r}")

    @property
    def kind(self) -> SampleKind:
        """Which :class:`~mmclip.batch.SampleKind` this record becomes."""
        if self.image_path is None:
            return SampleKind.TEXT_ONLY
        if self.report is not None:
            return SampleKind.PAIRED
        if self.labels:
            return SampleKind.IMAGE_PROMPT
        return SampleKind.IMAGE_ONLY

    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        """A JSON-able dict (the manifest format); paths relative to ``root`` when given
        (absolute when they lie outside it)."""

        def rel(p: Path | None) -> str | None:
            if p is None:
                return None
            if root is None:
                return str(p)
            try:
                return p.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:  # outside root: kept absolute
                return str(p.resolve())

        out: dict[str, Any] = {
            "image": rel(self.image_path),
            "report": self.report,
            "labels": dict(self.labels),
            "patient_id": self.patient_id,
            "view": self.view,
            "split": self.split,
        }
        for key, value in self.meta.items():
            out[key] = rel(value) if isinstance(value, Path) else value
        return out


def normalize_split(value: str, where: str) -> Split:
    """``validate`` / ``valid`` / ``dev`` → ``val`` …; anything unknown is a :class:`DataError`."""
    split = _SPLIT_ALIASES.get(value.strip().lower())
    if split is None:
        raise DataError(f"{where}: unknown split {value!r}")
    return split  # type: ignore[return-value]


def normalize_labels(raw: Mapping[str, Any], where: str) -> dict[str, int]:
    """Label mapping with blank / ``None`` / NaN dropped and ``1.0`` / ``"-1"`` made ints.

    Raises :class:`DataError` naming ``where`` for any other value.
    """
    out: dict[str, int] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if isinstance(value, str):
            value = value.strip()
            if value == "" or value.lower() == "nan":
                continue
        try:
            number = float(value)
        except (TypeError, ValueError) as err:
            raise DataError(f"{where}: label {name!r} has value {value!r}") from err
        if number != number:  # NaN
            continue
        if number not in (-1.0, 0.0, 1.0):
            raise DataError(f"{where}: label {name!r} has value {value!r} (expected 1, 0, -1)")
        out[name] = int(number)
    return out


def patient_split(
    patient_id: str, val_fraction: float = 0.1, test_fraction: float = 0.1, salt: str = ""
) -> Split:
    """Deterministic split of a patient: a hash of the id picks train / val / test.

    The same patient always lands in the same split (on every machine and Python version:
    BLAKE2b, not ``hash``), so no patient is in two splits.
    """
    if not (val_fraction >= 0.0 and test_fraction >= 0.0 and val_fraction + test_fraction <= 1.0):
        raise ValueError(f"bad split fractions val={val_fraction} test={test_fraction}")
    digest = hashlib.blake2b(f"{salt}\0{patient_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def resolve_under_root(root: Path, relative: str | Path, where: str) -> Path:
    """``root / relative`` resolved; a path that escapes ``root`` is a :class:`DataError`.

    Absolute paths are allowed only when they lie under ``root``. Symlinks are resolved
    before the check, so a link pointing out of the dataset is refused too.
    """
    root_resolved = root.resolve()
    text = str(relative).strip()
    if not text:
        raise DataError(f"{where}: empty path")
    path = Path(text)
    candidate = (path if path.is_absolute() else root_resolved / path).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise DataError(f"{where}: path {text!r} escapes the dataset root {root_resolved}")
    return candidate


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, transparently gunzipping ``*.gz`` (MIMIC ships ``.csv.gz``); a UTF-8
    byte-order mark (what spreadsheet programs write) is dropped."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


@contextmanager
def text_errors(path: Path) -> Iterator[None]:
    """Turn the errors of reading a text file into one :class:`DataError` naming it.

    A truncated or corrupt ``.gz`` (``EOFError``, ``BadGzipFile``), bytes that are not UTF-8
    (a spreadsheet's "CSV" in a legacy code page), a CSV the parser refuses (a NUL byte) or an
    I/O error become ``DataError("<path>: ...")`` instead of a traceback.
    """
    try:
        yield
    except UnicodeDecodeError as err:
        raise DataError(
            f'{path}: not UTF-8 text ({err.reason}); save it as UTF-8 ("CSV UTF-8")'
        ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt ({type(err).__name__}: {err})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    except csv.Error as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from None


def read_csv_rows(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """All rows of a CSV as dicts; missing file, missing columns, or a truncated / corrupt /
    non-UTF-8 file → :class:`DataError` naming it."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with text_errors(path), open_text(path) as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise DataError(f"{path}: missing columns {missing} (has {list(columns)})")
        return list(reader)


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; bad JSON → :class:`DataError`."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with text_errors(path):
        handle = open_text(path)
    with handle:
        lines = enumerate(handle, start=1)
        while True:
            try:
                with text_errors(path):  # truncated .gz, bad bytes
                    number, line = next(lines)
            except StopIteration:
                return
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}: invalid JSON ({err.msg})") from err
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{number}: expected a JSON object")
            yield number, obj


ERROR_POLICIES: tuple[str, ...] = ("raise", "skip")


def check_error_policy(value: object, where: str = "on_error") -> None:
    """Raise ``ValueError`` unless ``value`` is ``"raise"`` or ``"skip"`` (a typo such as
    ``"rasie"`` must not silently mean skip)."""
    if value not in ERROR_POLICIES:
        raise ValueError(f"{where} must be 'raise' or 'skip'; got {value!r}")


class SkipCounter:
    """Counts samples skipped for bad data (``on_error="skip"``), per reason, and reports them.

    Nothing is dropped without a word, and skipping that was asked for is not noisy: each skip
    is logged at DEBUG level as it happens (``-v`` shows them), naming its file and reason;
    :meth:`report` logs one WARNING line with the totals of the current epoch per reason and a
    few examples (the loaders call it at the end of each epoch, the adapters after reading)
    and :meth:`report_run` the totals of the whole run (the trainer calls it when the run
    ends, usually inside an epoch).

    Attributes:
        counts: skips of the current epoch, by reason (``"missing image file"``,
            ``"undecodable image"``, ``"not a regular file"``, ``"bad manifest row"``, …).
        run_counts: skips since the start of the run (kept across :meth:`reset` and in
            :meth:`state_dict`, so a resumed run keeps counting).
        examples: the first ``max_examples`` skipped samples of the epoch (file and reason).
    """

    def __init__(self, max_examples: int = 20) -> None:
        self.counts: Counter[str] = Counter()
        self.run_counts: Counter[str] = Counter()
        self.examples: list[str] = []
        self.max_examples = max_examples

    def add(self, reason: str, detail: str) -> None:
        """Record one skipped sample; ``reason`` is a short key, ``detail`` names the file."""
        self.counts[reason] += 1
        self.run_counts[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(f"{detail} ({reason})")
        logger.debug("skipped a sample (%s): %s", reason, detail)

    @property
    def total(self) -> int:
        """Skipped samples of the current epoch."""
        return sum(self.counts.values())

    @property
    def run_total(self) -> int:
        """Skipped samples since the start of the run."""
        return sum(self.run_counts.values())

    def report(self, context: str = "") -> None:
        """Log the epoch's totals per reason at WARNING level (nothing when none was skipped)."""
        if self.total:
            logger.warning(
                "%sskipped %d bad samples %s; e.g. %s",
                f"{context}: " if context else "",
                self.total,
                dict(self.counts),
                "; ".join(self.examples[:5]),
            )

    def report_run(self, context: str = "") -> None:
        """Log the run's totals per reason at WARNING level, with examples of the current
        epoch's (nothing when none was skipped)."""
        if self.run_total:
            logger.warning(
                "%sskipped %d bad samples in this run %s%s",
                f"{context}: " if context else "",
                self.run_total,
                dict(self.run_counts),
                f"; e.g. {'; '.join(self.examples[:5])}" if self.examples else "",
            )

    def state_dict(self) -> dict[str, Any]:
        """Counts of the epoch and of the run, for checkpoints."""
        return {"counts": dict(self.counts), "run_counts": dict(self.run_counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore counts (a checkpoint without run totals: the epoch's counts)."""
        self.counts = Counter(state.get("counts", {}))
        self.run_counts = Counter(state.get("run_counts", state.get("counts", {})))

    def reset(self) -> None:
        """Forget the epoch's counts (start of an epoch); the run's totals stay."""
        self.counts.clear()
        self.examples.clear()
