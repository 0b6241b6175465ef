"""Shared pieces of the ``mmclip`` commands: errors, logging, argument groups, loaders."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
        warnings.simplefilter("ignore")  # torch's Python warnings too: rank 0 shows them
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
    """``--model``: a saved-model directory, a run directory or a registered ``name:tag``."""
    from mmclip.models import MMCLIPModel
    from mmclip.models.home import PretrainedNotFoundError, resolve_model_dir
    from mmclip.train.distributed import resolve_device

    try:
        directory = resolve_model_dir(path)
    except PretrainedNotFoundError as error:
        raise CLIError(str(error)) from None
    return MMCLIPModel.from_pretrained(directory, device=resolve_device(device))


def refuse_image_as_root(root: str | None) -> None:
    """``--root`` naming one image file (a user's X-ray): one error pointing to ``--images``."""
    from mmclip.data.records import DICOM_SUFFIXES, IMAGE_SUFFIXES
    from mmclip.models.preprocess import is_dicom_file

    if not root or not Path(root).is_file():
        return
    suffix = Path(root).suffix.lower()
    if suffix in IMAGE_SUFFIXES or suffix in DICOM_SUFFIXES or is_dicom_file(root):
        raise CLIError(
            f"--root {root} is one image, not a dataset; for your own images use --images: "
            f"`mmclip zeroshot --model M --images {root} --findings …` (or --prompts), "
            f"`mmclip encode --model M --images {root} --out emb.npy`"
        )


def _records(source: str, root: str, split: str, options: dict[str, Any] | None = None) -> list:
    from mmclip.train.data import load_records

    refuse_image_as_root(root)
    records = load_records(source, root, split, **(options or {}))
    if not records:
        raise CLIError(f"no {split} records in {source} data at {root!r}")
    return records


def _findings(
    args: argparse.Namespace, records: Sequence[Any], need_prompts: bool = True
) -> list[str]:
    """The findings to evaluate: ``--findings`` (checked) or those labelled in the data
    (:func:`mmclip.eval.suite.select_findings`)."""
    from mmclip.eval.suite import select_findings

    try:
        return select_findings(
            records, args.findings, source=args.source, need_prompts=need_prompts
        )
    except ValueError as error:
        raise CLIError(str(error)) from None


def _image_records(records: Sequence[Any], what: str) -> list:
    with_images = [r for r in records if r.image_path is not None]
    if not with_images:
        raise CLIError(f"the {what} records have no images")
    return with_images


def refuse_overwrite(paths: Path | Sequence[Path], overwrite: bool) -> None:
    """The overwrite policy of every command that writes: an existing file (or a folder that
    holds files) among ``paths`` is one error naming it, unless ``--overwrite`` was given.

    Call it before any slow work (loading a model, training), so nothing is computed for
    results that would be refused.
    """
    for path in [paths] if isinstance(paths, Path) else paths:
        if overwrite or not path.exists():
            continue
        if path.is_dir() and not any(path.iterdir()):
            continue  # an empty folder holds no results
        raise CLIError(
            f"{path} already exists; pass --overwrite to replace it, or choose another --out"
        )


def _data_root_arg(p: argparse.ArgumentParser) -> None:
    """``--data-root``: the folder relative dataset paths are read from (sets MMCLIP_DATA)."""
    p.add_argument(
        "--data-root",
        dest="mmclip_data_root",
        metavar="DIR",
        help="the folder that relative dataset paths (--root, a config's sources) are read "
        "from; sets MMCLIP_DATA for this command (default: $MMCLIP_DATA, else the config's "
        "data.root, else the working directory)",
    )


def apply_data_root(args: argparse.Namespace) -> None:
    """``--data-root DIR`` given: ``MMCLIP_DATA`` = its absolute path, for this process (and
    so for every rank under torchrun, each of which parses the same arguments)."""
    from mmclip.train.data import DATA_ROOT_ENV

    value = getattr(args, "mmclip_data_root", None)
    if value:
        os.environ[DATA_ROOT_ENV] = str(Path(value).expanduser().resolve())


def _overwrite_arg(p: argparse.ArgumentParser, what: str = "results", *aliases: str) -> None:
    """``--overwrite`` (and ``aliases`` kept for older scripts) of a command that writes."""
    p.add_argument(
        "--overwrite",
        *aliases,
        dest="overwrite",
        action="store_true",
        help=f"replace existing {what} (without it the command refuses)",
    )


def _print_table(path: Path) -> None:
    print(path.read_text(encoding="utf-8"))


def _parse_options(items: Sequence[str] | None) -> dict[str, Any]:
    from mmclip.config import parse_value

    options: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise CLIError(f"--option {item!r} must look like key=value")
        key, value = item.split("=", 1)
        options[key.strip()] = parse_value(value)
    return options


# --------------------------------------------------------------------------------------------
# commands


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


def _data_args(
    p: argparse.ArgumentParser, split: str = "test", train: bool = False, root_required: bool = True
) -> None:
    p.add_argument(
        "--source",
        default="synthetic",
        help="dataset kind: synthetic, manifest or an adapter (`mmclip data sources`)",
    )
    p.add_argument(
        "--root",
        required=root_required,
        help="dataset folder (the file for a manifest)",
    )
    _data_root_arg(p)
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


def _eval_args(
    p: argparse.ArgumentParser, split: str = "test", train: bool = False, root_required: bool = True
) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="a saved model directory, a run directory, or a registered name:tag "
        "(mmclip-tiny:demo after `mmclip demo`; `mmclip models` lists them)",
    )
    _data_args(p, split, train, root_required)
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
    _overwrite_arg(p, "results.json / results.md in --out")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
