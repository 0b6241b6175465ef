"""``mmclip data prepare / sources``: datasets."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import (
    CLIError,
    _common,
    _data_root_arg,
    _Formatter,
    _missing_subcommand,
    _overwrite_arg,
    _parse_options,
    _records,
    refuse_overwrite,
)


def cmd_data_prepare(args: argparse.Namespace) -> int:
    """Write a synthetic dataset, or a JSONL manifest of a dataset via its adapter."""
    from mmclip.data import load_source, synthetic
    from mmclip.data.sources import resolve_source
    from mmclip.data.sources.manifest import manifest_base, write_manifest

    try:
        source = resolve_source(args.source)
    except ValueError as error:
        raise CLIError(str(error)) from None
    if source == "synthetic":
        out = Path(args.out or "data/synthetic")
        refuse_overwrite(out, args.overwrite)
        manifest = synthetic.write_dataset(out, n=args.num_images, size=args.size, seed=args.seed)
        _summarise(_records("synthetic", str(out), "all"), manifest)
        return 0
    if not args.root:
        raise CLIError(f"`mmclip data prepare {args.source}` needs --root (the dataset folder)")
    from mmclip.train.data import resolve_data_path

    root = resolve_data_path(args.root)
    records = load_source(source, root, **_parse_options(args.option))
    base = manifest_base(root, records)
    out = Path(args.out) if args.out else base / f"mmclip-{source}.jsonl"
    refuse_overwrite(out, args.overwrite)
    write_manifest(records, out, base)
    _summarise(records, out)
    if out.resolve().parent != base:
        print(
            f"  paths are relative to {base}: read it with `source: manifest, root: {out}, "
            f"options: {{image_root: {base}}}`"
        )
    return 0


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


def add_parser(sub: Any) -> None:
    """Register this command on the ``mmclip`` sub-parsers."""
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
    _data_root_arg(q)
    q.add_argument("--out", help="output folder (synthetic) or manifest file")
    q.add_argument("--num-images", type=int, default=1000, help="synthetic: images")
    q.add_argument("--size", type=int, default=256, help="synthetic: image side in pixels")
    q.add_argument("--seed", type=int, default=0, help="synthetic: seed")
    q.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="adapter option (repeatable)"
    )
    _overwrite_arg(q, "the --out folder's files or manifest", "--force")
    q.set_defaults(func=cmd_data_prepare)
    q = data_sub.add_parser("sources", help="list the dataset adapters")
    _common(q)
    q.set_defaults(func=cmd_data_sources)
    data_parser = p  # bind it now: `p` is reassigned to the `models` parser below
    p.set_defaults(func=lambda a: _missing_subcommand(data_parser))
