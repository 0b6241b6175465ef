"""`mmclip zeroshot --images` / `mmclip retrieval --images`: a user's own PNG and DICOM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmclip.models.home import register_pretrained
from tests.models.helpers import make_tokenizer, tiny_model
from tests.models.test_image_inputs import write_dicom

from .test_cli import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A registered mmclip-tiny:demo in a temporary MMCLIP_HOME, a PNG and a DICOM."""
    root = tmp_path_factory.mktemp("zeroshot-images")
    tiny_model(make_tokenizer()).save_pretrained(root / "model")
    grey = (np.random.default_rng(1).random((48, 40)) * 255).astype(np.uint8)
    grey[0, 0], grey[0, 1] = 0, 255  # full range: the DICOM's min-max keeps the values
    Image.fromarray(grey).save(root / "a.png")
    write_dicom(root / "b.dcm", grey.astype(np.uint16) * 257)
    return {"model": root / "model", "png": root / "a.png", "dcm": root / "b.dcm"}


@pytest.fixture
def model(files, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("MMCLIP_HOME", str(tmp_path / "home"))
    register_pretrained(files["model"], "mmclip-tiny", "demo")
    return "mmclip-tiny:demo"


def test_zeroshot_on_a_png_and_a_dicom_prints_image_by_finding(capsys, files, model) -> None:
    images = [str(files["png"]), str(files["dcm"])]
    argv = ["zeroshot", "--model", model, "--images", *images]
    code, out, err = run_cli(capsys, *argv, "--findings", "Pneumonia", "Pleural Effusion")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split() == ["image", "Pneumonia", "Pleural", "Effusion"]
    rows = [line.split() for line in lines[1:3]]
    assert [r[0] for r in rows] == images
    values = np.array([[float(v) for v in r[1:]] for r in rows])
    assert ((values >= 0) & (values <= 1)).all()
    np.testing.assert_allclose(values[0], values[1], atol=1e-3)  # the same picture, 3 digits
    assert "need not sum to 1" in lines[3]


def test_zeroshot_with_own_prompts_rows_sum_to_one(capsys, files, model) -> None:
    prompts = ["Small left pleural effusion.", "Normal chest."]
    argv = ["zeroshot", "--model", model, "--images", str(files["png"]), "--prompts", *prompts]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    row = out.strip().splitlines()[1].split()
    assert row[0] == str(files["png"]) and abs(float(row[-2]) + float(row[-1]) - 1) < 2e-3


def test_retrieval_ranks_the_texts_for_each_image(capsys, files, model) -> None:
    texts = ["Small left pleural effusion.", "Normal chest."]
    argv = ["retrieval", "--model", model, "--images", str(files["dcm"]), "--texts", *texts]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert f"{files['dcm']}: best match" in out


def test_a_single_image_as_root_points_to_images(capsys, files, model) -> None:
    for command in ("zeroshot", "probe", "retrieval"):
        code, _, err = run_cli(capsys, command, "--model", model, "--root", str(files["png"]))
        line = assert_one_line_error(code, err, "is one image, not a dataset", "--images")
        assert "prepare synthetic" not in line
    code, _, err = run_cli(capsys, "zeroshot", "--model", model, "--root", str(files["dcm"]))
    assert_one_line_error(code, err, "--images")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "give --images"),
        (["--images", "X", "--root", "Y"], "not both"),
        (["--images", "X"], "--findings"),
        (["--images", "X", "--findings", "Sunburn"], "no zero-shot prompts for finding"),
        (["--images", "nope.png", "--findings", "Edema"], "nope.png"),
        (["--root", "Y", "--prompts", "a text"], "--prompts goes with --images"),
    ],
)
def test_wrong_zeroshot_requests_are_one_line(capsys, model, extra, expected) -> None:
    code, _, err = run_cli(capsys, "zeroshot", "--model", model, *extra)
    assert_one_line_error(code, err, expected)


def test_encode_reads_dicom_and_png_of_one_picture_alike(capsys, files, model, tmp_path) -> None:
    out = tmp_path / "emb.npy"
    argv = ["encode", "--model", model, "--images", str(files["dcm"]), str(files["png"])]
    code, _, err = run_cli(capsys, *argv, "--out", str(out), "--device", "cpu")
    assert code == 0, err
    embeds = np.load(out)
    np.testing.assert_allclose(embeds[0], embeds[1], atol=1e-5)
