"""Manifests as users write them: a spreadsheet's byte-order mark, a number for a path."""

from __future__ import annotations

import json

import pytest

from mmclip.data.records import DataError
from mmclip.data.sources.manifest import load_manifest


def test_a_csv_with_a_utf8_byte_order_mark_keeps_its_image_column(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    path = tmp_path / "m.csv"
    path.write_bytes("\ufeffimage,report\na.png,No acute findings.\n".encode())
    (record,) = load_manifest(path)
    assert record.image_path == tmp_path / "a.png"  # before: the column was '\ufeffimage'
    assert record.report == "No acute findings."


def test_a_number_as_image_path_is_refused_with_its_line(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"image": 12345, "report": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"m\.jsonl:1: 'image' must be a path string; got int"):
        load_manifest(path)


def test_a_truncated_gzipped_manifest_is_named(tmp_path) -> None:
    import gzip

    rows = "".join(json.dumps({"report": f"report {i}"}) + "\n" for i in range(2000))
    path = tmp_path / "m.jsonl.gz"
    path.write_bytes(gzip.compress(rows.encode())[:-200])
    with pytest.raises(DataError, match=r"m\.jsonl\.gz: truncated or corrupt"):
        load_manifest(path)


def test_an_unknown_adapter_option_lists_the_valid_ones(tmp_path) -> None:
    from mmclip.data.sources import load_source

    with pytest.raises(ValueError, match=r"source 'kermany' has no option\(s\) \['bogus'\]"):
        load_source("kermany", tmp_path, bogus=1)


@pytest.mark.parametrize("value", [0, False, [], {"path": "a.png"}])
def test_any_non_string_image_value_is_refused_not_taken_as_absent(tmp_path, value) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"image": value, "report": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"m\.jsonl:1: 'image' must be a path string"):
        load_manifest(path)  # before: 0 / false / [] silently made a text-only record


def test_a_number_as_mask_path_is_refused_with_its_line(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"image": "a.png", "mask": 7}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"m\.jsonl:1: 'mask' must be a path string; got int 7"):
        load_manifest(path)


def test_a_truncated_gzipped_csv_manifest_is_named(tmp_path) -> None:
    import gzip

    rows = "image,report\n" + "".join(f"a{i}.png,report {i}\n" for i in range(3000))
    path = tmp_path / "m.csv.gz"
    path.write_bytes(gzip.compress(rows.encode())[:-200])
    with pytest.raises(DataError, match=r"m\.csv\.gz: truncated or corrupt \(EOFError"):
        load_manifest(path)


def test_a_file_named_gz_that_is_not_gzip_is_named(tmp_path) -> None:
    path = tmp_path / "m.csv.gz"
    path.write_text("image,report\na.png,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"m\.csv\.gz: truncated or corrupt \(BadGzipFile"):
        load_manifest(path)


def test_a_csv_manifest_that_is_not_utf8_is_named(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes("image,report\na.png,Épanchement pleural\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"m\.csv: not UTF-8 text"):
        load_manifest(path)


def test_adapter_csvs_share_the_defences(tmp_path) -> None:
    import gzip

    from mmclip.data.records import read_csv_rows

    path = tmp_path / "t.csv.gz"
    text = "\ufeffa,b\n" + "".join(f"{i},{i}\n" for i in range(3000))
    path.write_bytes(gzip.compress(text.encode()))
    assert read_csv_rows(path, ["a", "b"])[0] == {"a": "0", "b": "0"}  # BOM dropped in .gz too
    path.write_bytes(gzip.compress(text.encode())[:-100])
    with pytest.raises(DataError, match=r"t\.csv\.gz: truncated or corrupt"):
        read_csv_rows(path, ["a", "b"])


def test_split_lists_with_a_byte_order_mark_keep_their_first_entry(tmp_path) -> None:
    from mmclip.data.sources import load_covidx

    (tmp_path / "train.txt").write_bytes("\ufeffp1 a.png positive x\n".encode())
    (record,) = load_covidx(tmp_path)
    assert record.patient_id == "p1"  # before: '\ufeffp1'


def test_adapter_on_error_values_are_validated(tmp_path) -> None:
    from mmclip.data.sources import load_source

    (tmp_path / "m.jsonl").write_text(json.dumps({"report": "x"}) + "\n", encoding="utf-8")
    for name, root in (("manifest", tmp_path / "m.jsonl"), ("iu-xray", tmp_path)):
        with pytest.raises(ValueError, match=r"on_error must be 'raise' or 'skip'; got 'rasie'"):
            load_source(name, root, on_error="rasie")
