"""Trained models by name and tag in the local model directory ($MMCLIP_HOME), offline."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import mmclip
from mmclip.models import MMCLIPModel, PretrainedNotFoundError, create_model, list_pretrained
from mmclip.models.encoding import UntrainedModelWarning
from mmclip.models.home import mmclip_home, register_pretrained, resolve_model_dir

from .helpers import make_tokenizer, tiny_model


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MMCLIP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A saved tiny model (random weights: what matters here is that they load exactly)."""
    directory = tmp_path_factory.mktemp("saved") / "model"
    tiny_model(make_tokenizer()).save_pretrained(directory)
    return directory


def _embeds(model: MMCLIPModel) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model.encode(torch.linspace(0, 1, 32 * 32).view(1, 32, 32), "Small effusion.")


def test_home_defaults_to_the_user_cache_and_follows_the_variable(home, monkeypatch) -> None:
    assert mmclip_home() == home.absolute()
    monkeypatch.delenv("MMCLIP_HOME")
    assert mmclip_home() == Path.home() / ".cache" / "mmclip"


def test_a_name_that_is_not_a_directory_names_the_registry_and_the_command(home) -> None:
    assert mmclip.list_pretrained() == []
    with pytest.raises(PretrainedNotFoundError) as info:
        MMCLIPModel.from_pretrained("mmclip-tiny")
    message = str(info.value)
    assert str(home / "models") in message and "none yet" in message
    assert "mmclip demo" in message and "pretrained='demo'" in message
    assert isinstance(info.value, FileNotFoundError) and "\n" not in message
    with pytest.raises(FileNotFoundError, match="mmclip demo"):
        create_model("mmclip-tiny", pretrained="demo")


def test_register_then_load_by_tag_in_every_spelling(home, saved) -> None:
    reference = MMCLIPModel.from_pretrained(saved)
    target = register_pretrained(saved, "mmclip-tiny", "demo")
    assert target == home / "models" / "mmclip-tiny" / "demo"
    assert list_pretrained() == [("mmclip-tiny", "demo")]
    assert list_pretrained(as_str=True) == ["mmclip-tiny:demo"]
    expected = _embeds(reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedModelWarning)  # loaded weights: no warning
        for model in (
            mmclip.create_model("mmclip-tiny", pretrained="demo"),
            MMCLIPModel.from_pretrained("mmclip-tiny:demo"),
            create_model("mmclip-tiny", pretrained=str(target)),
        ):
            assert not model.training
            for got, want in zip(_embeds(model), expected, strict=True):
                torch.testing.assert_close(got, want)
    # the name alone now lists the tag to use
    with pytest.raises(PretrainedNotFoundError, match="'mmclip-tiny:demo'"):
        MMCLIPModel.from_pretrained("mmclip-tiny")
    with pytest.raises(PretrainedNotFoundError, match=r"mmclip-tiny:other.*mmclip-tiny:demo"):
        create_model("mmclip-tiny", pretrained="other")


def test_registering_again_replaces_the_model_and_leaves_no_temporary_folder(home, saved) -> None:
    register_pretrained(saved, "mmclip-tiny", "demo")
    other = tiny_model(make_tokenizer(), {"vision.depth": 1})
    other.save_pretrained(home.parent / "other")
    register_pretrained(home.parent / "other", "mmclip-tiny", "demo")
    assert MMCLIPModel.from_pretrained("mmclip-tiny:demo").config.vision.depth == 1
    assert sorted(p.name for p in (home / "models" / "mmclip-tiny").iterdir()) == ["demo"]


def test_bad_tags_and_sources_are_refused(home, saved, tmp_path) -> None:
    with pytest.raises(ValueError, match="tag"):
        register_pretrained(saved, "mmclip-tiny", "my tag")
    with pytest.raises(ValueError, match="tag"):
        register_pretrained(saved, "mmclip-tiny", "../escape")
    with pytest.raises(FileNotFoundError, match="not a saved model"):
        register_pretrained(tmp_path, "mmclip-tiny", "demo")
    assert list_pretrained() == []


def test_create_model_pretrained_takes_overrides_but_not_a_tokenizer(home, saved) -> None:
    register_pretrained(saved, "mmclip-tiny", "demo")
    model = create_model("mmclip-tiny", pretrained="demo", overrides={"loss_weights.mim": 0.0})
    assert model.config.loss_weights.mim == 0.0
    with pytest.raises(ValueError, match="tokenizer"):
        create_model("mmclip-tiny", tokenizer=make_tokenizer(), pretrained="demo")


def test_a_registered_tag_wins_over_a_folder_of_the_same_name(home, saved, monkeypatch) -> None:
    register_pretrained(saved, "mmclip-tiny", "demo")
    monkeypatch.chdir(home.parent)
    (home.parent / "demo").mkdir()  # e.g. `mmclip demo --out demo`
    model = create_model("mmclip-tiny", pretrained="demo")
    assert model.weights_source is not None and "models" in model.weights_source


def test_resolve_model_dir_takes_a_run_directory(home, saved) -> None:
    assert resolve_model_dir(saved.parent) == saved  # its model/ sub-directory
    assert resolve_model_dir(saved) == saved
