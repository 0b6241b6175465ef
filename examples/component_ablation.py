"""Component ablation on the public chest X-rays: one command reruns the whole table.

Each variant is ``mmclip pretrain --config configs/public-cxr.yaml`` with one change, run for
several seeds, then evaluated on the real sets of ``shared/data``
(:func:`mmclip.eval.evaluate_public_cxr`: Kermany zero-shot and linear probe, COVID-notes
zero-shot and retrieval). The table gives mean ± sd over the seeds::

    python examples/component_ablation.py                              # everything, seeds 0 1 2
    python examples/component_ablation.py --variants full uniform --seeds 0
    python examples/component_ablation.py --set steps=300              # a quick, shorter look

Resumable: a (variant, seed) whose ``summary.json`` exists is not run again, and a run that
stopped mid-training resumes from its last checkpoint. One run of the recipe (600 steps of 16,
the hybrid EfficientNet-Lite0 ViT at 224 px) took 25 minutes of pre-training on one thread of a
busy 2-core VM and about 6 minutes of evaluation, so the full table (6 variants × 3 seeds)
takes about 9 hours there. ``--config configs/public-cxr-patch.yaml`` ablates the ViT learned
from scratch instead (the table of docs/results.md). The simple baselines (random-init,
raw-pixel PCA, EfficientNet-Lite0) do not depend on the variant: they are measured once, in
the first run's evaluation (about 15 more minutes, EfficientNet's pass over 5,840 images).
Writes ``ablation.md``, ``ablation.json`` and ``ablation.png`` into ``--out``; run from the
repository root so that ``../shared/data`` resolves.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mmclip.eval.ablation import add_runner_arguments, write_ablation
from mmclip.eval.baselines import available_baselines
from mmclip.io import atomic_write_json

logger = logging.getLogger("component_ablation")

UNPAIRED_SOURCES = ("kermany", "iu-xray")
"""Adapters whose records are image-only (labels → prompts) or text-only in the recipe."""

VARIANTS: dict[str, str] = {
    "full": "the recipe (`--config`, by default configs/public-cxr.yaml)",
    "uniform": "uniform instead of text-guided masking (`attmim.tau_final=inf`)",
    "random-mlm": "random instead of entity MLM (`entmlm.entity_prob=0`)",
    "paired-only": "paired data only (image-only and text-only sources at ratio 0)",
    "no-local": "no local token–patch term (`loss_weights.local=0`)",
    "contrastive-only": "the contrastive term alone (every other loss weight 0)",
}

COLUMNS: tuple[tuple[str, str], ...] = (
    ("kermany_zs_pneumonia", "Kermany zero-shot pneumonia AUROC"),
    ("kermany_zs_normal", 'Kermany zero-shot "No Finding" AUROC'),
    ("kermany_probe_mmclip_0.01", "Kermany probe 1 %"),
    ("kermany_probe_mmclip_1", "Kermany probe 100 %"),
    ("covid_zs", "COVID-19 zero-shot AUROC"),
    ("covid_image_to_text_R@5", "COVID notes image→text R@5"),
)


def variant_overrides(variant: str, config: dict) -> list[str]:
    """The ``--set`` overrides of ``variant`` for the recipe ``config`` (a parsed YAML)."""
    prefix = "model.overrides."
    if variant == "full":
        return []
    if variant == "uniform":
        return [prefix + "attmim.tau_final=inf"]
    if variant == "random-mlm":
        return [prefix + "entmlm.entity_prob=0"]
    if variant == "no-local":
        return [prefix + "loss_weights.local=0"]
    if variant == "contrastive-only":
        return [prefix + f"loss_weights.{k}=0" for k in ("local", "mim", "mlm", "tp")]
    if variant == "paired-only":
        sources = config.get("data", {}).get("sources", [])
        return [
            f"data.sources.{i}.ratio=0"
            for i, source in enumerate(sources)
            if source.get("source") in UNPAIRED_SOURCES
            or source.get("drop_reports")
            or source.get("drop_images")
        ]
    raise ValueError(f"unknown variant {variant!r}; known: {list(VARIANTS)}")


def run_one(
    args: argparse.Namespace, config: dict, variant: str, seed: int, baselines: list[str]
) -> dict[str, float]:
    """Pre-train (or resume) and evaluate one (variant, seed); return its summary."""
    run_dir = Path(args.out) / f"{variant}-seed{seed}"
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text(encoding="utf-8"))
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").is_file():
        cmd = [sys.executable, "-m", "mmclip", "-q", "pretrain", "--config", args.config]
        cmd += ["--out", str(run_dir), "--seed", str(seed)]
        if (run_dir / "checkpoints").is_dir():
            cmd.append("--resume")
        for item in [*variant_overrides(variant, config), *args.set]:
            cmd += ["--set", item]
        logger.info("running %s", " ".join(cmd))
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        logger.info("pre-training done in %.0f s", time.perf_counter() - t0)
    from mmclip.eval import evaluate_public_cxr
    from mmclip.models import MMCLIPModel

    model = MMCLIPModel.from_pretrained(model_dir)
    evaluation = evaluate_public_cxr(
        model, args.data, run_dir / "eval", baselines=baselines, n_resamples=args.bootstrap
    )
    atomic_write_json(summary_path, evaluation.summary)
    return evaluation.summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/public-cxr.yaml", help="the recipe")
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the simple baselines (random-init, pixel PCA, EfficientNet) in the first run",
    )
    add_runner_arguments(parser, list(VARIANTS), out="runs/component-ablation", quick="steps=300")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    config = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    table: dict[str, dict[str, list[float]]] = {}
    total, done = len(args.variants) * len(args.seeds), 0
    for variant in args.variants:
        table[variant] = {key: [] for key, _ in COLUMNS}
        for seed in args.seeds:
            done += 1
            logger.info("[%d/%d] %s, seed %d", done, total, variant, seed)
            baselines = available_baselines() if done == 1 and not args.no_baselines else []
            summary = run_one(args, config, variant, seed, baselines)
            for key, _ in COLUMNS:
                table[variant][key].append(float(summary.get(key, float("nan"))))
        write_ablation(
            args.out,
            table,
            COLUMNS,
            VARIANTS,
            "Component ablation on public chest X-rays (mean ± sd over seeds)",
            f"Mean ± sd over seeds {args.seeds}: `python examples/component_ablation.py "
            f"--config {args.config}` (extra overrides: {args.set or 'none'}).",
            reference="full" if "full" in table else None,
        )
    logger.info("table: %s", Path(args.out) / "ablation.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
