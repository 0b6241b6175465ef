"""Print each loss term's share of the image tower's gradient on real batches.

Builds the model and the data stream of a training config (as ``mmclip pretrain`` would),
optionally loads trained weights, and measures :func:`mmclip.train.gradients.gradient_shares`
at the run's last step (the final masking temperature)::

    python examples/gradient_share.py --config configs/public-cxr.yaml --batches 6
    python examples/gradient_share.py --config configs/public-cxr.yaml --model runs/public-cxr/final

Run from the repository root (so that ``../shared/data`` resolves). Prints a markdown table
and, with ``--json``, writes the figures there.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import tempfile
from pathlib import Path

import torch

from mmclip.io import atomic_write_text
from mmclip.train import Trainer
from mmclip.train.config import load_config
from mmclip.train.gradients import gradient_shares

logger = logging.getLogger("gradient_share")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="training config (YAML)")
    parser.add_argument("--model", help="a saved model or checkpoint directory to load first")
    parser.add_argument("--batches", type=int, default=6, help="batches to average over")
    parser.add_argument("--step", type=int, help="schedule step (default: the run's last)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [*args.set, f"out_dir={tmp}/run"]
        if args.model:
            overrides.append(f"model.init={args.model}")
        trainer = Trainer(load_config(args.config, overrides))
        model = trainer.model.train()
        step = trainer.config.steps if args.step is None else args.step
        batches = itertools.islice(trainer._batches(), args.batches)
        torch.manual_seed(0)
        shares = gradient_shares(model, batches, step)
    logger.info("gradient shares of the image tower (%d batches, step %d):", shares.batches, step)
    logger.info("\n%s", shares.markdown())
    if args.json:
        atomic_write_text(args.json, json.dumps(shares.to_dict(), indent=2) + "\n")


if __name__ == "__main__":
    main()
