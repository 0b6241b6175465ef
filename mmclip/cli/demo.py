"""``mmclip demo``: synthetic X-rays → pre-train mmclip-tiny → evaluate."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ._common import (
    SYNTHETIC_FINDINGS,
    CLIError,
    _common,
    _Formatter,
    _set_threads,
    _single_process,
)


def cmd_demo(args: argparse.Namespace) -> int:
    """Synthetic data → pre-train mmclip-tiny → zero-shot, probe, retrieval, pictures."""
    from mmclip.data import synthetic
    from mmclip.eval.plots import plot_loss_curve
    from mmclip.eval.suite import SuiteOptions, run_suite
    from mmclip.train import Trainer, load_config
    from mmclip.train.data import load_records

    _set_threads(args.threads)
    t0 = time.perf_counter()
    out = Path(args.out)
    data_dir = out / "data"
    run_dir = out / "run"
    eval_dir = out
    if args.num_images < 50:
        raise CLIError("--num-images must be at least 50 (the test split is 10 % of it)")
    if (run_dir / "checkpoints").exists() and not args.force:
        raise CLIError(f"{run_dir} already holds a demo run; pass --force or another --out")
    if args.force and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    print(f"mmclip demo: writing {args.num_images} synthetic X-rays to {data_dir}", flush=True)
    if not (data_dir / "manifest.jsonl").is_file() or args.force:
        synthetic.write_dataset(data_dir, n=args.num_images, size=args.data_size, seed=args.seed)
    config_path = Path(__file__).resolve().parent.parent / "train" / "demo.yaml"
    overrides = [
        f"steps={args.steps}",
        f"batch_size={args.batch_size}",
        f"seed={args.seed}",
        f"out_dir={run_dir}",
        f"data.sources.0.root={data_dir}",
        f"data.sources.1.root={data_dir}",
        f"save_every={max(args.steps, 1)}",
        *args.set,
    ]
    config = load_config(config_path, overrides)
    print(
        f"mmclip demo: pre-training {config.model.name} for {config.steps} steps "
        f"(batch {config.batch_size}) on the CPU",
        flush=True,
    )
    result = Trainer(config, dist_info=_single_process(config.device)).fit()
    train_time = time.perf_counter() - t0
    from mmclip.models import MMCLIPModel

    assert result.model_dir is not None
    model = MMCLIPModel.from_pretrained(result.model_dir)
    train = load_records("synthetic", data_dir, "train")
    test = load_records("synthetic", data_dir, "test")
    print(f"mmclip demo: evaluating on {len(test)} held-out images", flush=True)
    options = SuiteOptions(
        seeds=(0, 1, 2), n_resamples=args.bootstrap, backend="pil", finetune=False
    )
    preamble = (
        f"`mmclip demo`: {config.model.name} pre-trained for {config.steps} steps "
        f"(batch {config.batch_size}, {train_time:.0f} s) on {len(train)} synthetic training "
        f"X-rays (half image–report pairs, half images with disease-kind prompts), evaluated "
        f"on {len(test)} held-out synthetic X-rays. Chance AUROC is 0.500."
    )
    suite = run_suite(
        model,
        train,
        test,
        list(SYNTHETIC_FINDINGS),
        eval_dir,
        options,
        title="mmclip demo results",
        preamble=preamble,
    )
    plot_loss_curve(run_dir / "metrics.jsonl", eval_dir / "loss.png")
    total = time.perf_counter() - t0
    print()
    print(suite.markdown)
    pictures = sorted(str(p) for p in suite.files.values() if str(p).endswith(".png"))
    pictures.append(str(eval_dir / "loss.png"))
    print(
        f"mmclip demo: done in {total:.0f} s. Results: {suite.files['markdown']}, "
        f"{suite.files['json']}; pictures: {', '.join(pictures)}"
    )
    zs = suite.results.get("zero_shot", {})
    if zs.get("mean_auroc") is not None and zs["mean_auroc"] < 0.6:
        print("mmclip demo: zero-shot is close to chance; try more --steps", file=sys.stderr)
    return 0


def add_parser(sub: Any) -> None:
    """Register this command on the ``mmclip`` sub-parsers."""
    p = sub.add_parser(
        "demo",
        help="synthetic X-rays → pre-train mmclip-tiny → zero-shot, probe, pictures",
        formatter_class=_Formatter,
        description="The whole method end to end on the CPU in minutes: writes synthetic chest "
        "X-rays with known findings, pre-trains mmclip-tiny on them, and evaluates zero-shot "
        "classification, a linear probe and retrieval on held-out images, with ROC curves and "
        "a picture of the AttMIM masks.",
        epilog="examples:\n  mmclip demo\n  mmclip demo --steps 100 --num-images 400 "
        "--out demo-small\n\nOutputs in --out: results.md, results.json, roc_zeroshot.png, "
        "attmim_masks.png, loss.png, data/ (the synthetic set), run/ (checkpoints, metrics, "
        "model).",
    )
    _common(p)
    p.add_argument("--out", default="mmclip-demo", help="output folder")
    p.add_argument("--steps", type=int, default=1600, help="pre-training steps")
    p.add_argument("--num-images", type=int, default=2000, help="synthetic images to generate")
    p.add_argument("--batch-size", type=int, default=32, help="samples per step")
    p.add_argument("--data-size", type=int, default=128, help="side of the generated images")
    p.add_argument("--seed", type=int, default=0, help="seed of data, model and training")
    p.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples of the CIs")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the demo's training config",
    )
    p.add_argument("--force", action="store_true", help="overwrite a previous demo in --out")
    p.set_defaults(func=cmd_demo)
