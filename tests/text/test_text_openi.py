"""Labeler quality on the Open-i (IU) reports with the NegBio gold standard (skips without data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmclip.text.evaluate_labeler import default_data_dir, evaluate, main


@pytest.fixture(scope="module")
def data_dir() -> Path:
    path = default_data_dir()
    if not (path / "iu-reports" / "openi_gold_labels.csv").is_file():
        pytest.skip(f"IU reports not available under {path}")
    return path


def test_labeler_beats_targets_on_openi(data_dir: Path) -> None:
    result = evaluate(data_dir, uncertain_positive=False)
    assert result.n_reports == 1920
    assert result.micro_f1 >= 0.90, result.micro_f1
    assert result.macro_f1 >= 0.80, result.macro_f1
    assert len(result.macro_findings) == 11
    assert result.normal.f1 >= 0.85


def test_cli_writes_json_and_markdown(data_dir: Path, tmp_path: Path, capsys) -> None:
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    assert (
        main(
            [
                "--data",
                str(data_dir),
                "--uncertain",
                "negative",
                "--json",
                str(out_json),
                "--markdown",
                str(out_md),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| Atelectasis |" in printed and "micro" in printed
    data = json.loads(out_json.read_text())
    assert data["micro"]["f1"] >= 0.90
    assert out_md.read_text().startswith("| finding |")


def test_cli_missing_data(tmp_path: Path, capsys) -> None:
    assert main(["--data", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
