"""Lesion measures of the guidance and the masks on hand-built cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mmclip.eval.masks import MEASURES, GuidedMasks, lesion_overlap, lesion_patches

T, F = True, False

# 4 images of 2 × 2 patches; image 2 has no lesion patch and must be ignored.
LESIONS = torch.tensor([[T, F, F, F], [F, T, T, F], [F, F, F, F], [F, F, F, T]])
SCORES = torch.tensor(
    [
        [0.7, 0.1, 0.1, 0.1],  # on lesions 0.7, points at the lesion
        [0.4, 0.3, 0.2, 0.1],  # on lesions 0.5, points outside
        [0.1, 0.1, 0.1, 0.7],
        [0.1, 0.1, 0.2, 0.6],  # on lesions 0.6, points at the lesion
    ]
)
GUIDED = torch.tensor([[T, T, F, F], [T, F, T, F], [T, T, F, F], [F, F, T, T]])  # hits 1, ½, 1
RANDOM = torch.tensor([[F, T, T, F], [F, T, T, F], [F, F, T, T], [T, T, F, F]])  # hits 0, 1, 0


def _masks(scores: torch.Tensor = SCORES, guided: torch.Tensor = GUIDED) -> GuidedMasks:
    return GuidedMasks(scores=scores, guided=guided, random=RANDOM, tau=0.5, grid=2)


def test_the_measures_of_a_hand_built_case() -> None:
    out = lesion_overlap(_masks(), LESIONS, n_resamples=0)
    assert out.n_images == 3
    assert out.guided == pytest.approx(2.5 / 3)
    assert out.random == pytest.approx(1 / 3)
    assert out.guidance_on_lesions == pytest.approx(0.6)
    assert out.lesion_area == pytest.approx(1 / 3)
    assert out.mask_ratio == pytest.approx(0.5)
    assert out.concentration == pytest.approx(1.8)
    assert out.concentration == pytest.approx(out.guidance_on_lesions / out.lesion_area, rel=1e-12)
    assert out.pointing_game == pytest.approx(2 / 3)
    assert out.intervals == {}
    assert out.per_finding == {}


def test_uniform_guidance_has_concentration_one() -> None:
    out = lesion_overlap(_masks(scores=torch.full((4, 4), 0.25)), LESIONS, n_resamples=0)
    assert out.concentration == pytest.approx(1.0)


def test_pointing_game_counts_the_argmax_only() -> None:
    scores = SCORES.clone()
    scores[1] = torch.tensor([0.1, 0.2, 0.4, 0.3])  # now points at a lesion patch (2)
    assert lesion_overlap(_masks(scores=scores), LESIONS, n_resamples=0).pointing_game == 1.0
    scores[0] = torch.tensor([0.3, 0.4, 0.2, 0.1])  # most mass still near, argmax outside
    assert lesion_overlap(_masks(scores=scores), LESIONS, n_resamples=0).pointing_game == (
        pytest.approx(2 / 3)
    )


def test_images_without_lesion_patches_are_ignored() -> None:
    scores, guided = SCORES.clone(), GUIDED.clone()
    scores[2] = torch.tensor([0.97, 0.01, 0.01, 0.01])
    guided[2] = torch.tensor([F, F, F, F])
    base = lesion_overlap(_masks(), LESIONS, n_resamples=50)
    other = lesion_overlap(_masks(scores, guided), LESIONS, n_resamples=50)
    assert other.to_dict() == base.to_dict()
    # but a change on an image with lesions does change the result
    scores[3] = torch.tensor([0.4, 0.3, 0.2, 0.1])
    assert lesion_overlap(_masks(scores), LESIONS, n_resamples=0).pointing_game == (
        pytest.approx(1 / 3)
    )


def test_groups_give_per_finding_measures() -> None:
    groups = ["effusion", "effusion", "nodule", None]
    out = lesion_overlap(_masks(), LESIONS, groups=groups, n_resamples=0)
    assert set(out.per_finding) == {"effusion"}  # image 2 has no lesion, image 3 no group
    effusion = out.per_finding["effusion"]
    assert effusion.n_images == 2
    assert effusion.guided == pytest.approx(0.75)
    assert effusion.random == pytest.approx(0.5)
    assert effusion.concentration == pytest.approx(0.6 / 0.375)
    assert effusion.pointing_game == pytest.approx(0.5)
    assert effusion.per_finding == {}
    out = lesion_overlap(_masks(), LESIONS, groups=["a", "b", "a", "b"], n_resamples=0)
    assert {k: v.n_images for k, v in out.per_finding.items()} == {"a": 1, "b": 2}
    assert out.per_finding["a"].concentration == pytest.approx(0.7 / 0.25)
    assert out.per_finding["b"].concentration == pytest.approx(1.1 / 0.75)


def test_bootstrap_intervals_contain_the_point_estimates() -> None:
    out = lesion_overlap(_masks(), LESIONS, groups=["a", "a", None, "a"], n_resamples=300, seed=3)
    assert set(out.intervals) == set(MEASURES)
    for name in MEASURES:
        lo, hi = out.intervals[name]
        assert lo <= getattr(out, name) <= hi, name
    assert out.intervals["guided"][0] < out.intervals["guided"][1]
    assert out.per_finding["a"].intervals == out.intervals  # the same 3 images, same seed
    again = lesion_overlap(_masks(), LESIONS, n_resamples=300, seed=3)
    assert again.intervals == out.intervals  # seeded
    json.dumps(out.to_dict())


def test_no_image_with_lesions_gives_nan_measures() -> None:
    out = lesion_overlap(_masks(), torch.zeros(4, 4, dtype=torch.bool), groups=["a"] * 4)
    assert out.n_images == 0
    assert math.isnan(out.guided) and math.isnan(out.concentration)
    assert out.per_finding == {}


def test_mismatched_shapes_raise() -> None:
    with pytest.raises(ValueError, match=r"\(4, 9\).*\(4, 4\)"):
        lesion_overlap(_masks(), torch.zeros(4, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        lesion_overlap(_masks(), LESIONS[:3])
    with pytest.raises(ValueError, match="3 groups for 4 images"):
        lesion_overlap(_masks(), LESIONS, groups=["a", "b", "c"])


def test_lesion_patches_thresholds_the_lesion_share_of_each_patch() -> None:
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, :2, :2] = True  # the whole top-left patch
    masks[1, 3, 3] = True  # a quarter of the bottom-right patch
    patches = lesion_patches(masks, grid=2)
    assert patches.tolist() == [[T, F, F, F], [F, F, F, T]]
    assert lesion_patches(masks, grid=2, min_fraction=0.5).tolist() == [
        [T, F, F, F],
        [F, F, F, F],
    ]


def test_several_text_sets_share_one_image_pass_and_match_one_set_at_a_time() -> None:
    from mmclip.eval.masks import guidance_maps, guidance_maps_for_texts
    from tests.models.helpers import make_tokenizer, report, tiny_model

    model = tiny_model(make_tokenizer()).eval()
    images = torch.randn(5, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    own = [report(i % 5, i % 2) for i in range(5)]
    wrong = [report((i + 2) % 5, (i + 1) % 2) for i in range(5)]
    calls = []
    handle = model.visual.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    both = guidance_maps_for_texts(model, images, [own, wrong], batch_size=3)
    handle.remove()
    assert calls == [3, 2]  # one image pass per chunk, whatever the number of text sets
    torch.testing.assert_close(both[0], guidance_maps(model, images, own, batch_size=3))
    torch.testing.assert_close(both[1], guidance_maps(model, images, wrong, batch_size=3))
    assert not torch.allclose(both[0], both[1])
    with pytest.raises(ValueError, match="5 images but 4 texts"):
        guidance_maps_for_texts(model, images, [own, wrong[:4]])
