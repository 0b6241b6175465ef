"""``mmclip pretrain``: pre-train from a YAML config."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._common import (
    PROG,
    _common,
    _data_root_arg,
    _Formatter,
    _overwrite_arg,
    _set_threads,
)
from ._train_flags import add_register_args, add_set_arg, add_train_flags, train_overrides


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Pre-train from a config (single process or under torchrun)."""
    from mmclip.train import Trainer, cleanup_distributed, config_to_dict, load_config

    _set_threads(args.threads)
    config_path = args.config
    saved = Path(args.out) / "config.yaml" if args.out else None
    if args.resume and config_path is None and saved is not None and saved.is_file():
        config_path = str(saved)  # continue with the run's own config
    config = load_config(config_path, train_overrides(args))
    if args.dry_run:
        import yaml

        world = os.environ.get("WORLD_SIZE", "1")
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False).rstrip())
        print(f"# dry run: world size {world}; nothing was trained", file=sys.stderr)
        return 0
    from mmclip.models.home import check_tag, register_pretrained, safe_tag

    tag = None if args.no_register else (args.tag or safe_tag(Path(config.out_dir).name))
    if tag is not None:
        check_tag(tag)  # a bad --tag is refused before training, not after
    resume: bool | str | None = None
    if args.resume:
        resume = True if args.resume == "latest" else args.resume
    try:
        trainer = Trainer(
            config, resume=resume, force_resume=args.force_resume, overwrite=args.overwrite
        )
        result = trainer.fit()
    except KeyboardInterrupt:
        if os.environ.get("RANK", "0") in ("", "0"):
            _print_interrupted(Path(config.out_dir))
        return 130
    finally:
        cleanup_distributed()
    if os.environ.get("RANK", "0") in ("", "0"):
        registered = ""
        if tag is not None and result.model_dir is not None:
            register_pretrained(result.model_dir, config.model.name, tag)
            registered = f" (registered as {config.model.name}:{tag})"
        print(
            f"mmclip pretrain: {result.step} steps in {result.seconds:.0f} s; "
            f"model: {result.model_dir}{registered}; "
            f"metrics: {Path(config.out_dir) / 'metrics.jsonl'}"
        )
    return 0


def _print_interrupted(out_dir: Path) -> None:
    """After Ctrl-C: the last checkpoint and the exact command that continues from it."""
    from mmclip.train.checkpoint import CheckpointError, latest_checkpoint

    try:
        last = latest_checkpoint(out_dir) if out_dir.is_dir() else None
    except CheckpointError:
        last = None
    if last is None:
        print(f"{PROG}: interrupted before the first checkpoint", file=sys.stderr)
        return
    command = f"mmclip pretrain --out {out_dir} --resume"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        command += " (under torchrun, with the same torchrun arguments)"
    print(f"{PROG}: interrupted; last checkpoint: {last}", file=sys.stderr)
    print(f"{PROG}: continue with: {command}", file=sys.stderr)


def add_parser(sub: Any) -> None:
    """Register this command on the ``mmclip`` sub-parsers."""
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
    add_train_flags(p)
    _data_root_arg(p)
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="CHECKPOINT",
        help="continue the run in --out (or from a checkpoint/run directory)",
    )
    _overwrite_arg(p, "a run in --out (its checkpoints, model, tokenizer and metrics)")
    p.add_argument(
        "--force-resume",
        action="store_true",
        help="resume even if the model, data, batch size, accumulation or seed changed",
    )
    add_set_arg(p, "override any config key, e.g. --set data.sources.0.ratio=0.3")
    add_register_args(p, None, "the run directory's name")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_pretrain)
