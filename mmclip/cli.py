"""The ``mmclip`` command line: demo, pre-training, evaluation, encoding and data preparation.

Every command prints a clear one-line ``mmclip: error: …`` (exit code 2) for a wrong path, a
bad config key or an unknown model; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

logger = logging.getLogger("mmclip.cli")

PROG = "mmclip"

EPILOG_MAIN = """\
examples:
  mmclip demo                                   # synthetic X-rays → pre-train → evaluate (CPU)
  mmclip data prepare synthetic --out data/synthetic --num-images 2000
  mmclip pretrain --config configs/demo.yaml --out runs/demo
  mmclip pretrain --config configs/demo.yaml --out runs/demo --resume
  torchrun --standalone --nproc-per-node 8 -m mmclip pretrain --config configs/mimic-base.yaml
  mmclip zeroshot --model runs/demo/model --source synthetic --root data/synthetic
  mmclip probe --model runs/demo/model --source synthetic --root data/synthetic
  mmclip encode --model runs/demo/model --images a.png b.png --out emb.npy

Run `mmclip <command> --help` for the options of a command.
"""

SYNTHETIC_FINDINGS = (
    "Consolidation", "Pleural Effusion", "Cardiomegaly", "Pneumothorax", "Lung Lesion",
)  # fmt: skip
"""The CheXpert names of the findings the synthetic generator draws."""


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    rank = os.environ.get("RANK", "0")
    if rank not in ("", "0") and verbosity <= 0:
        level = logging.WARNING  # one voice in distributed runs
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("PIL", "matplotlib", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--threads 0`` used to mean "all cores" silently)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _load_model(path: str, device: str = "auto") -> Any:
    from mmclip.models import MMCLIPModel
    from mmclip.train.distributed import resolve_device

    directory = Path(path)
    if not directory.exists():
        raise CLIError(f"model directory {path!r} does not exist")
    if (directory / "model").is_dir() and not (directory / "config.json").is_file():
        directory = directory / "model"  # a run directory
    return MMCLIPModel.from_pretrained(directory, device=resolve_device(device))


def _records(source: str, root: str, split: str, options: dict[str, Any] | None = None) -> list:
    from mmclip.train.data import load_records

    records = load_records(source, root, split, **(options or {}))
    if not records:
        raise CLIError(f"no {split} records in {source} data at {root!r}")
    return records


def _findings(
    args: argparse.Namespace, records: Sequence[Any], need_prompts: bool = True
) -> list[str]:
    """The findings to evaluate: ``--findings`` (checked) or those labelled in the data.

    Zero-shot needs prompt phrases (or ``No Finding``: normal vs abnormal); the linear probe
    and fine-tuning only need the label in the data.
    """
    from mmclip.data.records import NO_FINDING
    from mmclip.eval.suite import default_findings
    from mmclip.text.prompts import FINDING_PHRASES

    if args.findings:
        if need_prompts:
            known = {*FINDING_PHRASES, NO_FINDING}
            unknown = [f for f in args.findings if f not in known]
            if unknown:
                raise CLIError(
                    f"no prompts for finding(s) {unknown} (zero-shot needs them; the probe "
                    f"and fine-tuning do not); known: {', '.join(sorted(known))}"
                )
        return list(args.findings)
    if args.source == "synthetic":
        return list(SYNTHETIC_FINDINGS)
    found = default_findings(records)
    if not found:
        raise CLIError("no labelled findings in the data; name them with --findings")
    return found


def _image_records(records: Sequence[Any], what: str) -> list:
    with_images = [r for r in records if r.image_path is not None]
    if not with_images:
        raise CLIError(f"the {what} records have no images")
    return with_images


def _print_table(path: Path) -> None:
    print(path.read_text(encoding="utf-8"))


def _parse_options(items: Sequence[str] | None) -> dict[str, Any]:
    from mmclip.train.config import parse_value

    options: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise CLIError(f"--option {item!r} must look like key=value")
        key, value = item.split("=", 1)
        options[key.strip()] = parse_value(value)
    return options


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


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
    config_path = Path(__file__).resolve().parent / "train" / "demo.yaml"
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


def _single_process(device: str) -> Any:
    from mmclip.train import init_distributed

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CLIError("`mmclip demo` runs in one process; use `mmclip pretrain` with torchrun")
    return init_distributed(device)


def _train_overrides(args: argparse.Namespace) -> list[str]:
    overrides = []
    flags = {
        "out": "out_dir",
        "model": "model.name",
        "steps": "steps",
        "batch_size": "batch_size",
        "grad_accum": "grad_accum",
        "lr": "optim.lr",
        "seed": "seed",
        "device": "device",
        "precision": "precision",
        "tokenizer": "model.tokenizer",
        "save_every": "save_every",
        "log_every": "log_every",
    }
    for attr, key in flags.items():
        value = getattr(args, attr, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.compile:
        overrides.append("compile=true")
    return overrides + list(args.set)


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Pre-train from a config (single process or under torchrun)."""
    from mmclip.train import Trainer, cleanup_distributed, config_to_dict, load_config

    _set_threads(args.threads)
    config_path = args.config
    saved = Path(args.out) / "config.yaml" if args.out else None
    if args.resume and config_path is None and saved is not None and saved.is_file():
        config_path = str(saved)  # continue with the run's own config
    config = load_config(config_path, _train_overrides(args))
    if args.dry_run:
        import yaml

        world = os.environ.get("WORLD_SIZE", "1")
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False).rstrip())
        print(f"# dry run: world size {world}; nothing was trained", file=sys.stderr)
        return 0
    resume: bool | str | None = None
    if args.resume:
        resume = True if args.resume == "latest" else args.resume
    try:
        result = Trainer(config, resume=resume, force_resume=args.force_resume).fit()
    finally:
        cleanup_distributed()
    if os.environ.get("RANK", "0") in ("", "0"):
        print(
            f"mmclip pretrain: {result.step} steps in {result.seconds:.0f} s; "
            f"model: {result.model_dir}; metrics: {Path(config.out_dir) / 'metrics.jsonl'}"
        )
    return 0


def _eval_setup(
    args: argparse.Namespace, need_train: bool, need_prompts: bool = True
) -> tuple[Any, list, list, list[str]]:
    _set_threads(args.threads)
    model = _load_model(args.model, args.device)
    options = _parse_options(args.option)
    test = _image_records(_records(args.source, args.root, args.split, options), "evaluation")
    train: list = []
    if need_train:
        train = _image_records(
            _records(args.source, args.root, args.train_split, options), "training"
        )
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
        from mmclip.eval.finetune import FinetuneConfig

        options.finetune_config = FinetuneConfig(
            epochs=args.epochs, lr=args.lr, batch_size=args.batch_size
        )
    suite = run_suite(model, train, test, findings, args.out, options, title=title)
    _print_table(suite.files["markdown"])
    print(f"mmclip: results in {suite.files['json']} and {suite.files['markdown']}")
    return 0


def cmd_zeroshot(args: argparse.Namespace) -> int:
    """Zero-shot classification with prompt ensembles."""
    if args.mode == "multiclass":
        from mmclip.eval import evaluate_zero_shot, write_json, zero_shot_table

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
        import numpy as np

        from mmclip.eval.plots import plot_roc_curves

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json({"zero_shot": result}, out / "results.json")
        table = zero_shot_table(result)
        top1 = result.multiclass_accuracy
        text = (
            "# mmclip zero-shot (multi-class)\n\nOne class per image: softmax over the "
            "classes' positive prompt ensembles; one-vs-rest AUROC per class"
            + (f"; top-1 accuracy {top1:.3f}" if top1 is not None else "")
            + ".\n\n"
            + table
            + "\n"
        )
        (out / "results.md").write_text(text, encoding="utf-8")
        labelled = np.nan_to_num(result.labels, nan=0.0)
        single = labelled.sum(axis=1) == 1  # the records the multi-class metrics use
        curves = {
            f: (labelled[single, j], result.scores[single, j]) for j, f in enumerate(findings)
        }
        plot_roc_curves(curves, out / "roc_zeroshot.png", title="Zero-shot ROC (one vs rest)")
        if args.masks:
            logger.warning("--masks is drawn in multilabel mode only; ignored")
        print(table)
        return 0
    return _run_eval(args, "mmclip zero-shot", zero_shot=True, masks=args.masks)


def cmd_probe(args: argparse.Namespace) -> int:
    """Linear probe at label fractions."""
    return _run_eval(args, "mmclip linear probe", probe=True)


def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune the image encoder + a linear head at label fractions."""
    return _run_eval(args, "mmclip fine-tune", finetune=True)


def cmd_retrieval(args: argparse.Namespace) -> int:
    """Image–text retrieval Recall@K."""
    return _run_eval(args, "mmclip retrieval", retrieval=True)


def cmd_encode(args: argparse.Namespace) -> int:
    """Embed images and/or texts into the joint space."""
    import numpy as np

    from mmclip.eval import encode_records, encode_texts

    _set_threads(args.threads)
    if not (args.images or args.texts or args.root):
        raise CLIError("give --images, --texts or --source/--root")
    if args.images and args.root:
        raise CLIError("give --images or --source/--root, not both (both fill image_embeds)")
    if Path(args.out).suffix not in (".npy", ".npz"):
        raise CLIError(f"--out must end in .npy or .npz; got {Path(args.out).name!r}")
    model = _load_model(args.model, args.device)
    arrays: dict[str, Any] = {}
    if args.images:
        missing = [p for p in args.images if not Path(p).is_file()]
        if missing:
            raise CLIError(f"image file {missing[0]!r} does not exist")
        import torch

        with torch.no_grad():
            arrays["image_embeds"] = model.encode_image(list(args.images)).cpu().numpy()
    if args.texts:
        arrays["text_embeds"] = encode_texts(model, list(args.texts)).numpy()
    if args.root:
        records = _image_records(_records(args.source, args.root, args.split), "dataset")
        arrays["image_embeds"] = encode_records(model, records, backend=args.backend).numpy()
        arrays["image_paths"] = np.asarray([str(r.image_path) for r in records])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        if len(arrays) != 1:
            raise CLIError("a .npy output holds one array; use .npz for images and texts")
        np.save(out, next(iter(arrays.values())))
    elif out.suffix == ".npz":
        np.savez(out, **arrays)
    else:
        raise CLIError(f"--out must end in .npy or .npz; got {out.name!r}")
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"mmclip encode: wrote {shapes} to {out}")
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    """Write a synthetic dataset, or a JSONL manifest of a dataset via its adapter."""
    from mmclip.data import load_source, synthetic
    from mmclip.data.sources import resolve_source
    from mmclip.data.sources.manifest import write_manifest

    try:
        source = resolve_source(args.source)
    except ValueError as error:
        raise CLIError(str(error)) from None
    if source == "synthetic":
        out = Path(args.out or "data/synthetic")
        if out.is_dir() and any(out.iterdir()) and not args.force:
            raise CLIError(f"{out} already holds files; pass --force to overwrite them")
        manifest = synthetic.write_dataset(out, n=args.num_images, size=args.size, seed=args.seed)
        _summarise(_records("synthetic", str(out), "all"), manifest)
        return 0
    if not args.root:
        raise CLIError(f"`mmclip data prepare {args.source}` needs --root (the dataset folder)")
    root = Path(args.root)
    if not root.exists():
        raise CLIError(f"dataset path {args.root!r} does not exist")
    records = load_source(source, root, **_parse_options(args.option))
    base = _manifest_base(root.resolve() if root.is_dir() else root.resolve().parent, records)
    out = Path(args.out) if args.out else base / f"mmclip-{source}.jsonl"
    write_manifest(records, out, base)
    _summarise(records, out)
    if out.resolve().parent != base:
        print(
            f"  paths are relative to {base}: read it with `source: manifest, root: {out}, "
            f"options: {{image_root: {base}}}`"
        )
    return 0


def _manifest_base(root: Path, records: Sequence[Any]) -> Path:
    """The folder the manifest's paths are relative to: ``root``, or the closest folder
    holding every file of the records (a cache or image folder outside ``root``)."""
    paths = [str(root)]
    for r in records:
        if r.image_path is not None:
            paths.append(str(Path(r.image_path).resolve().parent))
        paths += [str(Path(v).resolve().parent) for v in r.meta.values() if isinstance(v, Path)]
    return Path(os.path.commonpath(paths))


def _summarise(records: Sequence[Any], manifest: Path) -> None:
    splits: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for r in records:
        splits[r.split] = splits.get(r.split, 0) + 1
        kinds[r.kind.name.lower()] = kinds.get(r.kind.name.lower(), 0) + 1
    print(f"mmclip data: {len(records)} records → {manifest}")
    print(f"  splits: {splits}; kinds: {kinds}")


def cmd_data_sources(args: argparse.Namespace) -> int:
    """List the dataset adapters."""
    from mmclip.data import list_sources
    from mmclip.data.sources import SOURCE_ALIASES

    for name in list_sources():
        print(name)
    for alias, name in SOURCE_ALIASES.items():
        print(f"{alias} (= {name})")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered models."""
    from mmclip.models import get_model_config, list_models

    for name in list_models():
        c = get_model_config(name)
        print(
            f"{name:14s} ViT {c.vision.width}×{c.vision.depth} @ {c.vision.image_size}px, "
            f"BERT {c.text.hidden_size}×{c.text.num_layers}, embed {c.contrastive.embed_dim}"
        )
    return 0


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks instead of one-line errors",
    )
    p.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output"
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="warnings and errors only",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="CPU threads for torch, at least 1 (default: torch's choice)",
    )


def _data_args(p: argparse.ArgumentParser, split: str = "test", train: bool = False) -> None:
    p.add_argument(
        "--source",
        default="synthetic",
        help="dataset kind: synthetic, manifest or an adapter (`mmclip data sources`)",
    )
    p.add_argument("--root", required=True, help="dataset folder (the file for a manifest)")
    p.add_argument(
        "--split",
        default=split,
        choices=("train", "val", "test", "all"),
        help="the evaluation split",
    )
    if train:
        p.add_argument(
            "--train-split",
            default="train",
            choices=("train", "val", "all"),
            help="the split the probe / fine-tune learns from",
        )
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="adapter option (repeatable), e.g. --option label_columns='[Pneumonia]'",
    )
    p.add_argument(
        "--backend", default="auto", choices=("auto", "dali", "pil"), help="image decoding"
    )


def _eval_args(p: argparse.ArgumentParser, split: str = "test", train: bool = False) -> None:
    p.add_argument("--model", required=True, help="a saved model directory (or a run directory)")
    _data_args(p, split, train)
    p.add_argument(
        "--findings",
        nargs="+",
        metavar="FINDING",
        help="findings to evaluate (default: the labelled findings of the data)",
    )
    p.add_argument(
        "--uncertain",
        default="ignore",
        choices=("ignore", "positive", "negative"),
        help="how uncertain (-1) labels count",
    )
    p.add_argument("--out", default="results", help="output folder")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def build_parser() -> argparse.ArgumentParser:
    """The ``mmclip`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="mmclip: medical vision-language pre-training on chest X-rays "
        "(contrastive + AttMIM + EntMLM).",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="<command>")

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

    p = sub.add_parser(
        "pretrain",
        help="pre-train a model from a YAML config",
        formatter_class=_Formatter,
        description="Pre-train an MMCLIP model. Every key of the config can be overridden with "
        "--set key.sub=value; the common ones have their own flags. Under torchrun each "
        "process trains one shard (DDP).",
        epilog="examples:\n"
        "  mmclip pretrain --config configs/demo.yaml --out runs/demo\n"
        "  mmclip pretrain --config configs/demo.yaml --out runs/demo --resume\n"
        "  mmclip pretrain --config configs/demo.yaml --set optim.lr=3e-4 "
        "--set model.overrides.attmim.tau_final=inf\n"
        "  torchrun --standalone --nproc-per-node 8 -m mmclip pretrain "
        "--config configs/mimic-base.yaml\n"
        "  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\\n"
        "      --rdzv-endpoint node0:29500 --rdzv-id run1 -m mmclip pretrain "
        "--config configs/mimic-base.yaml",
    )
    _common(p)
    p.add_argument("--config", help="YAML config (default: the built-in defaults)")
    p.add_argument("--out", help="run directory (out_dir)")
    p.add_argument("--model", help="registered model name (model.name)")
    p.add_argument("--steps", type=int, help="optimiser steps")
    p.add_argument("--batch-size", type=int, help="samples per optimiser step, all ranks")
    p.add_argument("--grad-accum", type=int, help="micro-steps per optimiser step")
    p.add_argument("--lr", type=float, help="peak learning rate (optim.lr)")
    p.add_argument("--seed", type=int, help="seed")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="autocast precision")
    p.add_argument("--tokenizer", help="a local tokenizer directory (model.tokenizer)")
    p.add_argument("--save-every", type=int, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, help="steps between log lines")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="CHECKPOINT",
        help="continue the run in --out (or from a checkpoint/run directory)",
    )
    p.add_argument(
        "--force-resume",
        action="store_true",
        help="resume even if the model, data, batch size, accumulation or seed changed",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set data.sources.0.ratio=0.3",
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser(
        "zeroshot",
        help="zero-shot classification with prompt ensembles",
        formatter_class=_Formatter,
        description="Zero-shot classification: per finding, a softmax between positive and "
        "negative prompt ensembles (multilabel), or over the classes' prompts (multiclass). "
        "AUROC, ACC and F1 with bootstrap confidence intervals, ROC curves.",
        epilog="example:\n  mmclip zeroshot --model runs/demo/model --source synthetic "
        "--root data/synthetic --out results/zeroshot",
    )
    _common(p)
    _eval_args(p)
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
    _eval_args(p, train=True)
    p.add_argument(
        "--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="label fractions"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="subset seeds")
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
    _eval_args(p, train=True)
    p.add_argument(
        "--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="label fractions"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="subset seeds")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run")
    p.add_argument("--lr", type=float, default=1e-4, help="encoder learning rate")
    p.add_argument("--batch-size", type=int, default=32, help="images per step")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "retrieval",
        help="image–text retrieval Recall@1/5/10",
        formatter_class=_Formatter,
        description="Image → text and text → image retrieval among the image–report pairs of "
        "a split.",
        epilog="example:\n  mmclip retrieval --model runs/demo/model --source synthetic "
        "--root data/synthetic",
    )
    _common(p)
    _eval_args(p)
    p.set_defaults(func=cmd_retrieval)

    p = sub.add_parser(
        "encode",
        help="embed images / texts into the joint space",
        formatter_class=_Formatter,
        description="Write L2-normalised embeddings as .npy (one array) or .npz.",
        epilog="examples:\n  mmclip encode --model runs/demo/model --images a.png b.png "
        "--out img.npy\n  mmclip encode --model runs/demo/model --texts 'Small left "
        "effusion.' --out txt.npy\n  mmclip encode --model runs/demo/model --source synthetic "
        "--root data/synthetic --split test --out test.npz",
    )
    _common(p)
    p.add_argument("--model", required=True, help="a saved model directory")
    p.add_argument("--images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--texts", nargs="+", metavar="TEXT", help="texts")
    p.add_argument("--source", default="synthetic", help="dataset kind (with --root)")
    p.add_argument("--root", help="dataset folder: embed all its images of --split")
    p.add_argument("--split", default="all", choices=("train", "val", "test", "all"))
    p.add_argument("--backend", default="auto", choices=("auto", "dali", "pil"))
    p.add_argument("--out", required=True, help="output .npy or .npz")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser(
        "data",
        help="prepare datasets",
        formatter_class=_Formatter,
        description="Dataset preparation.",
    )
    _common(p)
    data_sub = p.add_subparsers(dest="data_command", metavar="<data command>")
    q = data_sub.add_parser(
        "prepare",
        help="write a synthetic set or a manifest of a dataset",
        formatter_class=_Formatter,
        description="`synthetic` writes generated X-rays, lesion masks, reports and a "
        "manifest. Any other source reads a dataset with its adapter and writes a JSONL "
        "manifest (paths relative to the dataset root) for `source: manifest`.",
        epilog="examples:\n  mmclip data prepare synthetic --out data/synthetic --num-images "
        "2000\n  mmclip data prepare kermany --root /data/chest_xray\n"
        "  mmclip data prepare covid-notes --root ../shared/data/covid-notes --out "
        "data/covid.jsonl\n  mmclip data prepare iu-reports --root ../shared/data/iu-reports "
        "--option on_error=skip",
    )
    _common(q)
    q.add_argument("source", help="synthetic, or an adapter name (`mmclip data sources`)")
    q.add_argument("--root", help="the dataset folder (not for synthetic)")
    q.add_argument("--out", help="output folder (synthetic) or manifest file")
    q.add_argument("--num-images", type=int, default=1000, help="synthetic: images")
    q.add_argument("--size", type=int, default=256, help="synthetic: image side in pixels")
    q.add_argument("--seed", type=int, default=0, help="synthetic: seed")
    q.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="adapter option (repeatable)"
    )
    q.add_argument(
        "--force", action="store_true", help="synthetic: overwrite a folder that holds files"
    )
    q.set_defaults(func=cmd_data_prepare)
    q = data_sub.add_parser("sources", help="list the dataset adapters")
    _common(q)
    q.set_defaults(func=cmd_data_sources)
    data_parser = p  # bind it now: `p` is reassigned to the `models` parser below
    p.set_defaults(func=lambda a: _missing_subcommand(data_parser))

    p = sub.add_parser("models", help="list the registered models")
    _common(p)
    p.set_defaults(func=cmd_models)
    return parser


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _version() -> str:
    try:
        from mmclip import __version__

        return f"mmclip {__version__}"
    except Exception:  # pragma: no cover
        return "mmclip"


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def _user_errors() -> tuple[type[BaseException], ...]:
    from mmclip.data.records import DataError
    from mmclip.train.checkpoint import CheckpointError
    from mmclip.train.config import ConfigError

    return (
        CLIError,
        ConfigError,
        CheckpointError,
        DataError,
        FileNotFoundError,
        NotADirectoryError,
        PermissionError,
        ValueError,
        FloatingPointError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mmclip`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    verbosity = -1 if getattr(args, "quiet", False) else int(getattr(args, "verbose", 0) or 0)
    _setup_logging(verbosity)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug or not isinstance(err, _user_errors()):
            raise
        message = str(err).strip() or type(err).__name__
        if isinstance(err, FileNotFoundError) and err.filename and str(err.filename) not in message:
            message = f"{message}: {err.filename}"
        first, *rest = message.splitlines()
        print(f"{PROG}: error: {first}", file=sys.stderr)
        if rest:
            print("\n".join(f"  {line}" for line in rest), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
