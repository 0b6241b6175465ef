"""Each adapter on a tiny fixture written in the dataset's real layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmclip.batch import SampleKind
from mmclip.data import DataError, SkipCounter, list_sources, load_source
from mmclip.data.records import CHEXPERT_FINDINGS
from mmclip.data.sources import (
    load_chexpert,
    load_covid_collection,
    load_covidx,
    load_image_folder,
    load_iu_xray,
    load_kermany,
    load_manifest,
    load_mimic_cxr,
    load_nih_chestxray14,
    load_rsna_pneumonia,
    load_siim_pneumothorax,
)
from mmclip.data.sources.dicom import dicom_to_uint8


def _img(path: Path, value: int = 100, size: tuple[int, int] = (24, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(path)
    return path


def _dcm(path: Path, patient: str, monochrome1: bool = False) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.PatientID = patient
    ds.Modality = "CR"
    ds.Rows, ds.Columns = 16, 12
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    pixels = np.tile(np.arange(12, dtype=np.uint16) * 300, (16, 1))
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _csv(path: Path, header: list[str], rows: list[list[object]], gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)


def test_registry_lists_every_adapter() -> None:
    assert {"mimic-cxr", "chexpert", "nih-chestxray14", "rsna-pneumonia", "siim-acr", "covidx",
            "iu-xray", "covid-collection", "kermany", "jsrt", "image-folder", "manifest",
            "synthetic"} == set(
        list_sources()
    )  # fmt: skip
    with pytest.raises(ValueError, match="unknown source"):
        load_source("nope", ".")


def test_mimic_cxr(tmp_path: Path) -> None:
    labels = ["" for _ in CHEXPERT_FINDINGS]
    labels[CHEXPERT_FINDINGS.index("Cardiomegaly")] = "1.0"
    labels[CHEXPERT_FINDINGS.index("Edema")] = "-1.0"
    _csv(tmp_path / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"],
         [["d1", "50000001", "10000032", "train"], ["d2", "50000001", "10000032", "train"],
          ["d3", "50000002", "11000001", "validate"]], gz=True)  # fmt: skip
    _csv(tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz", ["dicom_id", "subject_id", "study_id",
         "ViewPosition"], [["d1", "10000032", "50000001", "PA"], ["d2", "10000032", "50000001",
         "LATERAL"], ["d3", "11000001", "50000002", "AP"]], gz=True)  # fmt: skip
    _csv(tmp_path / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id",
         *CHEXPERT_FINDINGS], [["10000032", "50000001", *labels]], gz=True)  # fmt: skip
    for subject, study in (("10000032", "50000001"), ("11000001", "50000002")):
        report = tmp_path / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(f"FINDINGS: study {study}.\nIMPRESSION: cardiomegaly.\n")
    records = load_mimic_cxr(tmp_path)
    assert [r.meta["dicom_id"] for r in records] == ["d1", "d3"]  # lateral filtered out
    first = records[0]
    assert first.image_path == tmp_path / "files/p10/p10000032/s50000001/d1.jpg"
    assert first.labels == {"Cardiomegaly": 1, "Edema": -1}
    assert first.kind == SampleKind.PAIRED and "50000001" in (first.report or "")
    assert records[1].split == "val" and records[1].labels == {}
    assert len(load_mimic_cxr(tmp_path, views=None)) == 3
    (tmp_path / "files/p11/p11000001/s50000002.txt").write_text("  ")
    with pytest.raises(DataError, match=r"s50000002\.txt: empty report"):
        load_mimic_cxr(tmp_path)


def test_chexpert(tmp_path: Path) -> None:
    root = tmp_path / "CheXpert-v1.0-small"
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_FINDINGS]
    labels = ["" for _ in CHEXPERT_FINDINGS]
    labels[CHEXPERT_FINDINGS.index("Pleural Effusion")] = "1.0"
    labels[CHEXPERT_FINDINGS.index("Atelectasis")] = "-1.0"
    labels[CHEXPERT_FINDINGS.index("Pneumothorax")] = "0.0"
    _csv(root / "train.csv", header, [
        ["CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", "F", 68, "Frontal",
         "AP", *labels],
        ["CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg", "F", 68, "Lateral",
         "", *labels]])  # fmt: skip
    _csv(root / "valid.csv", header, [
        ["CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", "M", 73, "Frontal",
         "PA", *["0.0"] * 14]])  # fmt: skip
    records = load_chexpert(root)
    assert len(records) == 3
    r = records[0]
    assert r.image_path == (root / "train/patient00001/study1/view1_frontal.jpg").resolve()
    assert r.labels == {"Pleural Effusion": 1, "Atelectasis": -1, "Pneumothorax": 0}
    assert r.patient_id == "patient00001" and r.view == "AP" and r.kind == SampleKind.IMAGE_PROMPT
    assert records[2].split == "val"
    assert len(load_chexpert(root, frontal_only=True)) == 2
    _csv(root / "valid.csv", ["Path", "Sex"], [["x", "M"]])
    with pytest.raises(DataError, match=r"valid\.csv: missing columns"):
        load_chexpert(root)


def test_nih(tmp_path: Path) -> None:
    header = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age",
              "Patient Gender", "View Position"]  # fmt: skip
    rows = [["00000001_000.png", "Cardiomegaly|Effusion", 0, 1, 58, "M", "PA"],
            ["00000002_000.png", "No Finding", 0, 2, 81, "M", "AP"],
            ["00000003_000.png", "Hernia", 0, 3, 74, "F", "PA"]]  # fmt: skip
    _csv(tmp_path / "Data_Entry_2017.csv", header, rows)
    (tmp_path / "train_val_list.txt").write_text("00000001_000.png\n00000002_000.png\n")
    (tmp_path / "test_list.txt").write_text("00000003_000.png\n")
    _img(tmp_path / "images_001/images/00000001_000.png")
    records = load_nih_chestxray14(tmp_path)
    assert records[0].image_path == tmp_path / "images_001/images/00000001_000.png"
    assert records[0].labels["Cardiomegaly"] == 1 and records[0].labels["Effusion"] == 1
    assert records[0].labels["Mass"] == 0 and records[0].labels["No Finding"] == 0
    assert records[1].labels["No Finding"] == 1
    assert records[2].split == "test" and records[0].split in ("train", "val")
    rows.append(["00000004_000.png", "Dragons", 0, 4, 1, "F", "PA"])
    _csv(tmp_path / "Data_Entry_2017.csv", header, rows)
    with pytest.raises(DataError, match=r"Data_Entry_2017\.csv:5: unknown finding"):
        load_nih_chestxray14(tmp_path)


def test_dicom_conversion(tmp_path: Path) -> None:
    mono2 = dicom_to_uint8(_dcm(tmp_path / "a.dcm", "p"))
    mono1 = dicom_to_uint8(_dcm(tmp_path / "b.dcm", "p", monochrome1=True))
    assert mono2.shape == (16, 12) and mono2[0, 0] == 0 and mono2[0, -1] == 255
    np.testing.assert_array_equal(mono1, 255 - mono2)
    (tmp_path / "bad.dcm").write_bytes(b"not a dicom")
    with pytest.raises(DataError, match=r"bad\.dcm"):
        dicom_to_uint8(tmp_path / "bad.dcm")


def test_rsna(tmp_path: Path) -> None:
    header = ["patientId", "x", "y", "width", "height", "Target"]
    rows = [["aaa", "", "", "", "", 0], ["bbb", 10, 20, 30, 40, 1], ["bbb", 50, 20, 30, 40, 1]]
    _csv(tmp_path / "stage_2_train_labels.csv", header, rows)
    _csv(tmp_path / "stage_2_detailed_class_info.csv", ["patientId", "class"],
         [["aaa", "Normal"], ["bbb", "Lung Opacity"]])  # fmt: skip
    for pid in ("aaa", "bbb"):
        _dcm(tmp_path / "stage_2_train_images" / f"{pid}.dcm", pid)
    records = load_rsna_pneumonia(tmp_path)
    by = {r.patient_id: r for r in records}
    assert by["aaa"].labels == {"Pneumonia": 0} and by["bbb"].labels == {"Pneumonia": 1}
    assert len(by["bbb"].meta["boxes"]) == 2 and by["bbb"].meta["class"] == "Lung Opacity"
    png = by["bbb"].image_path
    assert png == tmp_path / "png_cache/bbb.png" and Image.open(png).size == (12, 16)
    mtime = png.stat().st_mtime_ns
    load_rsna_pneumonia(tmp_path)  # converted once, then reused
    assert png.stat().st_mtime_ns == mtime


def test_siim(tmp_path: Path) -> None:
    _csv(tmp_path / "train-rle.csv", ["ImageId", " EncodedPixels"],
         [["1.2.3", " -1"], ["1.2.4", " 100 5 200 5"], ["1.2.4", " 400 5"]])  # fmt: skip
    _dcm(tmp_path / "dicom-images-train/s1/r1/1.2.3.dcm", "patient-a")
    _dcm(tmp_path / "dicom-images-train/s2/r2/1.2.4.dcm", "patient-b")
    records = load_siim_pneumothorax(tmp_path, cache_dir=tmp_path / "cache")
    by = {r.patient_id: r for r in records}
    assert by["patient-a"].labels == {"Pneumothorax": 0}
    assert by["patient-b"].labels == {"Pneumothorax": 1} and len(by["patient-b"].meta["rle"]) == 2
    assert by["patient-b"].image_path == tmp_path / "cache/1.2.4.png"


def test_covidx(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("p1 a.png positive bimcv\np2 b.jpg normal cohen\n")
    (tmp_path / "test.txt").write_text("p3 c.png pneumonia rsna\n")
    records = load_covidx(tmp_path)
    assert [r.split for r in records] == ["train", "train", "test"]
    assert records[0].labels == {"COVID-19": 1}
    assert records[1].labels == {"COVID-19": 0, "No Finding": 1}
    assert records[2].image_path == (tmp_path / "test/c.png").resolve()
    (tmp_path / "test.txt").write_text("p3 ../../etc/passwd positive x\n")
    with pytest.raises(DataError, match="escapes"):
        load_covidx(tmp_path)
    (tmp_path / "test.txt").write_text("p3 c.png martian x\n")
    with pytest.raises(DataError, match=r"test\.txt:1: unknown class"):
        load_covidx(tmp_path)


def test_iu_xray(tmp_path: Path) -> None:
    rows = [{"id": "1", "findings": "No pneumothorax.", "impression": "Normal.",
             "images": ["CXR1_1_IM-0001-3001"]},
            {"id": "2", "findings": "", "impression": "", "images": []}]  # fmt: skip
    (tmp_path / "reports.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match=r"reports\.jsonl:2: empty report"):
        load_iu_xray(tmp_path)
    skips = SkipCounter()
    records = load_iu_xray(tmp_path, on_error="skip", skips=skips)
    assert skips.total == 1 and len(records) == 1
    assert records[0].kind == SampleKind.TEXT_ONLY
    assert records[0].report == "FINDINGS: No pneumothorax.\nIMPRESSION: Normal."
    paired = load_iu_xray(tmp_path, images_dir=tmp_path / "png", on_error="skip")
    assert paired[0].image_path == (tmp_path / "png/CXR1_1_IM-0001-3001.png").resolve()


def test_covid_collection(tmp_path: Path) -> None:
    header = ["patientid", "offset", "sex", "age", "finding", "view", "modality", "filename",
              "clinical_notes"]  # fmt: skip
    _csv(tmp_path / "metadata.csv", header, [
        [2, 0, "M", 65, "COVID-19", "PA", "X-ray", "a.jpg", '"infiltrate in the left lung"'],
        [2, 3, "M", 65, '"COVID-19, ARDS"', "AP Supine", "X-ray", "b.jpg", ""],
        [7, 0, "F", 40, "Streptococcus", "?", "X-ray", "c.jpg", ""],
        [8, 0, "F", 40, "todo", "L", "CT", "d.jpg", ""]])  # fmt: skip
    records = load_covid_collection(tmp_path)
    assert len(records) == 3  # CT left out
    assert records[0].kind == SampleKind.PAIRED and "left lung" in (records[0].report or "")
    assert records[1].labels == {"COVID-19": 1, "Pneumonia": 1, "ARDS": 1}
    assert records[1].kind == SampleKind.IMAGE_PROMPT
    assert records[2].labels == {"COVID-19": 0, "Pneumonia": 1} and records[2].view is None
    assert records[0].split == records[1].split  # same patient, same split


def test_kermany_and_image_folder(tmp_path: Path) -> None:
    _img(tmp_path / "k/train/NORMAL/IM-0115-0001.jpeg")
    _img(tmp_path / "k/train/PNEUMONIA/person1000_bacteria_2931.jpeg")
    _img(tmp_path / "k/train/PNEUMONIA/person1000_virus_1681.jpeg")
    _img(tmp_path / "k/test/NORMAL/NORMAL2-IM-0955-0001.jpeg")
    by = {r.image_path.name: r for r in load_kermany(tmp_path / "k")}  # type: ignore[union-attr]
    assert {n: r.patient_id for n, r in by.items()} == {
        "IM-0115-0001.jpeg": "IM-0115",
        "person1000_bacteria_2931.jpeg": "person1000",
        "person1000_virus_1681.jpeg": "person1000",
        "NORMAL2-IM-0955-0001.jpeg": "NORMAL2-IM-0955",
    }
    assert by["IM-0115-0001.jpeg"].labels == {"No Finding": 1, "Pneumonia": 0}
    assert by["person1000_virus_1681.jpeg"].labels == {"Pneumonia": 1}
    assert by["NORMAL2-IM-0955-0001.jpeg"].split == "test"
    _img(tmp_path / "f/cat/a.png")
    _img(tmp_path / "f/dog/b.png")
    plain = load_image_folder(tmp_path / "f")
    assert [r.labels for r in plain] == [{"cat": 1, "dog": 0}, {"cat": 0, "dog": 1}]
    _img(tmp_path / "k/train/ALIEN/x.jpeg")
    with pytest.raises(DataError, match="ALIEN: unknown class"):
        load_kermany(tmp_path / "k")


def test_image_folder_reads_finding_folders_and_a_split_folder_root(tmp_path: Path) -> None:
    for name in ("IM-1.jpeg", "IM-2.jpeg"):
        _img(tmp_path / "chest/test/NORMAL" / name)
    _img(tmp_path / "chest/test/PNEUMONIA/person1_virus_1.jpeg")
    _img(tmp_path / "chest/test/pleural_effusion/e.png")
    records = load_image_folder(tmp_path / "chest/test")  # the root is the test split itself
    assert {r.split for r in records} == {"test"}
    by = {r.image_path.name: r.labels for r in records}  # type: ignore[union-attr]
    zero = {"No Finding": 0, "Pleural Effusion": 0, "Pneumonia": 0}
    assert by["IM-1.jpeg"] == {**zero, "No Finding": 1}
    assert by["person1_virus_1.jpeg"] == {**zero, "Pneumonia": 1}
    assert by["e.png"] == {**zero, "Pleural Effusion": 1}
    assert [r.split for r in load_image_folder(tmp_path / "chest")] == ["test"] * 4
    _img(tmp_path / "chest/test/normal/x.png")
    with pytest.raises(DataError, match="'NORMAL' and 'normal' both mean 'No Finding'"):
        load_image_folder(tmp_path / "chest/test")


def test_image_folder_reads_every_image_suffix_and_skips_other_files(tmp_path: Path) -> None:
    from mmclip.data.records import DICOM_SUFFIXES, IMAGE_SUFFIXES
    from mmclip.models.preprocess import DICOM_SUFFIXES as PREPROCESS_DICOM_SUFFIXES

    for i, suffix in enumerate(IMAGE_SUFFIXES):
        _img(tmp_path / f"f/cat/a{i}{suffix.upper() if i % 2 else suffix}")
    (tmp_path / "f/cat/notes.txt").write_text("not an image", encoding="utf-8")
    (tmp_path / "f/cat/a.gif").write_bytes(b"GIF89a")  # no GIF: DALI does not decode it
    records = load_image_folder(tmp_path / "f")
    assert len(records) == len(IMAGE_SUFFIXES)
    assert PREPROCESS_DICOM_SUFFIXES == DICOM_SUFFIXES  # one DICOM list for data and models


def test_manifest_csv_and_jsonl(tmp_path: Path) -> None:
    _img(tmp_path / "img/a.png")
    _csv(tmp_path / "m.csv", ["image", "report", "labels", "patient_id", "split", "Edema"], [
        ["img/a.png", "", '"{""Cardiomegaly"": 1}"', "p1", "train", "1"],
        ["", "No edema.", "", "p2", "", "0"]])  # fmt: skip
    records = load_manifest(tmp_path / "m.csv", label_columns=["Edema"])
    assert records[0].kind == SampleKind.IMAGE_PROMPT
    assert records[0].labels == {"Cardiomegaly": 1, "Edema": 1}
    assert records[1].kind == SampleKind.TEXT_ONLY and records[1].labels == {"Edema": 0}
    lines = [{"image": "img/a.png", "report": "x", "mask": "img/a.png"},
             {"image": "../outside.png"}]  # fmt: skip
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    with pytest.raises(DataError, match=r"m\.jsonl:2: path '\.\./outside\.png' escapes"):
        load_manifest(tmp_path / "m.jsonl")
    # Escaping paths are errors even when skipping; other bad rows are counted skips.
    with pytest.raises(DataError, match="escapes"):
        load_manifest(tmp_path / "m.jsonl", on_error="skip")
    lines[1] = {"image": None, "report": "   "}
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    with pytest.raises(DataError, match=r"m\.jsonl:2: empty report"):
        load_manifest(tmp_path / "m.jsonl")
    skips = SkipCounter()
    records = load_manifest(tmp_path / "m.jsonl", on_error="skip", skips=skips)
    assert len(records) == 1 and skips.total == 1
    assert records[0].meta["mask"] == (tmp_path / "img/a.png").resolve()
    _csv(tmp_path / "bad.csv", ["path", "text"], [["a", "b"]])
    with pytest.raises(DataError, match=r"bad\.csv: no 'image' column, but 'path' looks like"):
        load_manifest(tmp_path / "bad.csv")
    _csv(tmp_path / "bad.csv", ["a", "b"], [["a", "b"]])
    with pytest.raises(DataError, match=r"bad\.csv: needs an 'image' or a 'report' column"):
        load_manifest(tmp_path / "bad.csv")
