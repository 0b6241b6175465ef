"""``mmclip demo``: synthetic X-rays → pre-train mmclip-tiny → evaluate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import (
    CLIError,
    _common,
    _Formatter,
    _overwrite_arg,
    _set_threads,
    refuse_overwrite,
)
from ._train_flags import add_register_args, add_set_arg, add_train_flags


def cmd_demo(args: argparse.Namespace) -> int:
    """Synthetic data → pre-train mmclip-tiny → zero-shot, probe, retrieval, pictures."""
    from mmclip.demo import DemoOptions, run_demo

    out = Path(args.out)
    refuse_overwrite([out / "run" / "checkpoints", out / "results.md"], args.overwrite)
    _set_threads(args.threads)
    options = DemoOptions(
        out=args.out,
        steps=args.steps,
        num_images=args.num_images,
        batch_size=args.batch_size,
        data_size=args.data_size,
        seed=args.seed,
        bootstrap=args.bootstrap,
        overrides=list(args.set),
        force=args.overwrite,
        tag=None if args.no_register else args.tag,
    )
    try:
        result = run_demo(options)
    except ValueError as error:
        raise CLIError(str(error)) from None
    suite = result.suite
    print()
    print(suite.markdown)
    pictures = sorted(str(p) for p in suite.files.values() if str(p).endswith(".png"))
    pictures.append(str(result.loss_plot))
    print(
        f"mmclip demo: done in {result.total_seconds:.0f} s. Results: "
        f"{suite.files['markdown']}, {suite.files['json']}; pictures: {', '.join(pictures)}"
    )
    if result.registered:
        name, tag = result.registered.split(":")
        print(
            f"mmclip demo: the model is registered as {result.registered}: "
            f"mmclip.create_model({name!r}, pretrained={tag!r}) in Python, "
            f"--model {result.registered} on the command line"
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
        "model). The model is also registered as mmclip-tiny:demo in $MMCLIP_HOME "
        "(~/.cache/mmclip): mmclip.create_model('mmclip-tiny', pretrained='demo').",
    )
    _common(p)
    p.add_argument("--out", default="mmclip-demo", help="output folder")
    add_train_flags(
        p, only=("--steps", "--batch-size", "--seed"),
        defaults={"--steps": 1600, "--batch-size": 32, "--seed": 0},
    )  # fmt: skip
    p.add_argument("--num-images", type=int, default=2000, help="synthetic images to generate")
    p.add_argument("--data-size", type=int, default=128, help="side of the generated images")
    p.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples of the CIs")
    add_set_arg(p, "override a key of the demo's training config")
    _overwrite_arg(p, "a previous demo in --out", "--force")
    add_register_args(p, "demo", "demo")
    p.set_defaults(func=cmd_demo)
