"""`mmclip pretrain` registers its model by tag; `--model name:tag` loads it everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmclip.data import synthetic
from mmclip.demo import DEMO_CONFIG
from mmclip.models import list_pretrained

from .test_cli import assert_one_line_error, run_cli


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MMCLIP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("registry-data")
    synthetic.write_dataset(root, n=24, size=64, seed=0)
    return root


def _pretrain(out: Path, data: Path, *extra: str) -> list[str]:
    return [
        "pretrain",
        "--config",
        str(DEMO_CONFIG),
        "--out",
        str(out),
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--set",
        f"data.sources.0.root={data}",
        "--set",
        f"data.sources.1.root={data}",
        "--set",
        "tensorboard=false",
        *extra,
    ]


def test_pretrain_registers_its_model_under_the_tag_and_the_cli_loads_it(
    capsys, tmp_path, home, data
) -> None:
    code, out, err = run_cli(capsys, *_pretrain(tmp_path / "run-a", data, "--tag", "mine"))
    assert code == 0, err
    assert "registered as mmclip-tiny:mine" in out
    assert "mmclip-tiny:mine" in err  # the log line says where and how to load it
    assert list_pretrained() == [("mmclip-tiny", "mine")]
    assert (home / "models" / "mmclip-tiny" / "mine" / "model.safetensors").is_file()
    emb = tmp_path / "emb.npy"
    argv = ["encode", "--model", "mmclip-tiny:mine", "--texts", "Small effusion.", "--out"]
    code, out, err = run_cli(capsys, *argv, str(emb), "--device", "cpu")
    assert code == 0, err
    assert np.load(emb).shape[0] == 1
    code, _, err = run_cli(capsys, "models")
    assert code == 0


def test_pretrain_tag_defaults_to_the_run_directory_name(capsys, tmp_path, home, data) -> None:
    code, _, err = run_cli(capsys, *_pretrain(tmp_path / "my run", data))
    assert code == 0, err
    assert list_pretrained(as_str=True) == ["mmclip-tiny:my-run"]


def test_a_bad_tag_is_refused_before_training(capsys, tmp_path, home, data) -> None:
    out = tmp_path / "run-bad"
    code, _, err = run_cli(capsys, *_pretrain(out, data, "--tag", "a/b"))
    assert_one_line_error(code, err, "tag")
    assert not (out / "checkpoints").exists()


def test_an_unregistered_name_is_one_line_naming_the_registry_and_the_demo(
    capsys, tmp_path, home
) -> None:
    argv = ["encode", "--model", "mmclip-tiny", "--texts", "x", "--out", str(tmp_path / "x.npy")]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, str(home / "models"), "mmclip demo", "none yet")
