"""The demo pipeline: synthetic X-rays → pre-train mmclip-tiny → evaluate, in one call.

``mmclip demo`` is a thin command over :func:`run_demo`::

    from mmclip.demo import DemoOptions, run_demo

    result = run_demo(DemoOptions(out="mmclip-demo", steps=200, num_images=400))
    markdown = result.suite.markdown  # what results.md holds
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEMO_CONFIG", "SYNTHETIC_FINDINGS", "DemoOptions", "DemoResult", "run_demo"]

logger = logging.getLogger(__name__)

DEMO_CONFIG = Path(__file__).resolve().parent / "train" / "demo.yaml"
"""The demo's training config (``configs/demo.yaml`` links to it)."""

SYNTHETIC_FINDINGS: tuple[str, ...] = (
    "Consolidation", "Pleural Effusion", "Cardiomegaly", "Pneumothorax", "Lung Lesion",
)  # fmt: skip
"""The CheXpert names of the findings the synthetic generator draws."""


@dataclass
class DemoOptions:
    """What :func:`run_demo` does.

    Attributes:
        out: output folder (``data/``, ``run/``, results and pictures).
        steps, batch_size, seed: the pre-training run.
        num_images, data_size: the synthetic set (at least 50 images; side in pixels).
        bootstrap: bootstrap resamples of the intervals.
        overrides: ``key=value`` changes of the demo's training config.
        force: replace a previous demo run in ``out``.
        tag: register the trained model in the local model directory as
            ``<model name>:<tag>`` (``mmclip-tiny:demo``; see :mod:`mmclip.models.home`);
            None leaves it unregistered.
    """

    out: str | Path = "mmclip-demo"
    steps: int = 1600
    num_images: int = 2000
    batch_size: int = 32
    data_size: int = 128
    seed: int = 0
    bootstrap: int = 500
    overrides: Sequence[str] = field(default_factory=list)
    force: bool = False
    tag: str | None = "demo"


@dataclass
class DemoResult:
    """The demo's outputs: the evaluation suite, the run's seconds, where the loss plot is,
    the trained model's directory and, when registered, its ``name:tag``."""

    suite: Any
    train_seconds: float
    total_seconds: float
    loss_plot: Path
    model_dir: Path | None = None
    registered: str | None = None


def run_demo(options: DemoOptions) -> DemoResult:
    """Write synthetic X-rays, pre-train mmclip-tiny on them, evaluate on held-out images.

    Raises:
        ValueError: fewer than 50 images, a previous run in ``out`` without ``force``, or
            several processes (use ``mmclip pretrain`` with torchrun).
    """
    from mmclip.data import synthetic
    from mmclip.eval.plots import plot_loss_curve
    from mmclip.eval.suite import SuiteOptions, run_suite
    from mmclip.models import MMCLIPModel
    from mmclip.models.home import check_tag, register_pretrained
    from mmclip.train import Trainer, init_distributed, load_config
    from mmclip.train.data import load_records

    t0 = time.perf_counter()
    out = Path(options.out)
    data_dir, run_dir = out / "data", out / "run"
    if options.num_images < 50:
        raise ValueError("--num-images must be at least 50 (the test split is 10 % of it)")
    if (run_dir / "checkpoints").exists() and not options.force:
        raise ValueError(f"{run_dir} already holds a demo run; pass --force or another --out")
    if options.tag is not None:
        check_tag(options.tag)  # before training, not after
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("`mmclip demo` runs in one process; use `mmclip pretrain` with torchrun")
    if options.force and run_dir.exists():
        shutil.rmtree(run_dir)
    logger.info("demo: writing %d synthetic X-rays to %s", options.num_images, data_dir)
    if not (data_dir / "manifest.jsonl").is_file() or options.force:
        synthetic.write_dataset(
            data_dir, n=options.num_images, size=options.data_size, seed=options.seed
        )
    config = load_config(
        DEMO_CONFIG,
        [
            f"steps={options.steps}",
            f"batch_size={options.batch_size}",
            f"seed={options.seed}",
            f"out_dir={run_dir}",
            f"data.sources.0.root={data_dir}",
            f"data.sources.1.root={data_dir}",
            f"save_every={max(options.steps, 1)}",
            *options.overrides,
        ],
    )
    logger.info(
        "demo: pre-training %s for %d steps (batch %d) on the CPU",
        config.model.name,
        config.steps,
        config.batch_size,
    )
    result = Trainer(config, dist_info=init_distributed(config.device)).fit()
    train_seconds = time.perf_counter() - t0
    assert result.model_dir is not None
    model = MMCLIPModel.from_pretrained(result.model_dir)
    train = load_records("synthetic", data_dir, "train")
    test = load_records("synthetic", data_dir, "test")
    logger.info("demo: evaluating on %d held-out images", len(test))
    preamble = (
        f"`mmclip demo`: {config.model.name} pre-trained for {config.steps} steps "
        f"(batch {config.batch_size}, {train_seconds:.0f} s) on {len(train)} synthetic training "
        f"X-rays (half image–report pairs, half images with disease-kind prompts), evaluated "
        f"on {len(test)} held-out synthetic X-rays. Chance AUROC is 0.500."
    )
    suite = run_suite(
        model,
        train,
        test,
        list(SYNTHETIC_FINDINGS),
        out,
        SuiteOptions(seeds=(0, 1, 2), n_resamples=options.bootstrap, backend="pil"),
        title="mmclip demo results",
        preamble=preamble,
    )
    loss_plot = plot_loss_curve(run_dir / "metrics.jsonl", out / "loss.png")
    registered = None
    if options.tag is not None:
        register_pretrained(result.model_dir, config.model.name, options.tag)
        registered = f"{config.model.name}:{options.tag}"
    return DemoResult(
        suite,
        train_seconds,
        time.perf_counter() - t0,
        Path(loss_plot),
        model_dir=Path(result.model_dir),
        registered=registered,
    )
