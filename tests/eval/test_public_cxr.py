"""The public real-data evaluation: its summary, the ablation table, and a run on shared data."""

from __future__ import annotations

import json
import math

import pytest

from mmclip.eval.ablation import mean_sd, paired_differences, t_interval, write_ablation
from mmclip.eval.public_cxr import evaluate_public_cxr, public_summary


def _zero_shot(finding: str, auroc: float) -> dict:
    return {"findings": {finding: {"auroc": auroc, "auroc_ci": [auroc - 0.1, auroc + 0.1]}}}


def test_public_summary_flattens_the_headline_figures_with_intervals() -> None:
    kermany = {
        "zero_shot": {
            "findings": {
                "Pneumonia": {"auroc": 0.8, "auroc_ci": [0.7, 0.9]},
                "No Finding": {"auroc": 0.75, "auroc_ci": [0.6, 0.85]},
            }
        },
        "linear_probe": {
            "fractions": {"0.01": {"mean_auroc": [0.6, 0.02]}, "1": {"mean_auroc": [0.9, 0.0]}}
        },
        "linear_probe_baselines": {"pixel-pca": {"fractions": {"1": {"mean_auroc": [0.85, 0.0]}}}},
    }
    covid = {
        "zero_shot": _zero_shot("COVID-19", 0.7),
        "retrieval": {"image_to_text": {"R@5": 0.2}, "text_to_image": {"R@5": 0.25}},
    }
    out = public_summary(kermany, covid)
    assert out["kermany_zs_pneumonia"] == 0.8
    assert (out["kermany_zs_pneumonia_low"], out["kermany_zs_pneumonia_high"]) == (0.7, 0.9)
    assert out["kermany_zs_normal"] == 0.75
    assert out["kermany_probe_mmclip_0.01"] == 0.6 and out["kermany_probe_mmclip_1"] == 0.9
    assert out["kermany_probe_pixel-pca_1"] == 0.85
    assert math.isclose(out["covid_zs_low"], 0.6)
    assert out["covid_image_to_text_R@5"] == 0.2 and out["covid_text_to_image_R@5"] == 0.25
    assert public_summary({}, {}) == {}


def test_mean_sd_is_the_sample_sd_of_the_finite_values() -> None:
    assert mean_sd([1.0, 3.0]) == (2.0, math.sqrt(2.0))
    mean, sd = mean_sd([2.0, float("nan")])  # one finite value: no spread to report
    assert mean == 2.0 and math.isnan(sd)
    assert all(math.isnan(v) for v in mean_sd([]))


def test_t_interval_is_the_95_percent_student_interval_of_the_mean() -> None:
    mean, low, high = t_interval([1.0, 2.0, 3.0, float("nan")])
    half = 4.303 * 1.0 / math.sqrt(3)  # t(0.975, 2 df) · sd / sqrt(n)
    assert mean == 2.0 and math.isclose(low, 2.0 - half) and math.isclose(high, 2.0 + half)
    assert all(math.isnan(v) for v in t_interval([0.5])[1:])  # one seed: no interval


def test_write_ablation_writes_the_table_json_and_plot(tmp_path) -> None:
    table = {"full": {"a": [0.8, 0.82]}, "uniform": {"a": [0.7]}}
    paths = write_ablation(
        tmp_path, table, [("a", "measure A")], {"full": "the recipe"}, "title", "footer line"
    )
    text = paths["markdown"].read_text(encoding="utf-8")
    assert "| full: the recipe | 0.810 ± 0.014 |" in text
    assert "| uniform | 0.700 (1 seed) |" in text and text.rstrip().endswith("footer line")
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == table
    assert paths["plot"].stat().st_size > 0


def test_paired_differences_subtract_the_reference_seed_by_seed() -> None:
    table = {
        "full": {"a": [0.80, 0.90, 0.70]},
        "uniform": {"a": [0.81, 0.91, float("nan")]},
        "short": {"a": [0.5, 0.6, 0.4, 0.3]},  # one seed more than the reference
    }
    diffs = paired_differences(table, "full")
    assert list(diffs) == ["uniform", "short"]
    assert [round(d, 6) for d in diffs["uniform"]["a"][:2]] == [0.01, 0.01]
    assert math.isnan(diffs["uniform"]["a"][2])
    assert [round(d, 6) for d in diffs["short"]["a"][:3]] == [-0.3, -0.3, -0.3]
    assert math.isnan(diffs["short"]["a"][3])
    # seed-paired: the seed spread (sd 0.1 of each mean) cancels, the difference does not
    mean, sd = mean_sd(diffs["short"]["a"])
    assert math.isclose(mean, -0.3) and sd < 1e-9
    with pytest.raises(KeyError, match="'random'"):
        paired_differences(table, "random")


def test_write_ablation_adds_the_paired_difference_table(tmp_path) -> None:
    table = {"full": {"a": [0.8, 0.9]}, "uniform": {"a": [0.82, 0.91]}}
    paths = write_ablation(tmp_path, table, [("a", "A")], {}, "title", "footer", reference="full")
    text = paths["markdown"].read_text(encoding="utf-8")
    assert "Difference from `full`, paired by seed" in text
    assert "| uniform | +0.015 ± 0.007 [-0.049, +0.079] |" in text
    without = write_ablation(tmp_path / "b", table, [("a", "A")], {}, "title")
    assert "paired by seed" not in without["markdown"].read_text(encoding="utf-8")


def test_evaluate_public_cxr_names_the_folder_it_needs(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="kermany-pneumonia"):
        evaluate_public_cxr(None, tmp_path, tmp_path / "out")


@pytest.mark.slow
def test_evaluate_public_cxr_on_the_shared_data(shared_data, tmp_path) -> None:
    from mmclip.models import create_model
    from tests.models.helpers import make_tokenizer

    model = create_model("mmclip-tiny", tokenizer=make_tokenizer()).eval()
    result = evaluate_public_cxr(
        model, shared_data, tmp_path, baselines=["pixel-pca"], n_resamples=20, seeds=(0,)
    )
    summary = result.summary
    for key in ("kermany_zs_pneumonia", "kermany_probe_mmclip_1", "covid_zs"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["kermany_zs_pneumonia_low"] <= summary["kermany_zs_pneumonia"]
    # the raw-pixel probe separates pediatric pneumonia well above chance
    assert summary["kermany_probe_pixel-pca_1"] > 0.8
    assert (tmp_path / "kermany" / "results.md").is_file()
    assert (tmp_path / "covid" / "results.json").is_file()
