"""``mmclip localize``: does the text → patch guidance land on real nodules (JSRT), against
text-free baselines in the same run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import (
    CLIError,
    _common,
    _data_root_arg,
    _Formatter,
    _load_model,
    _overwrite_arg,
    _set_threads,
    logger,
    refuse_overwrite,
)

__all__ = ["add_parser", "cmd_localize"]

OUTPUT_FILES: tuple[str, ...] = ("localization.json", "localization.md")
"""What the command writes in ``--out``."""


def cmd_localize(args: argparse.Namespace) -> int:
    """Localisation measures of the model and the baselines on JSRT nodules."""
    from mmclip.data.sources.jsrt import load_jsrt
    from mmclip.eval.localization import evaluate_localization
    from mmclip.eval.report import write_json
    from mmclip.io import atomic_write_text
    from mmclip.train.data import resolve_data_path

    out = Path(args.out)
    refuse_overwrite([out / name for name in OUTPUT_FILES], args.overwrite)
    root = resolve_data_path(args.root)  # relative: under $MMCLIP_DATA / --data-root, then here
    _set_threads(args.threads)
    records = load_jsrt(root, test_fraction=args.test_fraction, seed=args.split_seed)
    evaluated = [r for r in records if args.split == "all" or r.split == args.split]
    nodules = [r for r in evaluated if r.meta.get("nodule")]
    if args.limit is not None:
        nodules = nodules[: args.limit]
    if not nodules:
        raise CLIError(f"no nodule images in the {args.split} split of {root}")
    train = [r for r in records if r.split == "train"]
    if args.split != "test":
        logger.warning(
            "the %s split overlaps the training split that the mean-image and location-prior "
            "baselines are computed from",
            args.split,
        )
    model = _load_model(args.model, args.device)
    result = evaluate_localization(
        model,
        nodules,
        train,
        prompt=args.prompt,
        wrong_text=args.wrong_text,
        n_draws=args.draws,
        n_resamples=args.bootstrap,
        seed=args.seed,
        backend=args.backend,
    )
    result.setup.update(
        model=str(args.model),
        data_root=str(root.resolve()),
        split=args.split,
        test_fraction=args.test_fraction,
        split_seed=args.split_seed,
    )
    preamble = (
        f"Model `{args.model}` on the {len(nodules)} nodule images of the JSRT {args.split} "
        f"split (`{root}`; {len(train)} training images for the mean image and the location "
        "prior). JSRT: Shiraishi et al., AJR 2000.\n\n"
    )
    markdown = "# mmclip localisation (JSRT nodules)\n\n" + preamble + result.markdown() + "\n"
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_json(result.to_dict(), out / OUTPUT_FILES[0])
    md_path = atomic_write_text(out / OUTPUT_FILES[1], markdown)
    print(markdown)
    print(f"mmclip: results in {json_path} and {md_path}")
    return 0


def add_parser(sub: Any) -> None:
    """Register this command on the ``mmclip`` sub-parsers."""
    p = sub.add_parser(
        "localize",
        help="text → patch guidance on JSRT nodules vs text-free baselines",
        formatter_class=_Formatter,
        description="For each nodule image of the JSRT database: the model's text → patch "
        "guidance with the image's finding text ('Nodule in the left upper lobe.'), measured "
        "against the nodule disc on the model's patch grid — attention concentration, pointing "
        "game and lesion-hit of the guided mask, with bootstrap intervals — beside the "
        "text-free baselines uniform, image-minus-mean, brightest, location-prior and "
        "wrong-text, in the same run. Writes localization.json and localization.md.",
        epilog="example:\n  mmclip localize --model runs/demo/model "
        "--root ../shared/data/jsrt-nodules --split test --out results/jsrt",
    )
    _common(p)
    p.add_argument("--model", required=True, help="a saved model directory (or a run directory)")
    p.add_argument("--root", required=True, help="the JSRT folder (nodules.csv, images/)")
    _data_root_arg(p)
    p.add_argument(
        "--split", default="test", choices=("train", "test", "all"), help="images to evaluate"
    )
    p.add_argument("--test-fraction", type=float, default=0.4, help="test share of the split")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the JSRT split")
    p.add_argument("--prompt", default=None, help="one text for every image (default: each "
                   "image's finding text)")  # fmt: skip
    p.add_argument(
        "--wrong-text",
        default="other-side",
        choices=("other-side", "normal"),
        help="the wrong-text baseline: a finding text of the other side, or a normal report",
    )
    p.add_argument("--draws", type=int, default=100, help="masks drawn per image and map")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="masks, bootstrap, wrong-text pick")
    p.add_argument("--limit", type=int, default=None, help="only the first N nodule images")
    p.add_argument(
        "--backend", default="auto", choices=("auto", "dali", "pil"), help="image decoding"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", default="results", help="output folder")
    _overwrite_arg(p, "localization.json / localization.md in --out")
    p.set_defaults(func=cmd_localize)
