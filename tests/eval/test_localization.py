"""The localisation measures and their text-free baselines: hand-made maps, the nodule
geometry, the wrong-text pick, a tiny model on a fake JSRT folder, the ``mmclip localize``
command and the demo suite's baseline table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmclip
from mmclip.eval.localization import (
    LOCALIZATION_BASELINES,
    LOCALIZATION_MEASURES,
    baseline_maps,
    compare_maps,
    evaluate_localization,
    image_intensity,
    localization_table,
    nodule_patches,
    patch_means,
    wrong_side_texts,
)
from mmclip.eval.masks import GuidedMasks, lesion_overlap, mask_hit_rate
from tests.cli.test_cli import run_cli

GRID = 8
P = GRID * GRID


def _lesions(n: int = 20, seed: int = 0) -> torch.Tensor:
    """n images with a 2 × 2 block of lesion patches at a random place."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(n, GRID, GRID, dtype=torch.bool)
    for i in range(n):
        r, c = torch.randint(0, GRID - 1, (2,), generator=g).tolist()
        out[i, r : r + 2, c : c + 2] = True
    return out.flatten(1)


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------


def test_a_small_disc_inside_one_patch_marks_that_patch() -> None:
    # grid 4 on the 512 grid: patches of 128 px; (192, 64) is the centre of row 0, col 1
    patches = nodule_patches([192.0], [64.0], [10.0], grid=4)
    assert patches.shape == (1, 16)
    assert patches[0].nonzero().flatten().tolist() == [1]
    # on a patch corner: the four patches around it
    corner = nodule_patches([128.0], [128.0], [5.0], grid=4)
    assert corner[0].nonzero().flatten().tolist() == [0, 1, 4, 5]


def test_overlap_is_the_distance_to_the_nearest_point_of_the_patch() -> None:
    # centre (200, 64), radius 60: patch col 0 ends at x = 128 (72 px away), col 2 starts at
    # x = 256 (56 px away)
    patches = nodule_patches([200.0], [64.0], [60.0], grid=4)
    assert patches[0].nonzero().flatten().tolist() == [1, 2]


def test_the_geometry_scales_from_the_512_grid_to_the_model_grid() -> None:
    grid = 14  # a 224 px model with 16 px patches
    cell = 512 / grid
    row, col = 3, 5
    x, y = (col + 0.5) * cell, (row + 0.5) * cell
    assert nodule_patches([x], [y], [5.0], grid)[0].nonzero().flatten().tolist() == [
        row * grid + col
    ]
    # the same disc described on a 256 grid (halved) is the same set of patches
    xs, ys, rs = (
        np.array([100.0, 400.0, 260.0]),
        np.array([80.0, 300.0, 500.0]),
        np.array([4.0, 40.0, 15.0]),
    )
    full = nodule_patches(xs, ys, rs, grid, 512)
    half = nodule_patches(xs / 2, ys / 2, rs / 2, grid, 256)
    assert torch.equal(full, half)
    # a disc of radius r covers about π r² / cell² patches (plus the rim)
    big = nodule_patches([256.0], [256.0], [40.0], grid)
    assert math.pi * 40**2 / cell**2 <= big.sum() <= math.pi * (40 + cell) ** 2 / cell**2


# --------------------------------------------------------------------------------------------
# measures on hand-made maps
# --------------------------------------------------------------------------------------------


def test_a_map_on_the_disc_points_at_it_with_concentration_one_over_its_share() -> None:
    lesions = _lesions()
    peaked = lesions.float()  # the map is the disc itself
    out = compare_maps({"model": peaked}, lesions, mask_ratio=0.25, tau=0.5, n_resamples=0)
    m = out.methods["model"]
    assert m.pointing_game == 1.0
    assert m.on_lesion == pytest.approx(1.0)
    assert m.lesion_area == pytest.approx(4 / P)
    assert m.concentration == pytest.approx(P / 4)  # 1 / the lesion patches' share
    assert m.lesion_hit == pytest.approx(1.0)  # 16 masked patches always take the 4 on the disc


def test_a_uniform_map_has_concentration_one_and_chance_pointing_game() -> None:
    lesions = _lesions()
    lesions[0, :] = False
    lesions[0, :9] = True  # one image with more lesion patches
    out = compare_maps(
        {"uniform": torch.full((20, P), 0.3)}, lesions, mask_ratio=0.5, tau=0.5, n_resamples=0
    )
    m = out.methods["uniform"]
    assert m.concentration == pytest.approx(1.0, abs=1e-12)
    expected = lesions.float().sum(dim=1).mean().item() / P  # E[#lesion patches / P]
    assert m.pointing_game == pytest.approx(expected, abs=1e-12)
    assert out.differences == {}  # no reference row


def test_uniform_lesion_hit_averaged_over_draws_is_the_mask_ratio() -> None:
    lesions = _lesions(40)
    for ratio in (0.25, 0.5, 0.75):
        hit = mask_hit_rate(torch.ones(40, P), lesions, ratio, 0.5, n_draws=100, seed=1)
        assert hit.shape == (40,)
        assert hit.mean().item() == pytest.approx(ratio, abs=0.02)
    again = mask_hit_rate(torch.ones(40, P), lesions, 0.5, 0.5, n_draws=100, seed=1)
    assert torch.equal(again, mask_hit_rate(torch.ones(40, P), lesions, 0.5, math.inf, 100, 1))


def test_pointing_game_counts_ties_as_a_random_pick() -> None:
    lesions = torch.zeros(1, P, dtype=torch.bool)
    lesions[0, 0] = True
    scores = torch.full((1, P), 0.1)
    scores[0, :2] = 1.0  # the top is tied between a lesion patch and another
    out = compare_maps({"m": scores}, lesions, mask_ratio=0.5, tau=0.5, n_resamples=0)
    assert out.methods["m"].pointing_game == pytest.approx(0.5)


def test_the_same_bootstrap_for_every_row_and_paired_differences() -> None:
    lesions = _lesions(30)
    noisy = lesions.float() + torch.rand(30, P, generator=torch.Generator().manual_seed(0))
    maps = {"model": noisy, "uniform": torch.ones(30, P)}
    out = compare_maps(maps, lesions, mask_ratio=0.5, tau=0.5, n_resamples=200, seed=3)
    assert list(out.methods) == ["model", "uniform"]
    for name, m in out.methods.items():
        assert set(m.intervals) == set(LOCALIZATION_MEASURES)
        for measure in LOCALIZATION_MEASURES:
            lo, hi = m.intervals[measure]
            assert lo <= getattr(m, measure) <= hi, (name, measure)
    diff = out.differences["uniform"]
    model, uniform = out.methods["model"], out.methods["uniform"]
    for measure in LOCALIZATION_MEASURES:
        value, lo, hi = diff[measure]
        assert value == pytest.approx(getattr(model, measure) - getattr(uniform, measure))
        assert lo <= value <= hi
    assert diff["concentration"][1] > 0  # the disc-aware map is clearly better
    again = compare_maps(maps, lesions, mask_ratio=0.5, tau=0.5, n_resamples=200, seed=3)
    assert again.to_dict() == out.to_dict()  # seeded
    text = json.dumps(out.to_dict())
    assert '"reference": "model"' in text


def test_images_without_lesion_patches_are_left_out() -> None:
    lesions = _lesions(6)
    lesions[2] = False
    out = compare_maps(
        {"model": lesions.float() + 0.01}, lesions, mask_ratio=0.5, tau=0.5, n_resamples=0
    )
    assert out.n_images == 5


def test_bad_maps_raise() -> None:
    lesions = _lesions(4)
    with pytest.raises(ValueError, match="at least one map"):
        compare_maps({}, lesions, 0.5, 0.5)
    with pytest.raises(ValueError, match="'m' is"):
        compare_maps({"m": torch.ones(4, P + 1)}, lesions, 0.5, 0.5)
    with pytest.raises(ValueError, match="negative"):
        compare_maps({"m": -torch.ones(4, P)}, lesions, 0.5, 0.5)
    with pytest.raises(ValueError, match="sums to zero"):
        compare_maps({"m": torch.zeros(4, P)}, lesions, 0.5, 0.5)


def test_baseline_maps_of_images() -> None:
    intensity = torch.full((2, 32, 32), 0.2)
    intensity[0, :4, :4] = 0.9  # a bright top-left patch in image 0
    intensity[1, 28:, 28:] = 0.0  # a dark bottom-right patch in image 1
    mean = intensity.mean(dim=0)
    prior = torch.zeros(P)
    prior[10] = 1.0
    maps = baseline_maps(intensity, GRID, mean, prior)
    assert list(maps) == ["uniform", "image-minus-mean", "brightest", "location-prior"]
    assert all(m.shape == (2, P) for m in maps.values())
    assert maps["brightest"][0].argmax() == 0
    assert maps["image-minus-mean"][1].argmax() in (0, P - 1)
    assert torch.equal(maps["location-prior"][1], prior)
    assert set(baseline_maps(intensity, GRID)) == {"uniform", "brightest"}
    assert patch_means(intensity, GRID)[0, 0] == pytest.approx(0.9)
    images = (intensity[:, None] - 0.5) / 0.25  # normalised as the model sees them
    assert torch.allclose(image_intensity(images, 0.5, 0.25), intensity, atol=1e-6)


def test_the_table_has_a_row_per_map_and_the_differences() -> None:
    lesions = _lesions(10)
    maps = {"model": lesions.float() + 0.1, "uniform": torch.ones(10, P)}
    out = compare_maps(maps, lesions, mask_ratio=0.5, tau=math.inf, n_resamples=50)
    table = localization_table(out)
    assert table == out.markdown()
    assert "| **model** |" in table and "| uniform | 1.00 [1.00, 1.00]× |" in table
    assert "| − uniform |" in table and "τ = ∞" in table
    assert "`uniform`:" in table
    assert out.to_dict()["tau"] == "inf"


def test_lesion_overlap_averages_the_uniform_mask_over_draws() -> None:
    lesions = _lesions(30)
    guided = torch.zeros(30, P, dtype=torch.bool)
    guided[:, : P // 2] = True
    single = torch.zeros(30, P, dtype=torch.bool)  # one "unlucky" uniform draw: no hit
    single[:, -P // 2 :] = True
    masks = GuidedMasks(torch.ones(30, P) / P, guided, single, 0.5, GRID)
    one = lesion_overlap(masks, lesions, n_resamples=0)
    many = lesion_overlap(masks, lesions, n_resamples=0, n_random_draws=200)
    per_image = (single & lesions).sum(dim=1) / lesions.sum(dim=1)
    assert one.random == pytest.approx(per_image.float().mean().item())  # the one given draw
    assert many.random == pytest.approx(0.5, abs=0.03)
    assert many.guided == one.guided


# --------------------------------------------------------------------------------------------
# the wrong text
# --------------------------------------------------------------------------------------------


class _Rec:
    def __init__(self, side: str | None, text: str) -> None:
        self.meta = {"side": side, "finding_text": text}


def test_wrong_side_texts_take_the_other_side_and_the_same_lobe() -> None:
    records = [
        _Rec("left", "Nodule in the left upper lobe."),
        _Rec("right", "Nodule in the right lower lobe."),
        _Rec("right", "Nodule in the right upper lobe."),
        _Rec(None, "Nodule in the lung."),
    ]
    wrong = wrong_side_texts(records, seed=0)
    assert wrong[0] == "Nodule in the right upper lobe."  # same lobe, other side
    assert wrong[1] == "Nodule in the left upper lobe."  # no left lower: any left
    assert wrong[2] == "Nodule in the left upper lobe."
    assert wrong[3] == "No acute cardiopulmonary abnormality."
    assert wrong_side_texts(records[1:3]) == ["No acute cardiopulmonary abnormality."] * 2
    pool = [_Rec("left", "Nodule in the left lower lobe.")]
    assert wrong_side_texts(records[1:2], pool)[0] == "Nodule in the left lower lobe."


# --------------------------------------------------------------------------------------------
# a tiny model on a fake JSRT folder
# --------------------------------------------------------------------------------------------

LOCATIONS = ["l.upper lobe(S1+2)", "r.lower lobe(S6)", "r.upper lobe", "l.lower lobe"]


def _write_jsrt(root: Path, n_nodule: int = 8, n_normal: int = 4, size: int = 128) -> Path:
    """A JSRT-layout folder: a bright disc at each nodule (geometry on the 512 grid)."""
    from mmclip.data.sources.jsrt import JSRT_COLUMNS

    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] * (512 / size)
    rows = []
    for i in range(n_nodule + n_normal):
        nodule = i < n_nodule
        name = f"images/JPC{'LN' if nodule else 'NN'}{i:03d}.jpg"
        pixels = rng.normal(90, 10, (size, size))
        row = dict.fromkeys(JSRT_COLUMNS, "")
        row.update(image=name, nodule=str(int(nodule)), age="60", sex="Male")
        if nodule:
            location = LOCATIONS[i % 4]
            x = 360.0 if location.startswith("l") else 150.0
            y = 150.0 if "upper" in location else 330.0
            pixels[(xx - x) ** 2 + (yy - y) ** 2 < 30.0**2] += 80
            row.update(x=str(x), y=str(y), radius_px="30.0", location=location, size_mm="42")
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name)
        rows.append(row)
    with open(root / "nodules.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(JSRT_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def jsrt_root(tmp_path_factory) -> Path:
    return _write_jsrt(tmp_path_factory.mktemp("jsrt"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from mmclip.models import build_wordpiece_tokenizer

    torch.manual_seed(0)
    texts = ["Nodule in the left upper lobe.", "Nodule in the right lower lobe."] * 5
    texts += ["No acute cardiopulmonary abnormality."] * 5
    tokenizer = build_wordpiece_tokenizer(texts, vocab_size=120)
    model = mmclip.create_model("mmclip-tiny", tokenizer=tokenizer)
    root = tmp_path_factory.mktemp("loc-model")
    model.save_pretrained(root / "model")
    return root / "model"


def test_evaluate_localization_with_a_tiny_model(jsrt_root: Path, model_dir: Path) -> None:
    from mmclip.data.sources.jsrt import load_jsrt
    from mmclip.models import MMCLIPModel

    model = MMCLIPModel.from_pretrained(model_dir)
    records = load_jsrt(jsrt_root, split="all")
    test = [r for r in records if r.split == "test"]
    train = [r for r in records if r.split == "train"]
    out = evaluate_localization(model, test, train, n_draws=20, n_resamples=50)
    assert list(out.methods) == ["model", *LOCALIZATION_BASELINES]
    n_test_nodules = sum(r.meta["nodule"] for r in test)
    assert out.n_images == out.setup["n_nodule_images"] == n_test_nodules
    assert out.grid == model.visual.grid_size
    assert out.mask_ratio == model.config.attmim.mask_ratio
    assert out.methods["uniform"].concentration == pytest.approx(1.0, abs=1e-9)
    assert out.methods["brightest"].pointing_game > 0.5  # the bright discs are the nodules
    assert set(out.differences) == set(LOCALIZATION_BASELINES)
    assert out.setup["texts"] == [r.meta["finding_text"] for r in test if r.meta["nodule"]]
    sides = [r.meta["side"] for r in test if r.meta["nodule"]]
    for side, wrong in zip(sides, out.setup["wrong_texts"], strict=True):
        assert ("left" in wrong) == (side == "right")  # the other side's text
    json.dumps(out.to_dict())
    prompted = evaluate_localization(
        model, test, (), prompt="Lung nodule.", baselines=("uniform", "image-minus-mean"),
        n_draws=5, n_resamples=0, wrong_text="normal",
    )  # fmt: skip
    assert list(prompted.methods) == ["model", "uniform"]  # no training images: no mean image
    with pytest.raises(ValueError, match="unknown baselines"):
        evaluate_localization(model, test, train, baselines=("nope",))
    normals = [r for r in records if not r.meta["nodule"]]
    with pytest.raises(ValueError, match="has a nodule"):
        evaluate_localization(model, normals, train)


def test_one_assembly_of_the_baseline_rows(jsrt_root: Path, model_dir: Path) -> None:
    """measure_with_baselines: the rows evaluate_localization and the suite both report."""
    from mmclip.data.sources.jsrt import load_jsrt
    from mmclip.eval.localization import _geometry, measure_with_baselines
    from mmclip.eval.masks import guidance_maps
    from mmclip.models import MMCLIPModel

    model = MMCLIPModel.from_pretrained(model_dir)
    nodules = [r for r in load_jsrt(jsrt_root, split="all") if r.meta["nodule"]][:4]
    images = mmclip.eval.load_images(model, nodules, backend="pil")
    texts = [r.meta["finding_text"] for r in nodules]
    grid = int(model.visual.grid_size)
    lesions = _geometry(nodules, grid)
    own = guidance_maps(model, images, texts)
    kwargs = {"tau": 0.5, "n_draws": 3, "n_resamples": 0}
    plain = measure_with_baselines(model, images, own, lesions, **kwargs)
    assert list(plain.methods) == ["model", "uniform", "brightest"]  # no inputs for the rest
    full = measure_with_baselines(
        model, images, own, lesions, mean_image=images.new_zeros(images.shape[-2:]),
        location_prior=lesions.double().mean(dim=0).float(),
        wrong_map=guidance_maps(model, images, texts[::-1]), **kwargs,
    )  # fmt: skip
    assert list(full.methods) == ["model", *LOCALIZATION_BASELINES]
    some = measure_with_baselines(
        model, images, own, lesions, wrong_map=own.clone(), baselines=("wrong-text",), **kwargs
    )
    assert list(some.methods) == ["model", "wrong-text"]
    assert some.methods["wrong-text"].concentration == pytest.approx(
        plain.methods["model"].concentration
    )  # the right texts' map as the "wrong" one: the model's own row


# --------------------------------------------------------------------------------------------
# mmclip localize
# --------------------------------------------------------------------------------------------


def test_the_localize_command(capsys, tmp_path, jsrt_root, model_dir, _restore_logging) -> None:
    out = tmp_path / "loc"
    argv = [
        "localize", "--model", str(model_dir.parent), "--root", str(jsrt_root),
        "--out", str(out), "--draws", "10", "--bootstrap", "20", "--limit", "4",
        "--device", "cpu", "--backend", "pil",
    ]  # fmt: skip
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    data = json.loads((out / "localization.json").read_text())
    assert list(data["methods"]) == ["model", *LOCALIZATION_BASELINES]
    assert data["setup"]["split"] == "test" and data["n_images"] <= 4
    markdown = (out / "localization.md").read_text()
    assert markdown.startswith("# mmclip localisation (JSRT nodules)")
    for name in LOCALIZATION_BASELINES:
        assert f"| {name} |" in markdown and f"| {name} |" in stdout
    # a second run refuses to overwrite, unless asked
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "already exist" in err and "--overwrite" in err
    code, _, err = run_cli(capsys, *argv, "--overwrite")
    assert code == 0, err


def test_localize_user_errors(capsys, tmp_path, model_dir, _restore_logging) -> None:
    code, _, err = run_cli(
        capsys, "localize", "--model", str(model_dir), "--root", str(tmp_path / "none")
    )
    assert code == 2 and "does not exist" in err and str(tmp_path / "none") in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(
        capsys, "localize", "--model", str(model_dir), "--root", str(tmp_path / "empty"),
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 2 and "nodules.csv" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------
# the demo suite's lesion section
# --------------------------------------------------------------------------------------------


def test_the_suite_puts_text_free_baselines_beside_the_guidance(tmp_path, model_dir) -> None:
    from mmclip.data import synthetic
    from mmclip.eval.suite import SuiteOptions, run_suite
    from mmclip.models import MMCLIPModel
    from mmclip.train.data import load_records

    data = tmp_path / "synth"
    synthetic.write_dataset(data, n=24, size=48, seed=2)
    records = load_records("synthetic", data, "all")
    train, test = records[:12], records[12:]
    model = MMCLIPModel.from_pretrained(model_dir)
    options = SuiteOptions(
        zero_shot=False, probe=False, retrieval=False, masks=True, n_resamples=20,
        backend="pil",
    )  # fmt: skip
    suite = run_suite(model, train, test, [], tmp_path / "out", options)
    results = suite.results
    if "attmim_lesion_overlap" not in results:
        pytest.skip("no test image with a lesion in this tiny set")
    baselines = results["attmim_localization_baselines"]
    assert list(baselines["methods"]) == [
        "model", "uniform", "image-minus-mean", "brightest", "location-prior", "wrong-text"
    ]  # fmt: skip
    assert "another test image's report" in baselines["notes"]["wrong-text"]
    assert baselines["n_draws"] >= 100
    assert results["attmim_lesion_overlap"]["random"] == pytest.approx(
        baselines["methods"]["uniform"]["lesion_hit"], abs=0.1
    )
    assert "text-free baselines" in suite.markdown
