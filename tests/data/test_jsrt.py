"""The JSRT nodule adapter: finding texts, the stratified split, errors, and the real folder
(skipped when ``../shared/data/jsrt-nodules`` is absent)."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmclip.batch import SampleKind
from mmclip.data import DataError, load_source
from mmclip.data.sources.jsrt import (
    JSRT_COLUMNS,
    JSRT_NO_NODULE_TEXT,
    jsrt_finding_text,
    jsrt_side,
    jsrt_split,
    load_jsrt,
)
from mmclip.train.data import load_records

DATA = Path(
    os.environ.get("MMCLIP_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared/data"
)


def write_fake_jsrt(root: Path, n_nodule: int = 6, n_normal: int = 4, size: int = 64) -> Path:
    """A folder in the JSRT layout (images of ``size`` px; geometry on the 512 grid)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    locations = ["l.upper lobe(S1+2)", "r.lower lobe(S6)", "r.upper lobe", "left lung"]
    for i in range(n_nodule + n_normal):
        nodule = i < n_nodule
        name = f"images/JPC{'LN' if nodule else 'NN'}{i:03d}.jpg"
        pixels = rng.integers(60, 120, (size, size), dtype=np.uint8)
        Image.fromarray(pixels).save(root / name)
        row = dict.fromkeys(JSRT_COLUMNS, "")
        row.update(image=name, nodule=str(int(nodule)), age="50", sex="Female")
        if nodule:
            row.update(
                x=f"{100 + 40 * (i % 4)}",
                y=f"{150 + 30 * (i % 3)}",
                radius_px="20.0",
                size_mm="28",
                subtlety="3",
                malignancy="benign",
                location=locations[i % len(locations)],
                diagnosis="granuloma",
            )
        rows.append(row)
    with open(root / "nodules.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(JSRT_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.mark.parametrize(
    ("location", "text"),
    [
        ("l.upper lobe(S1+2)", "Nodule in the left upper lobe."),
        ("r.lower lobe(S9-10)", "Nodule in the right lower lobe."),
        ("r.middle lobe", "Nodule in the right middle lobe."),
        ("left lung", "Nodule in the left lung."),
        ("R. Upper Lobe (S2)", "Nodule in the right upper lobe."),
        ("", "Nodule in the lung."),
    ],
)
def test_finding_text_of_a_location(location: str, text: str) -> None:
    assert jsrt_finding_text(location) == text


def test_side_of_a_location() -> None:
    assert jsrt_side("l.lower lobe(S6)") == "left"
    assert jsrt_side("right lung") == "right"
    assert jsrt_side("lower lobe") is None
    assert jsrt_finding_text("l.upper lobe", template="{where} nodule") == "left upper lobe nodule"


def test_the_finding_text_is_a_present_finding_with_focus_on_side_and_lobe() -> None:
    from mmclip.text import extract_entities, focus_mentions, label_report

    text = jsrt_finding_text("l.upper lobe(S1+2)")
    nodule = [m for m in extract_entities(text) if m.type == "finding"]
    assert [(m.concept, m.assertion, m.laterality) for m in nodule] == [
        ("Nodule", "present", "left")
    ]
    focus = {(m.type, m.text.lower()) for m in focus_mentions(text)}
    assert focus == {("finding", "nodule"), ("laterality", "left"), ("anatomy", "upper lobe")}
    assert label_report(text, schema="chestxray14").get("Nodule") == 1
    assert label_report(text).get("Lung Lesion") == 1
    assert focus_mentions(JSRT_NO_NODULE_TEXT) == []


def test_the_guidance_weighs_the_nodule_its_side_and_its_lobe() -> None:
    from mmclip.data import RadiologyTextEncoder
    from mmclip.models import guidance_token_weights
    from mmclip.models.config import AttMIMConfig
    from mmclip.text import train_wordpiece_tokenizer

    text = jsrt_finding_text("l.upper lobe(S1+2)")
    tokenizer = train_wordpiece_tokenizer([text, JSRT_NO_NODULE_TEXT] * 3, vocab_size=80)
    tok = RadiologyTextEncoder(tokenizer, 32)([text])
    config = AttMIMConfig()
    weight = guidance_token_weights(
        config,
        tok.attention_mask,
        tok.special_tokens_mask,
        tok.span_offsets,
        tok.spans,
        tok.focus_offsets,
        tok.focus_spans,
    )[0]
    ids = tok.input_ids[0][weight == config.entity_weight].tolist()
    assert tokenizer.decode(ids) == "nodule left upper lobe"  # word pieces merged back


def test_the_split_is_stratified_seeded_and_deterministic() -> None:
    images = [f"im{i:03d}" for i in range(100)]
    nodule = [int(i < 60) for i in range(100)]
    split = jsrt_split(images, nodule)
    assert split == jsrt_split(list(reversed(images)), list(reversed(nodule)))  # order-free
    counts = Counter((split[im], n) for im, n in zip(images, nodule, strict=True))
    assert counts == {("test", 1): 24, ("train", 1): 36, ("test", 0): 16, ("train", 0): 24}
    other = jsrt_split(images, nodule, seed=1)
    assert other != split
    assert Counter(other.values()) == Counter(split.values())
    with pytest.raises(ValueError, match="test_fraction"):
        jsrt_split(images, nodule, test_fraction=1.5)


def test_adapter_on_a_fake_folder(tmp_path: Path) -> None:
    root = write_fake_jsrt(tmp_path / "jsrt")
    records = load_jsrt(root)
    assert len(records) == 10
    assert all(r.kind == SampleKind.IMAGE_PROMPT and r.image_path.is_file() for r in records)
    nodules = [r for r in records if r.meta["nodule"] == 1]
    assert len(nodules) == 6
    assert all(r.labels == {"Nodule": 1, "No Finding": 0} for r in nodules)
    first = nodules[0].meta
    assert (first["x"], first["y"], first["radius_px"], first["grid_px"]) == (100.0, 150.0, 20, 512)
    assert first["finding_text"] == "Nodule in the left upper lobe." and first["side"] == "left"
    assert first["size_mm"] == 28.0 and first["subtlety"] == 3 and first["age"] == 50
    normal = next(r for r in records if r.meta["nodule"] == 0)
    assert normal.labels == {"No Finding": 1, "Nodule": 0}
    assert normal.meta["finding_text"] == JSRT_NO_NODULE_TEXT
    assert {r.split for r in records} == {"train", "test"}
    test = load_jsrt(root, split="test")
    assert [r.image_path for r in test] == [r.image_path for r in records if r.split == "test"]
    assert len(load_source("jsrt", root, split="train")) == 10 - len(test)
    assert len(load_records("jsrt-nodules", root, "test")) == len(test)  # the folder's name
    with pytest.raises(ValueError, match="split must be"):
        load_jsrt(root, split="val")


def test_a_missing_csv_names_its_absolute_path(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=rf"{tmp_path / 'empty' / 'nodules.csv'}.*not found"):
        load_jsrt("empty")
    with pytest.raises(DataError, match="JSRT folder not found"):
        load_jsrt(tmp_path / "nowhere")


def test_missing_columns_are_named_with_the_columns_found(tmp_path: Path) -> None:
    root = tmp_path / "jsrt"
    root.mkdir()
    (root / "nodules.csv").write_text("image,nodule,x\nimages/a.jpg,0,\n")
    with pytest.raises(DataError) as info:
        load_jsrt(root)
    message = str(info.value)
    assert str((root / "nodules.csv").resolve()) in message
    assert "'radius_px'" in message and "['image', 'nodule', 'x']" in message


def test_bad_values_name_the_line(tmp_path: Path) -> None:
    root = write_fake_jsrt(tmp_path / "jsrt", n_nodule=2, n_normal=1)
    original = (root / "nodules.csv").read_text()
    text = original.splitlines()
    text[1] = text[1].replace(",100,", ",left,", 1)
    (root / "nodules.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"nodules.csv:2: column 'x' must be a number"):
        load_jsrt(root)
    (root / "nodules.csv").write_text(original)
    text = (root / "nodules.csv").read_text().splitlines()
    text[2] = text[2].replace("images/", "../", 1)
    (root / "nodules.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match="escapes"):
        load_jsrt(root)


def test_the_real_folder() -> None:
    root = DATA / "jsrt-nodules"
    if not root.exists():
        pytest.skip(f"{root} not present")
    records = load_jsrt(root)
    assert len(records) == 247
    counts = Counter((r.split, r.meta["nodule"]) for r in records)
    assert counts == {("train", 1): 92, ("test", 1): 62, ("train", 0): 56, ("test", 0): 37}
    nodules = [r for r in records if r.meta["nodule"]]
    assert all(0 < r.meta["x"] < 512 and 0 < r.meta["y"] < 512 for r in nodules)
    assert all(3 <= r.meta["radius_px"] <= 45 for r in nodules)
    assert all(r.meta["side"] in ("left", "right") for r in nodules)
    assert all(r.meta["finding_text"].startswith("Nodule in the ") for r in nodules)
    assert all(r.image_path is not None and r.image_path.is_file() for r in records[::10])
    first = next(r for r in records if r.image_path.name == "JPCLN001.jpg")
    assert first.meta["finding_text"] == "Nodule in the left upper lobe."
    assert first.meta["x"] > 256  # a left-lung nodule lies on the image's right half (PA)


def test_reports_make_pairs_whose_text_is_the_finding_text(tmp_path: Path) -> None:
    root = write_fake_jsrt(tmp_path / "jsrt")
    records = load_jsrt(root, split="train", reports=True)
    assert records and all(r.kind == SampleKind.PAIRED for r in records)
    assert all(r.report == r.meta["finding_text"] for r in records)
    kinds = ({"Nodule": 1, "No Finding": 0}, {"No Finding": 1, "Nodule": 0})
    assert all(r.labels in kinds for r in records)
