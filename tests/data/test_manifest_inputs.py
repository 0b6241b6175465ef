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


# --------------------------------------------------------------------------------------------
# column problems: one error naming the column, never a row; unlisted label columns reported
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_misnamed_image_column_is_one_error_naming_it_and_the_columns(tmp_path, on_error):
    (tmp_path / "a.png").write_bytes(b"x")
    path = tmp_path / "mine.csv"
    path.write_text("path,report\na.png,Small effusion.\na.png,\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_manifest(path, on_error=on_error)  # skip: not one row blamed, nothing kept text-only
    message = str(info.value)
    assert message.startswith(f"{path}: no 'image' column, but 'path' looks like the image paths")
    assert "columns found: ['path', 'report']" in message
    assert "mine.csv:3" not in message


def test_an_image_column_found_by_its_values_and_in_jsonl(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("xray_file,report\nimg/a.PNG,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"'xray_file' looks like the image paths"):
        load_manifest(path)
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"filename": "a.png", "report": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"m\.jsonl: no 'image' column, but 'filename'"):
        load_manifest(path, on_error="skip")


def test_a_misnamed_report_column_is_named(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("image,text\na.png,Small effusion.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no 'report' column, but 'text' looks like the report"):
        load_manifest(path)


def test_a_file_without_image_or_report_columns_lists_the_columns_found(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"columns found: \['foo', 'bar'\]"):
        load_manifest(path)


def test_a_missing_label_column_lists_the_columns_found(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("image,report,edema\na.png,x,1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"label columns \['Edema'\] not found \(columns found"):
        load_manifest(path, label_columns=["Edema"])


def test_a_bad_image_in_a_paired_row_skips_the_whole_row(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    rows = [{"image": 7, "report": "paired"}, {"image": "", "report": "text only"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (record,) = load_manifest(path, on_error="skip")
    assert record.report == "text only"  # the paired row is gone, not kept without its image


def test_unlisted_label_columns_are_named_in_one_warning(tmp_path, caplog) -> None:
    path = tmp_path / "m.csv"
    rows = "image,report,Edema,Pneumonia,is_flagged,site\n"
    rows += "a.png,x,1,0,1,north\nb.png,y,,1,0,south\n"
    path.write_text(rows, encoding="utf-8")
    with caplog.at_level("WARNING", logger="mmclip.data.sources.manifest"):
        records = load_manifest(path, label_columns=["Edema"])
        load_manifest(path, label_columns=["Edema"])  # the same file again: said once
    warnings = [r.getMessage() for r in caplog.records if "look like labels" in r.getMessage()]
    assert len(warnings) == 1
    assert "['Pneumonia', 'is_flagged']" in warnings[0] and "label_columns=" in warnings[0]
    assert "site" not in warnings[0] and "'Edema'" not in warnings[0]
    assert records[0].labels == {"Edema": 1} and records[0].meta["Pneumonia"] == "0"


def test_label_columns_work_in_jsonl_too(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"report": "x", "Edema": 1}) + "\n", encoding="utf-8")
    (record,) = load_manifest(path, label_columns=["Edema"])
    assert record.labels == {"Edema": 1} and "Edema" not in record.meta
    with pytest.raises(DataError, match=r"label keys \['Oedema'\] are in no row"):
        load_manifest(path, label_columns=["Oedema"])


def test_manifest_base_is_the_closest_folder_holding_every_file(tmp_path) -> None:
    from mmclip.data.records import XrayRecord
    from mmclip.data.sources.manifest import manifest_base

    (tmp_path / "set" / "img").mkdir(parents=True)
    (tmp_path / "cache").mkdir()
    inside = XrayRecord(image_path=tmp_path / "set" / "img" / "a.png", report=None)
    outside = XrayRecord(image_path=tmp_path / "cache" / "b.png", report=None)
    assert manifest_base(tmp_path / "set", [inside]) == (tmp_path / "set").resolve()
    (tmp_path / "set" / "labels.csv").write_text("", encoding="utf-8")
    assert manifest_base(tmp_path / "set" / "labels.csv", [inside]) == (tmp_path / "set").resolve()
    assert manifest_base(tmp_path / "set", [inside, outside]) == tmp_path.resolve()
