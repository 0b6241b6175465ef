"""``mmclip zeroshot / probe / finetune / retrieval``: the evaluation suite."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import (
    CLIError,
    _common,
    _eval_args,
    _findings,
    _Formatter,
    _image_records,
    _load_model,
    _parse_options,
    _print_table,
    _records,
    _set_threads,
    logger,
    refuse_overwrite,
)
from ._train_flags import add_finetune_flags, finetune_config
from .predict import add_image_args, cmd_retrieval_images, cmd_zeroshot_images, images_mode

RESULT_FILES = ("results.json", "results.md")
"""What every evaluation command writes into ``--out`` (beside its pictures)."""


def _split(records: list, split: str, args: argparse.Namespace) -> list:
    """The records of ``split`` (``all``: every one); none is one error naming the data."""
    chosen = records if split == "all" else [r for r in records if r.split == split]
    if not chosen:
        raise CLIError(f"no {split} records in {args.source} data at {args.root!r}")
    return chosen


def _eval_setup(
    args: argparse.Namespace, need_train: bool, need_prompts: bool = True
) -> tuple[Any, list, list, list[str]]:
    refuse_overwrite([Path(args.out) / name for name in RESULT_FILES], args.overwrite)
    _set_threads(args.threads)
    model = _load_model(args.model, args.device)
    options = _parse_options(args.option)
    records = _records(args.source, args.root, "all", options)  # read once, split below
    test = _image_records(_split(records, args.split, args), "evaluation")
    train: list = []
    if need_train:
        train = _image_records(_split(records, args.train_split, args), "training")
    findings = _findings(args, test, need_prompts=need_prompts)
    return model, train, test, findings


def _run_eval(args: argparse.Namespace, title: str, **parts: bool) -> int:
    from mmclip.eval.suite import SuiteOptions, run_suite

    need_train = parts.get("probe", False) or parts.get("finetune", False)
    model, train, test, findings = _eval_setup(
        args, need_train, need_prompts=parts.get("zero_shot", False)
    )
    defaults = {
        "zero_shot": False,
        "probe": False,
        "finetune": False,
        "retrieval": False,
        "masks": False,
    }
    defaults.update(parts)
    options = SuiteOptions(
        **defaults,
        uncertain=args.uncertain,
        n_resamples=getattr(args, "bootstrap", 1000),
        fractions=tuple(getattr(args, "fractions", (0.01, 0.1, 1.0))),
        seeds=tuple(getattr(args, "seeds", (0, 1, 2))),
        backend=args.backend,
        baselines=tuple(getattr(args, "baselines", ())),
    )
    if parts.get("finetune"):
        options.finetune_config = finetune_config(args)
    suite = run_suite(model, train, test, findings, args.out, options, title=title)
    _print_table(suite.files["markdown"])
    print(f"mmclip: results in {suite.files['json']} and {suite.files['markdown']}")
    return 0


def cmd_zeroshot(args: argparse.Namespace) -> int:
    """Zero-shot classification with prompt ensembles (of a dataset, or of ``--images``)."""
    if images_mode(args):
        return cmd_zeroshot_images(args)
    if args.mode == "multiclass":
        from mmclip.eval import evaluate_zero_shot

        model, _, test, findings = _eval_setup(args, False)
        result = evaluate_zero_shot(
            model,
            test,
            findings,
            mode="multiclass",
            uncertain=args.uncertain,
            n_resamples=args.bootstrap,
            backend=args.backend,
        )
        from mmclip.eval.suite import write_multiclass_zero_shot

        report = write_multiclass_zero_shot(result, findings, args.out)
        if args.masks:
            logger.warning("--masks is drawn in multilabel mode only; ignored")
        print(report.markdown)
        return 0
    return _run_eval(args, "mmclip zero-shot", zero_shot=True, masks=args.masks)


def cmd_probe(args: argparse.Namespace) -> int:
    """Linear probe at label fractions."""
    return _run_eval(args, "mmclip linear probe", probe=True)


def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune the image encoder + a linear head at label fractions."""
    return _run_eval(args, "mmclip fine-tune", finetune=True)


def cmd_retrieval(args: argparse.Namespace) -> int:
    """Image–text retrieval Recall@K (of a dataset), or ``--images`` ranked against ``--texts``."""
    if images_mode(args):
        return cmd_retrieval_images(args)
    return _run_eval(args, "mmclip retrieval", retrieval=True)


def _fewlabel_args(p: argparse.ArgumentParser) -> None:
    """The evaluation arguments plus label fractions and seeds (probe, fine-tune)."""
    _eval_args(p, train=True)
    p.add_argument(
        "--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="label fractions"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="subset seeds")


def add_parser(sub: Any) -> None:
    """Register this command on the ``mmclip`` sub-parsers."""
    p = sub.add_parser(
        "zeroshot",
        help="zero-shot classification with prompt ensembles",
        formatter_class=_Formatter,
        description="Zero-shot classification: per finding, a softmax between positive and "
        "negative prompt ensembles (multilabel), or over the classes' prompts (multiclass). "
        "On a labelled dataset (--root): AUROC, ACC and F1 with bootstrap confidence "
        "intervals, ROC curves. On your own files (--images): a table of probabilities, "
        "image × finding (or × --prompts).",
        epilog="examples:\n  mmclip zeroshot --model runs/demo/model --source synthetic "
        "--root data/synthetic --out results/zeroshot\n"
        "  mmclip zeroshot --model mmclip-tiny:demo --images a.png b.dcm "
        "--findings Cardiomegaly 'Pleural Effusion'\n"
        "  mmclip zeroshot --model mmclip-tiny:demo --images a.png "
        "--prompts 'Pleural effusion.' 'No acute findings.'",
    )
    _common(p)
    _eval_args(p, root_required=False)
    add_image_args(p, "prompts")
    p.add_argument(
        "--mode",
        default="multilabel",
        choices=("multilabel", "multiclass"),
        help="positive-vs-negative per finding, or one class per image",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--masks", action="store_true", help="also draw the AttMIM masks picture")
    p.set_defaults(func=cmd_zeroshot)

    p = sub.add_parser(
        "probe",
        help="linear probe at 1/10/100%% of the labels",
        formatter_class=_Formatter,
        description="Logistic regression on frozen image embeddings, trained on stratified "
        "subsets of the training labels, several seeds, AUROC mean ± std on the test split.",
        epilog="example:\n  mmclip probe --model runs/demo/model --source synthetic "
        "--root data/synthetic --fractions 0.01 0.1 1 --seeds 0 1 2",
    )
    _common(p)
    _fewlabel_args(p)
    p.add_argument(
        "--baselines",
        nargs="+",
        default=[],
        choices=["random-init", "pixel-pca", "efficientnet-lite0"],
        metavar="NAME",
        help="also probe these baselines in the same run: random-init, pixel-pca, "
        "efficientnet-lite0 (the `baselines` extra)",
    )
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser(
        "finetune",
        help="fine-tune the image encoder + linear head",
        formatter_class=_Formatter,
        description="Full fine-tuning of a copy of the image encoder with a linear head on "
        "stratified label subsets; AUROC mean ± std over seeds.",
        epilog="example:\n  mmclip finetune --model runs/demo/model --source synthetic "
        "--root data/synthetic --fractions 0.1 1 --seeds 0 --epochs 5",
    )
    _common(p)
    _fewlabel_args(p)
    add_finetune_flags(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "retrieval",
        help="image–text retrieval Recall@1/5/10",
        formatter_class=_Formatter,
        description="Image → text and text → image retrieval among the image–report pairs of "
        "a split (--root), or your own files (--images) ranked against --texts.",
        epilog="examples:\n  mmclip retrieval --model runs/demo/model --source synthetic "
        "--root data/synthetic\n"
        "  mmclip retrieval --model mmclip-tiny:demo --images a.png "
        "--texts 'Small left effusion.' 'Normal chest.'",
    )
    _common(p)
    _eval_args(p, root_required=False)
    add_image_args(p, "texts")
    p.set_defaults(func=cmd_retrieval)
