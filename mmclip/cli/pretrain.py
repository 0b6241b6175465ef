"""``mmclip pretrain``: pre-train from a YAML config."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._common import (
    _common,
    _Formatter,
    _set_threads,
)


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
