"""One-call zero-shot and retrieval of a user's own images (mmclip.zeroshot / retrieve)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmclip
from mmclip.eval.predict import ImageTextTable, canonical_finding, retrieve, zeroshot
from tests.models.helpers import make_tokenizer, tiny_model
from tests.models.test_image_inputs import write_dicom

pytestmark = pytest.mark.filterwarnings("ignore::mmclip.models.encoding.UntrainedModelWarning")


@pytest.fixture(scope="module")
def model():
    return tiny_model(make_tokenizer())


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("own-images")
    rng = np.random.default_rng(0)
    grey = (rng.random((40, 36)) * 255).astype(np.uint8)
    grey[0, 0], grey[0, 1] = 0, 255  # full range: the DICOM's min-max keeps the values
    Image.fromarray(grey).save(root / "a.png")
    write_dicom(root / "a.dcm", grey.astype(np.uint16) * 257)
    Image.fromarray(255 - grey).save(root / "b.png")
    return [root / "a.png", root / "a.dcm", root / "b.png"]


def test_zeroshot_gives_a_table_of_probabilities_per_image_and_finding(model, images) -> None:
    table = zeroshot(model, [str(p) for p in images], ["pleural effusion", "Pneumonia"])
    assert isinstance(table, ImageTextTable) and not model.training
    assert table.columns == ["Pleural Effusion", "Pneumonia"]
    assert table.rows == [str(p) for p in images]
    assert table.values.shape == (3, 2) and ((table.values > 0) & (table.values < 1)).all()
    np.testing.assert_allclose(table.values[0], table.values[1], atol=1e-5)  # PNG == DICOM
    as_dict = table.to_dict()
    assert set(as_dict[str(images[0])]) == {"Pleural Effusion", "Pneumonia"}
    text = str(table)
    assert text.splitlines()[0].split() == ["image", "Pleural", "Effusion", "Pneumonia"]
    assert "need not sum to 1" in text


def test_the_model_method_and_the_package_function_are_the_same_call(model, images) -> None:
    a = model.zeroshot(images[0], ["Cardiomegaly"])
    b = mmclip.zeroshot(model, images[0], findings=["Cardiomegaly"])
    np.testing.assert_array_equal(a.values, b.values)
    assert a.rows == [str(images[0])]


def test_multiclass_and_prompts_rows_sum_to_one(model, images) -> None:
    multi = zeroshot(model, images, ["Cardiomegaly", "Pneumothorax"], mode="multiclass")
    np.testing.assert_allclose(multi.values.sum(axis=1), 1.0, rtol=1e-6)
    prompts = ["Small left pleural effusion.", "No acute cardiopulmonary abnormality."]
    own = zeroshot(model, torch.rand(2, 1, 32, 32), prompts=prompts)
    assert own.columns == prompts and own.rows == ["image 0", "image 1"]
    np.testing.assert_allclose(own.values.sum(axis=1), 1.0, rtol=1e-6)


def test_retrieve_ranks_texts_by_cosine_similarity(model, images) -> None:
    texts = ["Small left pleural effusion.", "Heart size is normal.", "Right pneumothorax."]
    table = retrieve(model, images, texts)
    with torch.no_grad():
        expected = model.encode_image(images) @ model.encode_text(texts).t()
    np.testing.assert_allclose(table.values, expected.double().numpy(), atol=1e-5)
    ranked = table.ranked(0)
    assert [score for _, score in ranked] == sorted(table.values[0], reverse=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"findings": ["Sunburn"]}, r"no zero-shot prompts for finding 'Sunburn'.*Pneumonia"),
        ({}, "findings=.*or prompts="),
        ({"findings": ["Edema"], "prompts": ["x"]}, "findings=.*or prompts="),
        ({"findings": []}, "no finding or prompt"),
        ({"findings": ["Edema"], "mode": "softmax"}, "mode"),
    ],
)
def test_bad_requests_raise_one_clear_error(model, images, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        zeroshot(model, images[0], **kwargs)


def test_finding_names_are_matched_without_case_or_underscores() -> None:
    assert canonical_finding("pleural_effusion") == "Pleural Effusion"
    assert canonical_finding(" no  finding ") == "No Finding"


def test_embedding_arrays_are_what_mmclip_encode_writes(model, images) -> None:
    from mmclip.eval.embed import embedding_arrays

    paths = [str(p) for p in images]
    arrays = embedding_arrays(model, images=paths, texts=["Small left effusion."])
    assert list(arrays) == ["image_embeds", "text_embeds"]
    assert arrays["image_embeds"].shape[0] == 3 and arrays["text_embeds"].shape[0] == 1
    np.testing.assert_allclose(np.linalg.norm(arrays["image_embeds"], axis=1), 1.0, atol=1e-5)
    assert embedding_arrays(model) == {}
    with pytest.raises(ValueError, match="not both"):
        embedding_arrays(model, images=paths, records=[object()])  # type: ignore[list-item]
