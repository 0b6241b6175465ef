"""``mmclip zeroshot --images`` and ``mmclip retrieval --images``: a user's own X-rays.

The dataset commands (``--root``) evaluate labelled data; with ``--images`` the same
commands score the given files (PNG, JPEG, 16-bit PNG, DICOM) and print a table, through
:func:`mmclip.eval.predict.zeroshot` and :func:`~mmclip.eval.predict.retrieve`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import CLIError, _load_model, _set_threads, refuse_image_as_root

__all__ = ["add_image_args", "cmd_retrieval_images", "cmd_zeroshot_images", "images_mode"]


def add_image_args(p: argparse.ArgumentParser, texts: str) -> None:
    """``--images`` and the texts flag (``--prompts`` or ``--texts``) of the one-image mode."""
    p.add_argument(
        "--images",
        nargs="+",
        metavar="IMAGE",
        help="your own X-ray files (PNG, JPEG, 16-bit PNG, DICOM) instead of --root: prints "
        "a table image × finding (nothing is written)",
    )
    if texts == "prompts":
        p.add_argument(
            "--prompts",
            nargs="+",
            metavar="TEXT",
            help="with --images: your own texts instead of --findings (softmax over them)",
        )
    else:
        p.add_argument(
            "--texts",
            nargs="+",
            metavar="TEXT",
            help="with --images: the texts to rank for each image (cosine similarity)",
        )


def images_mode(args: argparse.Namespace) -> bool:
    """Whether the command runs on ``--images`` (True) or on a dataset ``--root`` (False).

    Raises:
        CLIError: both or neither given, ``--root`` naming one image file, or a texts flag
            of the image mode with ``--root``.
    """
    texts_flag = "--prompts" if hasattr(args, "prompts") else "--texts"
    texts = getattr(args, "prompts", None) or getattr(args, "texts", None)
    if args.images and args.root:
        raise CLIError("give --images (your own X-rays) or --root (a dataset), not both")
    if args.images:
        return True
    if not args.root:
        raise CLIError(
            "give --images FILE … (your own X-rays: PNG, JPEG, DICOM) or --root DATASET "
            "(a labelled dataset to evaluate)"
        )
    refuse_image_as_root(args.root)
    if texts:
        raise CLIError(f"{texts_flag} goes with --images; with --root the data has the texts")
    return False


def _check_images(paths: list[str]) -> None:
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise CLIError(f"image file {missing[0]!r} does not exist")


def cmd_zeroshot_images(args: argparse.Namespace) -> int:
    """Zero-shot probabilities of ``--images`` per ``--findings`` (or over ``--prompts``)."""
    from mmclip.eval.predict import canonical_finding, known_findings, zeroshot

    _set_threads(args.threads)
    if bool(args.findings) == bool(args.prompts):
        raise CLIError(
            "with --images, name the findings (--findings Pneumonia 'Pleural Effusion'; known: "
            f"{', '.join(known_findings())}) or give your own texts (--prompts 'text' …), "
            "not both"
        )
    try:
        findings = [canonical_finding(f) for f in args.findings or ()] or None
    except ValueError as error:
        raise CLIError(str(error)) from None
    _check_images(args.images)
    model = _load_model(args.model, args.device)
    table = zeroshot(model, list(args.images), findings, prompts=args.prompts, mode=args.mode)
    print(table.to_text())
    return 0


def cmd_retrieval_images(args: argparse.Namespace) -> int:
    """Cosine similarity of each of ``--images`` with each of ``--texts``, best text named."""
    from mmclip.eval.predict import retrieve

    _set_threads(args.threads)
    if not args.texts:
        raise CLIError("with --images, give the texts to rank: --texts 'text' …")
    _check_images(args.images)
    model = _load_model(args.model, args.device)
    table = retrieve(model, list(args.images), list(args.texts))
    print(table.to_text())
    for i, row in enumerate(table.rows):
        text, score = table.ranked(i)[0]
        print(f"{row}: best match {text!r} ({score:.3f})")
    return 0
