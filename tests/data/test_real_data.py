"""Adapters on the real data in ``../shared/data`` (skipped when it is absent)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import torch

from mmclip.batch import SampleKind
from mmclip.data import (
    LoaderConfig,
    TransformConfig,
    XrayLoader,
    load_covid_collection,
    load_iu_xray,
    load_kermany,
)

DATA = Path(
    os.environ.get("MMCLIP_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared/data"
)


def _need(name: str) -> None:
    if not (DATA / name).exists():
        pytest.skip(f"{DATA / name} not present")


def test_kermany() -> None:
    _need("kermany-pneumonia")
    records = load_kermany(DATA / "kermany-pneumonia")
    counts = Counter((r.split, r.meta["class"]) for r in records)
    assert counts[("train", "NORMAL")] == 1341 and counts[("train", "PNEUMONIA")] == 3875
    assert counts[("test", "NORMAL")] == 234 and counts[("test", "PNEUMONIA")] == 390
    assert all(r.kind == SampleKind.IMAGE_PROMPT for r in records)


def test_image_folder_on_the_kermany_test_folder_finds_every_test_image_and_positive() -> None:
    """Before: 63 of the 624 images landed in ``test`` (a patient hash) and their labels were
    ``{PNEUMONIA: 1}`` / ``{NORMAL: 1}``, so zero-shot 'Pneumonia' saw 0 positives."""
    from mmclip.data import load_source
    from mmclip.eval.suite import default_findings

    _need("kermany-pneumonia")
    records = load_source("image-folder", DATA / "kermany-pneumonia" / "test")
    assert len(records) == 624 and {r.split for r in records} == {"test"}
    assert sum(r.labels["Pneumonia"] == 1 for r in records) == 390
    assert sum(r.labels["No Finding"] == 1 for r in records) == 234
    assert "Pneumonia" in default_findings(records)


def test_covid_notes() -> None:
    _need("covid-notes")
    records = load_covid_collection(DATA / "covid-notes")
    assert len(records) == 621
    assert sum(r.kind == SampleKind.PAIRED for r in records) == 510
    assert len({r.patient_id for r in records}) > 200  # README says 280; the CSV has 338
    by_patient: dict[str, set[str]] = {}
    for r in records:
        by_patient.setdefault(r.patient_id or "", set()).add(r.split)
    assert all(len(s) == 1 for s in by_patient.values())  # split by patient, never by image
    assert sum(r.labels.get("COVID-19") == 1 for r in records) >= 412
    assert all(r.image_path is not None and r.image_path.is_file() for r in records[:50])


def test_iu_reports() -> None:
    _need("iu-reports/reports.jsonl")
    records = load_iu_xray(DATA / "iu-reports", on_error="skip")
    assert 3900 <= len(records) <= 3955
    assert all(r.kind == SampleKind.TEXT_ONLY and r.report for r in records)


def test_real_loader_mix(tokenizer) -> None:
    _need("covid-notes")
    records = load_covid_collection(DATA / "covid-notes")[:12]
    cfg = LoaderConfig(batch_size=6, transform=TransformConfig(image_size=64), backend="pil")
    batch = next(iter(XrayLoader(records, cfg, tokenizer=tokenizer)))
    assert batch.images is not None and batch.images.shape == (6, 1, 64, 64)
    assert torch.isfinite(batch.images).all()
