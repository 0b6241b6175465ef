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
