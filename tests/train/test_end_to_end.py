"""End to end on CPU: `mmclip demo` with a few steps, and zero-shot after pre-training on
synthetic X-rays beats chance on held-out synthetic images."""

from __future__ import annotations

import json
import warnings

import pytest

from mmclip.cli import main
from mmclip.data import synthetic
from mmclip.eval.zeroshot import evaluate_zero_shot
from mmclip.models import MMCLIPModel, UntrainedModelWarning, create_model, list_pretrained
from mmclip.train import Trainer, load_config
from mmclip.train.data import load_records
from mmclip.train.distributed import init_distributed


def test_demo_with_a_few_steps_writes_the_results_and_pictures(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--steps", "3", "--num-images", "60",
               "--data-size", "64", "--bootstrap", "20"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Zero-shot classification" in printed and "Linear probe" in printed
    results = json.loads((out / "results.json").read_text())
    assert {"zero_shot", "linear_probe", "retrieval"} <= set(results)
    for name in ("results.md", "roc_zeroshot.png", "attmim_masks.png", "loss.png"):
        assert (out / name).stat().st_size > 0, name
    rows = (out / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2, 3]
    # the trained model is registered and loads by tag, without the untrained warning
    assert "registered as mmclip-tiny:demo" in printed
    assert ("mmclip-tiny", "demo") in list_pretrained()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedModelWarning)
        model = create_model("mmclip-tiny", pretrained="demo")
        model.encode_image(out / "data" / "images" / "000000.jpg")
    # a second demo into the same folder needs --force
    assert main(["demo", "--out", str(out), "--steps", "1", "--num-images", "60"]) == 2


FINDINGS = ["Cardiomegaly", "Pleural Effusion", "Consolidation"]


@pytest.mark.slow
def test_zero_shot_after_pretraining_beats_chance_on_held_out_images(tmp_path):
    data = tmp_path / "data"
    synthetic.write_dataset(data, n=500, size=96, seed=1)
    sources = [
        {"name": "reports", "source": "synthetic", "root": str(data), "ratio": 0.5},
        {"name": "prompts", "source": "synthetic", "root": str(data), "ratio": 0.5,
         "drop_reports": True},
    ]  # fmt: skip
    overrides = [
        "steps=500",
        "batch_size=32",
        "optim.lr=0.0005",
        "schedule.warmup_steps=30",
        "save_every=1000",
        "log_every=100",
        "tensorboard=false",
        "device=cpu",
        f"out_dir={tmp_path / 'run'}",
        "model.overrides.attmim.guide_warmup_steps=1000",  # uniform masking throughout
    ]
    config = load_config(None, overrides, base={"data": {"sources": sources}})
    result = Trainer(config, dist_info=init_distributed("cpu"), tty=False).fit()
    assert result.model_dir is not None
    model = MMCLIPModel.from_pretrained(result.model_dir)
    test = load_records("synthetic", data, "test")
    zs = evaluate_zero_shot(model, test, FINDINGS, backend="pil", n_resamples=200)
    aurocs = {f: zs.findings[f].auroc for f in FINDINGS}
    print(f"zero-shot AUROC on {len(test)} held-out images: {aurocs}, mean {zs.mean_auroc:.3f}")
    assert zs.mean_auroc > 0.65, aurocs
    assert max(aurocs.values()) > 0.8, aurocs
