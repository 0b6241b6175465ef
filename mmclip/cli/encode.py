"""``mmclip encode``: embed images / texts into the joint space."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import (
    CLIError,
    _common,
    _data_root_arg,
    _Formatter,
    _image_records,
    _load_model,
    _overwrite_arg,
    _records,
    _set_threads,
    refuse_overwrite,
)


def cmd_encode(args: argparse.Namespace) -> int:
    """Embed images and/or texts into the joint space."""
    from mmclip.eval.embed import embedding_arrays
    from mmclip.io import atomic_save_arrays

    _set_threads(args.threads)
    if not (args.images or args.texts or args.root):
        raise CLIError("give --images, --texts or --source/--root")
    if args.images and args.root:
        raise CLIError("give --images or --source/--root, not both (both fill image_embeds)")
    if Path(args.out).suffix not in (".npy", ".npz"):
        raise CLIError(f"--out must end in .npy or .npz; got {Path(args.out).name!r}")
    refuse_overwrite(Path(args.out), args.overwrite)
    model = _load_model(args.model, args.device)
    if args.images:
        missing = [p for p in args.images if not Path(p).is_file()]
        if missing:
            raise CLIError(f"image file {missing[0]!r} does not exist")
    records = None
    if args.root:
        records = _image_records(_records(args.source, args.root, args.split), "dataset")
    arrays = embedding_arrays(
        model, images=args.images, texts=args.texts, records=records, backend=args.backend
    )
    out = Path(args.out)
    if out.suffix == ".npy" and len(arrays) != 1:
        raise CLIError("a .npy output holds one array; use .npz for images and texts")
    atomic_save_arrays(out, arrays)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"mmclip encode: wrote {shapes} to {out}")
    return 0


def add_parser(sub: Any) -> None:
    """Register this command on the ``mmclip`` sub-parsers."""
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
    p.add_argument(
        "--model", required=True, help="a saved model directory or a registered name:tag"
    )
    p.add_argument("--images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--texts", nargs="+", metavar="TEXT", help="texts")
    p.add_argument("--source", default="synthetic", help="dataset kind (with --root)")
    p.add_argument("--root", help="dataset folder: embed all its images of --split")
    _data_root_arg(p)
    p.add_argument("--split", default="all", choices=("train", "val", "test", "all"))
    p.add_argument("--backend", default="auto", choices=("auto", "dali", "pil"))
    p.add_argument("--out", required=True, help="output .npy or .npz")
    _overwrite_arg(p, "an --out file")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=cmd_encode)
