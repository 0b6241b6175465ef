from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mmclip.batch import SampleKind
from mmclip.data import DataError, SkipCounter, XrayRecord, patient_split, resolve_under_root
from mmclip.data.records import normalize_labels, read_csv_rows


def test_patient_split_is_deterministic_and_proportional() -> None:
    splits = [patient_split(f"p{i}", 0.2, 0.1) for i in range(5000)]
    assert splits == [patient_split(f"p{i}", 0.2, 0.1) for i in range(5000)]
    c = Counter(splits)
    assert abs(c["val"] / 5000 - 0.2) < 0.03 and abs(c["test"] / 5000 - 0.1) < 0.03
    assert patient_split("x", 0.0, 0.0) == "train"
    with pytest.raises(ValueError):
        patient_split("x", 0.7, 0.6)


def test_resolve_under_root(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert resolve_under_root(tmp_path, "a/b.jpg", "m") == (tmp_path / "a/b.jpg").resolve()
    assert resolve_under_root(tmp_path, tmp_path / "a/b.jpg", "m").name == "b.jpg"
    for bad in ("../x.jpg", "a/../../x.jpg", "/etc/passwd", ""):
        with pytest.raises(DataError, match="m:"):
            resolve_under_root(tmp_path, bad, "m")
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(DataError, match="escapes"):
        resolve_under_root(tmp_path, "link/passwd", "m")


def test_labels_and_record_validation() -> None:
    assert normalize_labels({"A": "1.0", "B": "", "C": -1, "D": None, "E": "nan"}, "f") == {
        "A": 1,
        "C": -1,
    }
    with pytest.raises(DataError, match="f: label 'A'"):
        normalize_labels({"A": "2"}, "f")
    with pytest.raises(DataError):
        XrayRecord(None, None)
    assert XrayRecord(Path("x.jpg"), "r").kind == SampleKind.PAIRED
    assert XrayRecord(Path("x.jpg"), None, {"A": 1}).kind == SampleKind.IMAGE_PROMPT
    assert XrayRecord(Path("x.jpg"), None).kind == SampleKind.IMAGE_ONLY
    assert XrayRecord(None, "r").kind == SampleKind.TEXT_ONLY


def test_csv_missing_columns_named(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"t\.csv: missing columns \['c'\]"):
        read_csv_rows(path, ["a", "c"])
    with pytest.raises(DataError, match="not found"):
        read_csv_rows(tmp_path / "none.csv", ["a"])


def test_skip_counter_logs(caplog: pytest.LogCaptureFixture) -> None:
    skips = SkipCounter()
    skips.add("bad", "f1")
    skips.add("bad", "f2")
    skips.report("epoch 0")
    assert skips.total == 2 and "skipped 2 bad samples" in caplog.text and "f1" in caplog.text
