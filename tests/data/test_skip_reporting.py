"""Skipped samples (``on_error="skip"``) are logged at DEBUG as they happen, and totalled per
reason in one WARNING line at the end of every epoch and of the run, even when the run ends
inside an epoch."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmclip.data import LoaderConfig, SkipCounter, TransformConfig, XrayLoader, XrayRecord


def _records(tmp_path: Path, synth_records: list[XrayRecord]) -> list[XrayRecord]:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    return [
        synth_records[0],
        XrayRecord(bad, "report", source="t"),
        XrayRecord(tmp_path / "missing.jpg", "report", source="t"),
        XrayRecord(tmp_path / "gone.png", None, {"Edema": 1}, source="t"),
    ]


def _loader(records: list[XrayRecord], tokenizer) -> XrayLoader:
    config = LoaderConfig(
        batch_size=2,
        shuffle=False,
        drop_last=False,
        on_error="skip",
        backend="pil",
        transform=TransformConfig(image_size=32, train=False),
    )
    return XrayLoader(records, config, tokenizer=tokenizer)


def test_skips_are_counted_per_reason_for_the_epoch_and_the_run(
    tmp_path: Path, synth_records: list[XrayRecord], tokenizer
) -> None:
    loader = _loader(_records(tmp_path, synth_records), tokenizer)
    list(loader)
    list(loader)
    assert loader.skips.counts == {}  # reset at the end of each epoch ...
    # ... but the run keeps its totals, per reason (not one "bad row" lump)
    assert loader.skips.run_counts == {"undecodable image": 2, "missing image file": 4}
    assert loader.state_dict()["skipped"]["run_counts"] == dict(loader.skips.run_counts)


def test_a_run_that_ends_inside_an_epoch_reports_its_skips(
    tmp_path: Path, synth_records: list[XrayRecord], tokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    from mmclip.train.trainer import Trainer

    loader = _loader(_records(tmp_path, synth_records), tokenizer)
    with caplog.at_level(logging.DEBUG, logger="mmclip.data.records"):
        next(iter(loader))  # one step of two: the epoch's own report never comes
        (line,) = [r for r in caplog.records if "skipped a sample" in r.getMessage()]
        assert line.levelno == logging.DEBUG and "bad.jpg" in line.getMessage()  # as it happens
        caplog.clear()
        trainer = SimpleNamespace(loader=loader, info=SimpleNamespace(rank=0), step=1)
        Trainer._report_skips(trainer)  # type: ignore[arg-type]
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "rank 0, end of run at step 1: skipped 1 bad samples in this run" in line
    assert "{'undecodable image': 1}" in line and "bad.jpg" in line  # with an example


def test_skips_asked_for_give_one_summary_line_not_one_warning_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    skips = SkipCounter()
    with caplog.at_level(logging.DEBUG, logger="mmclip.data.records"):
        for i in range(25):
            skips.add("missing image file", f"f{i}.png: No such file")
        skips.add("undecodable image", "g.png: cannot decode")
        skips.report("data.jsonl")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # before: 20 "skipped a sample" warnings, then a notice
    assert warnings[0].startswith("data.jsonl: skipped 26 bad samples")
    assert "'missing image file': 25" in warnings[0] and "f0.png" in warnings[0]
    debug = [r for r in caplog.records if "skipped a sample" in r.getMessage()]
    assert len(debug) == 26 and all(r.levelno == logging.DEBUG for r in debug)
    assert skips.counts == {"missing image file": 25, "undecodable image": 1}


def test_run_totals_survive_reset_and_checkpoints() -> None:
    skips = SkipCounter()
    skips.add("missing image file", "a")
    skips.reset()
    skips.add("undecodable image", "b")
    restored = SkipCounter()
    restored.load_state_dict(skips.state_dict())
    assert restored.counts == {"undecodable image": 1}
    assert restored.run_counts == {"missing image file": 1, "undecodable image": 1}
    old = SkipCounter()
    old.load_state_dict({"counts": {"bad manifest row": 2}})  # a checkpoint from before
    assert old.run_total == 2
