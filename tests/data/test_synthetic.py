from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from mmclip.data import XrayRecord, synthetic
from mmclip.data.synthetic import FINDING_BITS, render_sample


def test_render_is_seeded_and_shaped() -> None:
    a = render_sample(np.random.default_rng([0, 5]), 128)
    b = render_sample(np.random.default_rng([0, 5]), 128)
    assert a.image.shape == a.mask.shape == (128, 128)
    assert a.image.dtype == np.uint8 and a.mask.dtype == np.uint8
    np.testing.assert_array_equal(a.image, b.image)
    assert a.report == b.report and a.labels == b.labels


def test_masks_labels_and_reports_agree() -> None:
    seen = set()
    for sample in synthetic.generate(150, size=96, seed=1):
        present = set(np.unique(sample.mask)) - {0}
        bits = 0
        for value in present:
            bits |= int(value)
        for name, info in sample.findings.items():
            seen.add(name)
            assert bits & FINDING_BITS[name], (name, sample.report)
            label = synthetic.FINDING_LABELS[name]
            assert sample.labels[label] == (-1 if info["uncertain"] else 1)
            side = info.get("side")
            if side is not None:
                assert str(side) in sample.report.lower()
                # Patient right is image left: the lesion lies on that half.
                cols = np.nonzero(sample.mask & FINDING_BITS[name])[1]
                centre = cols.mean() / 96
                assert (centre < 0.5) == (side == "right"), (name, side, centre)
        for label, value in sample.labels.items():
            if value == 0:
                assert label not in {synthetic.FINDING_LABELS[n] for n in sample.findings}
        if not sample.findings:
            assert bits == 0 and sample.labels.get("No Finding") == 1
        assert sample.report.startswith("FINDINGS: ") and "\nIMPRESSION: " in sample.report
    assert seen == set(synthetic.SYNTHETIC_FINDINGS)


def test_write_dataset_layout(tmp_path: Path) -> None:
    manifest = synthetic.write_dataset(tmp_path, n=6, size=64, seed=2)
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert len(lines) == 6
    for i, row in enumerate(lines):
        assert row["image"] == f"images/{i:06d}.jpg" and row["mask"] == f"masks/{i:06d}.png"
        assert Image.open(tmp_path / row["image"]).mode == "L"
        assert Image.open(tmp_path / row["mask"]).size == (64, 64)
        assert row["split"] in ("train", "val", "test")
    # Sample i does not depend on n.
    again = synthetic.write_dataset(tmp_path / "b", n=3, size=64, seed=2)
    assert [json.loads(x)["report"] for x in again.read_text().splitlines()] == [
        r["report"] for r in lines[:3]
    ]


def test_records_from_manifest(synth_records: list[XrayRecord]) -> None:
    assert len(synth_records) == 40
    assert all(r.image_path is not None and r.image_path.is_file() for r in synth_records)
    assert all(r.meta["mask"].is_file() for r in synth_records)
