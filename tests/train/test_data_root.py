"""One data root (``MMCLIP_DATA`` / ``--data-root`` / a config's ``data.root``) for relative
dataset paths, and errors that give the absolute paths looked at."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmclip.data import synthetic
from mmclip.train.config import SourceConfig, load_config
from mmclip.train.data import (
    DATA_ROOT_ENV,
    load_records,
    load_source_records,
    resolve_data_path,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_data_env(monkeypatch) -> None:
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Path:
    """A folder holding datasets: ``syn/`` (a synthetic set)."""
    root = tmp_path_factory.mktemp("datasets")
    synthetic.write_dataset(root / "syn", n=8, size=32, seed=0)
    return root


def test_a_relative_path_is_read_from_mmclip_data(datasets, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_ROOT_ENV, str(datasets))
    assert resolve_data_path("syn") == datasets / "syn"
    assert len(load_records("synthetic", "syn")) == 8
    (tmp_path / "local").mkdir()  # not under the data root: the working directory's
    assert resolve_data_path("local") == Path("local")
    assert resolve_data_path(datasets / "syn") == datasets / "syn"  # absolute: itself


def test_mmclip_data_takes_the_place_of_the_config_data_root(
    datasets, monkeypatch, tmp_path, no_data_env
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = SourceConfig(name="s", source="synthetic", root="syn", split="all")
    assert len(load_source_records(spec, data_root=str(datasets))) == 8
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=f"{DATA_ROOT_ENV}={tmp_path / 'elsewhere'}"):
        load_source_records(spec, data_root=str(datasets))


def test_a_missing_dataset_path_names_the_absolute_paths_and_the_setting(
    monkeypatch, tmp_path, no_data_env
) -> None:
    monkeypatch.chdir(tmp_path / ".")
    with pytest.raises(FileNotFoundError) as info:
        load_records("covid-collection", "../shared/data/covid-notes")
    message = str(info.value)
    assert "dataset path '../shared/data/covid-notes' does not exist" in message
    assert str((tmp_path / "../shared/data/covid-notes").resolve()) in message  # absolute
    assert f"{DATA_ROOT_ENV} not set" in message and "--data-root" in message
    assert "\n" not in message
    monkeypatch.setenv(DATA_ROOT_ENV, "/data/cxr")
    with pytest.raises(FileNotFoundError) as info:
        resolve_data_path("covid-notes")
    assert "looked at /data/cxr/covid-notes and " in str(info.value)


@pytest.mark.parametrize("recipe", ["public-cxr.yaml", "public-cxr-patch.yaml"])
def test_the_public_recipes_read_their_sources_from_the_data_root(
    monkeypatch, tmp_path, recipe
) -> None:
    config = load_config(REPO / "configs" / recipe)
    assert config.data.root == "../shared/data"
    names = {"covid-notes", "kermany-pneumonia", "iu-reports"}
    assert {s.root for s in config.data.sources} == names
    for name in names:
        (tmp_path / name).mkdir()
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))  # a clone that is not beside shared/
    for source in config.data.sources:
        assert resolve_data_path(source.root, config.data.root) == tmp_path / source.root
