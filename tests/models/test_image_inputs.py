"""One input contract for images: the same X-ray in every supported form gives the same
embedding (mmclip.models.preprocess.to_model_images behind every entry point)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmclip.models.encoding import UntrainedModelWarning
from mmclip.models.preprocess import is_dicom_file, load_image_input, to_model_images

from .helpers import make_tokenizer, tiny_model

pytestmark = pytest.mark.filterwarnings("ignore::mmclip.models.encoding.UntrainedModelWarning")

H, W = 40, 48  # not the model's 32 px square: every form is resized and cropped


def _grey() -> np.ndarray:
    """A smooth uint8 [H, W] picture spanning 0..255 (so DICOM min-max keeps its values)."""
    yy, xx = np.meshgrid(np.linspace(0, 1, H), np.linspace(0, 1, W), indexing="ij")
    picture = 0.5 + 0.3 * np.sin(7 * xx) * np.cos(5 * yy) + 0.2 * (xx - yy)
    picture = (picture - picture.min()) / (picture.max() - picture.min())
    return np.round(picture * 255).astype(np.uint8)


def write_dicom(path: Path, pixels: np.ndarray, bits: int = 16) -> Path:
    """A minimal MONOCHROME2 DICOM file of ``pixels`` (uint16) written with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.PatientID = "p1"
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def model():
    return tiny_model(make_tokenizer()).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    grey = _grey()
    Image.fromarray(grey).save(root / "xray.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(root / "xray16.png")
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(root / "xray_rgb.jpg", quality=100)
    write_dicom(root / "xray.dcm", grey.astype(np.uint16) * 257)
    write_dicom(root / "xray-no-suffix", grey.astype(np.uint16) * 16, bits=12)
    return {p.name: p for p in root.iterdir()}


def _forms(files: dict[str, Path]) -> dict[str, object]:
    import pydicom

    grey = _grey()
    unit = grey.astype(np.float32) / 255.0
    t = torch.from_numpy(unit)
    return {
        "path str": str(files["xray.png"]),
        "Path": files["xray.png"],
        "16-bit PNG": files["xray16.png"],
        "DICOM": files["xray.dcm"],
        "DICOM without suffix (12 bit)": files["xray-no-suffix"],
        "pydicom dataset": pydicom.dcmread(files["xray.dcm"]),
        "PIL L": Image.fromarray(grey),
        "PIL RGB": Image.fromarray(grey).convert("RGB"),
        "PIL I;16": Image.fromarray(grey.astype(np.uint16) * 257),
        "numpy uint8 [H, W]": grey,
        "numpy uint8 [H, W, 1]": grey[..., None],
        "numpy uint8 [H, W, 3]": np.repeat(grey[..., None], 3, axis=2),
        "numpy uint8 [H, W, 4]": np.dstack([grey, grey, grey, np.full_like(grey, 255)]),
        "numpy uint16": grey.astype(np.uint16) * 257,
        "numpy float32": unit,
        "numpy float64 [1, H, W]": unit.astype(np.float64)[None],
        "tensor [H, W]": t,
        "tensor [1, H, W]": t[None],
        "tensor [3, H, W]": t.expand(3, H, W),
        "tensor [H, W, 3]": t[..., None].expand(H, W, 3),
        "tensor uint8 [H, W]": torch.from_numpy(grey),
        "tensor float16 [1, H, W]": t[None].half(),
        "4-D tensor [1, 1, H, W]": t[None, None],
        "list [tensor]": [t[None]],
        "list [path]": [str(files["xray.png"])],
        "tuple [numpy]": (grey,),
    }


def test_every_form_of_one_image_gives_the_same_embedding(model, files) -> None:
    with torch.no_grad():
        reference = model.encode_image(str(files["xray.png"]))
        for name, form in _forms(files).items():
            z = model.encode_image(form)
            assert z.shape == reference.shape, name
            # float16 rounds the pixels (step 1/2048): a looser bound for that form only
            atol = 2e-3 if "float16" in name else 1e-5
            torch.testing.assert_close(z, reference, atol=atol, rtol=0, msg=name)


def test_a_bare_tensor_and_the_same_tensor_in_a_list_agree(model) -> None:
    image = torch.rand(1, 32, 32)
    with torch.no_grad():
        bare = model.encode_image(image)
        listed = model.encode_image([image])
    torch.testing.assert_close(bare, listed)


def test_a_colour_jpeg_of_a_grey_image_is_the_grey_image(model, files) -> None:
    with torch.no_grad():
        grey = model.encode_image(files["xray.png"])
        colour = model.encode_image(files["xray_rgb.jpg"])  # JPEG rounding only
    assert float((grey * colour).sum()) > 0.999


def test_batches_list_and_4d_match_one_by_one(model) -> None:
    images = torch.rand(3, 1, H, W)
    with torch.no_grad():
        one_by_one = torch.cat([model.encode_image(x) for x in images])
        as_batch = model.encode_image(images)
        as_list = model.encode_image(list(images))
    torch.testing.assert_close(as_batch, one_by_one, atol=1e-5, rtol=0)
    torch.testing.assert_close(as_list, one_by_one, atol=1e-5, rtol=0)


def test_encode_pixels_takes_the_preprocessed_batch_of_to_model_images(model, files) -> None:
    pixels = model.to_model_images([files["xray.png"], files["xray.dcm"]])
    v = model.config.vision
    assert pixels.shape == (2, v.in_chans, v.image_size, v.image_size)
    direct = to_model_images(files["xray.png"], v.image_size, v.in_chans, 0.5, 0.5)
    assert direct.shape == (1, v.in_chans, v.image_size, v.image_size)
    with torch.no_grad():
        torch.testing.assert_close(
            model.encode_pixels(pixels), model.encode_image([files["xray.png"], files["xray.dcm"]])
        )


def test_value_range_rules(files) -> None:
    grey = _grey()
    expected = torch.from_numpy(grey.astype(np.float32) / 255.0)[None]
    # 12-bit values stored in 16 bits are scaled by 4095, not 65535
    twelve = (grey.astype(np.uint16) * 16).clip(0, 4095)
    torch.testing.assert_close(
        load_image_input(twelve), torch.from_numpy(twelve / 4095.0).float()[None]
    )
    torch.testing.assert_close(load_image_input(grey.astype(np.int64)), expected)
    torch.testing.assert_close(load_image_input(files["xray.dcm"]), expected, atol=1e-6, rtol=0)
    assert is_dicom_file(files["xray-no-suffix"]) and not is_dicom_file(files["xray.png"])


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.rand(1, 8, 8) * 255, ValueError, r"\[0, 1\].*encode_pixels"),
        (torch.rand(1, 8, 8) - 0.5, ValueError, r"\[0, 1\]"),
        (torch.full((8, 8), float("nan")), ValueError, "NaN"),
        (np.full((8, 8), -3, dtype=np.int16), ValueError, "negative"),
        (np.zeros((8, 8), dtype=bool), ValueError, "integer or floating"),
        (torch.zeros(8, 8, 8), ValueError, "channels"),
        (torch.zeros(2, 3, 4, 5, 6), ValueError, "shape"),
        ([torch.zeros(1, 1, 8, 8)], ValueError, "4-D batch"),
        ([], ValueError, "no image"),
        (3.0, TypeError, "float"),
    ],
)
def test_bad_inputs_raise_one_clear_error(model, bad, error, match) -> None:
    with pytest.raises(error, match=match):
        model.encode_image(bad)


def test_missing_and_undecodable_files_are_named(model, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        model.encode_image(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match=r"nope\.dcm"):
        model.encode_image(tmp_path / "nope.dcm")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"bad\.png.*cannot be decoded"):
        model.encode_image(tmp_path / "bad.png")
    (tmp_path / "bad.dcm").write_bytes(b"not a dicom either")
    with pytest.raises(ValueError, match=r"bad\.dcm"):
        model.encode_image(tmp_path / "bad.dcm")


@pytest.mark.filterwarnings("default::mmclip.models.encoding.UntrainedModelWarning")
def test_encode_warns_once_about_random_weights_and_not_after_loading(tmp_path) -> None:
    from mmclip.models import MMCLIPModel

    fresh = tiny_model(make_tokenizer()).eval()
    with pytest.warns(UntrainedModelWarning, match="random weights.*mmclip demo"):
        fresh.encode_image(torch.rand(1, 32, 32))
    with warnings_as_errors():
        fresh.encode_text("No acute findings.")  # once per model
    fresh.save_pretrained(tmp_path / "m")
    loaded = MMCLIPModel.from_pretrained(tmp_path / "m")
    assert loaded.weights_source is not None
    with warnings_as_errors():
        loaded.encode(torch.rand(1, 32, 32), "No acute findings.")
    other = tiny_model(make_tokenizer())
    other.load_state_dict(loaded.state_dict())
    with warnings_as_errors():
        other.encode_image(torch.rand(1, 32, 32))


@contextlib.contextmanager
def warnings_as_errors() -> Iterator[None]:
    """The untrained-model warning raised as an error inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedModelWarning)
        yield
