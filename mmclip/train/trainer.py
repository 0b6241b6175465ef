"""The pre-training loop for :class:`~mmclip.models.MMCLIPModel` on the mixing loader.

One optimiser step = ``grad_accum`` micro-batches of ``batch_size / (world_size · grad_accum)``
samples per rank. AdamW (fused on CUDA) with decoupled weight decay on matrices only, linear
warm-up + cosine schedule, global-norm gradient clipping, bf16 autocast on CUDA, optional
``torch.compile``, DDP across ``torchrun`` processes. ``model.set_step(step)`` drives the
AttMIM temperature schedule.

Determinism: the run is seeded (``seed``: initialisation; ``seed`` and the rank: data order,
augmentation, masks, dropout). A checkpoint holds everything that changes along the way
(weights, optimiser, scheduler, every RNG, the loader position), so on the CPU a resumed run
reproduces the uninterrupted loss curve exactly.

Example::

    from mmclip.train import Trainer, load_config
    result = Trainer(load_config("configs/demo.yaml", ["steps=100"])).fit()
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmclip.batch import MMCLIPBatch
from mmclip.config import flatten

from ..models.config import LOSS_TERMS
from .checkpoint import (
    CheckpointError,
    capture_rng_state,
    check_resume_config,
    find_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    publish_checkpoint,
    restore_rng_state,
    staging_dir,
    write_checkpoint_files,
)
from .config import ConfigError, TrainConfig, config_to_dict, save_config
from .data import build_loader, load_source_records, train_tokenizer
from .distributed import DistInfo, all_reduce_mean, barrier, init_distributed
from .logging import MetricsLogger, estimate_step_flops, peak_flops
from .schedule import build_scheduler

__all__ = ["TrainResult", "Trainer", "build_optimizer", "seed_everything"]

logger = logging.getLogger(__name__)

RUN_ENTRIES = ("checkpoints", "model", "tokenizer", "tensorboard", "metrics.jsonl", "config.yaml")
"""What a run writes into its ``out_dir``: what ``overwrite=True`` removes (nothing else)."""


class _DeferredInterrupt:
    """Ctrl-C during :meth:`Trainer.fit`: the first one lets the current step finish (the
    trainer then saves a checkpoint and stops), a second one stops at once.

    Only in a single process and the main thread (a signal handler can be set there only);
    under torchrun the ranks would not agree on the step to stop at, so Ctrl-C stops at once.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning(
            "interrupted: finishing this step, then saving a checkpoint (Ctrl-C again to stop "
            "at once, without it)"
        )

    def __enter__(self) -> _DeferredInterrupt:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global generator and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may use it
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> Any:
    """AdamW with weight decay on matrices only (not on biases, norms, scales, tokens).

    Args:
        model: the (unwrapped) model.
        config: the run config (``optim`` section).
        device: fused AdamW is used on CUDA unless ``optim.fused`` says otherwise.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = (
            param.ndim < 2
            or name.endswith(("cls_token", "mask_token", "logit_scale"))
            or "pos_embed" in name
        )
        (no_decay if skip else decay).append(param)
    o = config.optim
    fused = o.fused if o.fused is not None else device.type == "cuda"
    groups = [
        {"params": decay, "weight_decay": o.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs: dict[str, Any] = {"lr": o.lr, "betas": (o.beta1, o.beta2), "eps": o.eps}
    if fused:
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did.

    Attributes:
        step: optimiser steps done in total (including those before a resume).
        losses: step (1-based) → loss (mean over ranks) of the steps this call ran.
        out_dir: the run directory.
        model_dir: the final model (``save_pretrained``), when the run reached its last step.
        seconds: wall time of this call.
    """

    step: int
    losses: dict[int, float] = field(default_factory=dict)
    out_dir: Path = Path(".")
    model_dir: Path | None = None
    seconds: float = 0.0


class Trainer:
    """Sets up and runs a pre-training run.

    Args:
        config: the run (see :class:`~mmclip.train.TrainConfig`).
        resume: ``None`` / ``False``: a new run (its ``out_dir`` must not hold one);
            ``True`` or ``"latest"``: continue from ``out_dir``'s latest checkpoint; a path: a
            run or checkpoint directory to continue from.
        dist_info: where this process sits; default: from the ``torchrun`` environment.
        tty: force the progress display mode (default: whether stderr is a terminal).
        force_resume: resume even when the model, data, batch size, accumulation or seed
            differ from the checkpoint's run (the run then no longer replays exactly).
        overwrite: a new run replaces a run in ``out_dir`` (its :data:`RUN_ENTRIES` are
            deleted first) instead of refusing it.

    Ctrl-C during :meth:`fit` (one process) finishes the current step, saves a checkpoint
    and raises ``KeyboardInterrupt``; ``resume=True`` continues from it.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool | str | Path | None = None,
        dist_info: DistInfo | None = None,
        tty: bool | None = None,
        force_resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.config = config.validate()
        self.info = dist_info or init_distributed(config.device, config.dist_timeout_s)
        info = self.info
        self.out_dir = Path(config.out_dir)
        self._overwrite = overwrite
        per_step = info.world_size * config.grad_accum
        if config.batch_size % per_step:
            raise ConfigError(
                f"batch_size {config.batch_size} is not divisible by world_size "
                f"{info.world_size} × grad_accum {config.grad_accum}"
            )
        self.micro_batch = config.batch_size // per_step
        self.checkpoint = self._find_resume(resume)

        seed_everything(config.seed)
        self.sources = {
            s.name: load_source_records(s, config.data.root) for s in config.data.sources
        }
        tokenizer = self._tokenizer()
        self.model = self._build_model(tokenizer)
        self.model.to(info.device)
        if info.is_main:
            self._warn_unguided()
        seed_everything(config.seed + 1 + 100_003 * info.rank)  # per-rank data / mask streams

        vision = self.model.config.vision
        self.loader = build_loader(
            config.data,
            self.sources,
            batch_size=self.micro_batch,
            seed=config.seed,
            image_size=vision.image_size,
            image_mean=vision.image_mean,
            image_std=vision.image_std,
            max_text_length=self.model.config.text.max_length,
            tokenizer=self.model.tokenizer,
            shard_id=info.rank,
            num_shards=info.world_size,
            device=str(info.device),
        )
        self.step = 0
        loaded = None
        if self.checkpoint is not None:
            loaded = load_checkpoint(self.checkpoint, info.rank, info.world_size)
            self.model.load_checkpoint_state(loaded.weights, source=str(loaded.path))
            self.step = loaded.step
        self.train_model: nn.Module = self.model
        if info.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.train_model = DistributedDataParallel(
                self.model,
                device_ids=[info.device.index] if info.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        if config.compile:
            self.train_model = torch.compile(self.train_model)  # type: ignore[assignment]
        self.optimizer = build_optimizer(self.model, config, info.device)
        self.scheduler = build_scheduler(
            self.optimizer,
            config.schedule.warmup_steps,
            config.steps,
            config.schedule.min_lr_ratio,
        )
        if loaded is not None:
            check_resume_config(self.config, loaded.trainer, loaded.path, force_resume)
            self.optimizer.load_state_dict(loaded.trainer["optimizer"])
            self.scheduler.load_state_dict(loaded.trainer["scheduler"])
            schedule = self.scheduler.lr_lambdas[0]
            if schedule.total_steps != config.steps:  # type: ignore[attr-defined]
                logger.info("steps changed on resume: cosine schedule now ends at %d", config.steps)
                schedule.total_steps = config.steps  # type: ignore[attr-defined]
            self.loader.load_state_dict(loaded.rank_state["loader"])
            restore_rng_state(loaded.rank_state["rng"])
            logger.info("resumed from %s at step %d", loaded.path, self.step)
        if info.is_main:
            save_config(config, self.out_dir / "config.yaml")
        self._autocast = self._autocast_context()
        self._flops_per_step: float | None = None
        self._peak = peak_flops(info.device)
        self._tty = tty

    # ------------------------------------------------------------------ set-up
    def _report_skips(self) -> None:
        """End-of-run summary of the skipped samples: the current epoch's (a run usually ends
        inside an epoch, whose own report would never come) and the whole run's, per reason."""
        skips = getattr(self.loader, "skips", None)
        if skips is None:
            skips = getattr(getattr(self.loader, "builder", None), "skips", None)
        if skips is not None:
            context = f"rank {self.info.rank}, end of run at step {self.step}"
            if skips.counts != skips.run_counts:  # earlier epochs: this one's totals apart
                skips.report(context)
            skips.report_run(context)  # one line when the run did not finish an epoch

    def _warn_unguided(self) -> None:
        """A run that ends before AttMIM's guidance starts is never text-guided: say so."""
        model_config = self.model.config
        attmim = model_config.attmim
        if (
            model_config.loss_weights.mim != 0
            and math.isfinite(attmim.tau_final)  # tau_final = inf: uniform masking on purpose
            and self.config.steps <= attmim.guide_warmup_steps
        ):
            logger.warning(
                "steps=%d <= attmim.guide_warmup_steps=%d: AttMIM masks uniformly for the whole "
                "run and is never text-guided; for a guided run lower it, e.g. --set "
                "model.overrides.attmim.guide_warmup_steps=%d",
                self.config.steps,
                attmim.guide_warmup_steps,
                self.config.steps // 4,
            )

    def _find_resume(self, resume: bool | str | Path | None) -> Path | None:
        if resume is None or resume is False:
            existing = latest_checkpoint(self.out_dir) if self.out_dir.is_dir() else None
            if existing is not None and not self._overwrite:
                raise CheckpointError(
                    f"{self.out_dir} already holds a run ({existing.name}); pass --resume to "
                    "continue it, --overwrite to replace it, or choose another output directory"
                )
            if self._overwrite:  # every rank waits: they may see the old run or none
                if self.info.is_main and existing is not None:
                    logger.warning("overwrite: deleting the run in %s", self.out_dir)
                    for name in RUN_ENTRIES:
                        entry = self.out_dir / name
                        if entry.is_dir() and not entry.is_symlink():
                            shutil.rmtree(entry)
                        elif entry.exists() or entry.is_symlink():
                            entry.unlink()
                barrier(self.info)
            return None
        if resume is True or resume == "latest":
            if latest_checkpoint(self.out_dir) is None:
                raise CheckpointError(f"no checkpoint to resume in {str(self.out_dir)!r}")
            return find_checkpoint(self.out_dir)
        return find_checkpoint(resume)

    def _tokenizer(self) -> Any:
        from mmclip.models import get_model_config
        from mmclip.text import load_tokenizer

        config, info = self.config, self.info
        if self.checkpoint is not None and (self.checkpoint / "tokenizer_config.json").is_file():
            return load_tokenizer(self.checkpoint)
        if config.model.tokenizer:
            return load_tokenizer(config.model.tokenizer)
        if (config.model.overrides.get("text") or {}).get("pretrained"):
            return None  # the pretrained text encoder brings its tokenizer
        tok_dir = self.out_dir / "tokenizer"
        text_vocab = get_model_config(config.model.name).text.vocab_size
        vocab = min(config.model.tokenizer_vocab_size, text_vocab)
        if info.is_main:
            if tok_dir.exists():
                shutil.rmtree(tok_dir)
            train_tokenizer(self.sources.values(), vocab, save_dir=tok_dir)
        barrier(info)
        return load_tokenizer(tok_dir)

    def _build_model(self, tokenizer: Any) -> Any:
        from mmclip.models import create_model

        config = self.config
        overrides = flatten(config.model.overrides)
        try:
            model = create_model(config.model.name, tokenizer=tokenizer, overrides=overrides)
        except ValueError as err:
            raise ConfigError(f"model {config.model.name!r}: {err}") from None
        if config.model.init and self.checkpoint is None:
            from safetensors.torch import load_file

            weights = Path(config.model.init) / "model.safetensors"
            if not weights.is_file():
                raise FileNotFoundError(f"model.init: {str(weights)!r} does not exist")
            model.load_checkpoint_state(load_file(str(weights)), source=str(weights))
        model.train()
        return model

    def _autocast_context(self) -> Any:
        precision = self.config.precision
        device = self.info.device
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        if precision == "bf16":
            return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext

    # ------------------------------------------------------------------ loop
    def _batches(self) -> Iterator[MMCLIPBatch]:
        while True:
            yield from self.loader

    def _micro_step(self, batch: MMCLIPBatch, sync: bool) -> dict[str, float]:
        ddp_no_sync = (
            self.train_model.no_sync()  # type: ignore[operator]
            if self.info.distributed and not sync and hasattr(self.train_model, "no_sync")
            else contextlib.nullcontext()
        )
        with ddp_no_sync:
            with self._autocast():
                out = self.train_model(batch)
            (out.loss / self.config.grad_accum).backward()
        values = {"loss": float(out.loss.detach())}
        for name in LOSS_TERMS:
            term = getattr(out, name)
            if term is not None:
                values[name] = float(term.detach())
        values["tau"] = out.tau
        values["logit_scale"] = float(out.logit_scale) if out.logit_scale is not None else 0.0
        values["guide_scale"] = self.model.objective.guide_scale()
        if out.mlm_accuracy is not None:
            values["mlm_accuracy"] = float(out.mlm_accuracy)
        return values

    def _counted_micro_step(self, batch: MMCLIPBatch, sync: bool) -> dict[str, float]:
        """A micro-step under the FLOP counter (once per process, CUDA only, for the MFU)."""
        holder: dict[str, dict[str, float]] = {}

        def run() -> None:
            holder["values"] = self._micro_step(batch, sync)

        flops = estimate_step_flops(run)
        self._flops_per_step = (flops or 0.0) * self.config.grad_accum
        return holder["values"]

    def _train_step(self, step: int, batches: Iterator[MMCLIPBatch]) -> dict[str, Any]:
        config, info = self.config, self.info
        self.model.set_step(step)
        self.optimizer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for micro in range(config.grad_accum):
            batch = next(batches)
            sync = micro == config.grad_accum - 1
            if self._flops_per_step is None and info.device.type == "cuda" and micro == 0:
                values = self._counted_micro_step(batch, sync)
            else:
                values = self._micro_step(batch, sync)
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = config.optim.grad_clip if config.optim.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        # mean over micro-steps, then over ranks (terms absent on a rank count as absent)
        keys = ["loss", *LOSS_TERMS, "logit_scale", "guide_scale", "mlm_accuracy"]
        means = torch.tensor(
            [sums.get(k, 0.0) / max(1, counts.get(k, 0)) for k in keys], dtype=torch.float64
        )
        present = torch.tensor([float(counts.get(k, 0) > 0) for k in keys], dtype=torch.float64)
        if info.distributed:
            packed = torch.cat([means * present, present]).to(info.device)
            packed = all_reduce_mean(packed, info).cpu() * info.world_size  # sums over ranks
            present = packed[len(keys) :]
            means = packed[: len(keys)] / present.clamp_min(1.0)
        elapsed = time.perf_counter() - t0
        metrics: dict[str, Any] = {
            k: float(means[i]) for i, k in enumerate(keys) if float(present[i]) > 0
        }
        metrics["lr"] = float(lr)
        metrics["tau"] = float(sums["tau"] / counts["tau"])
        if math.isinf(metrics["tau"]):
            metrics["tau"] = "inf"
        metrics["grad_norm"] = float(grad_norm)
        metrics["step_time"] = elapsed
        metrics["pairs_per_s"] = config.batch_size / elapsed if elapsed > 0 else 0.0
        if self._flops_per_step and self._peak:
            metrics["mfu"] = self._flops_per_step / (elapsed * self._peak)
        return metrics

    def save(self) -> None:
        """Write a checkpoint of the current step (a collective: every rank calls it)."""
        info = self.info
        stage = staging_dir(self.out_dir, self.step)
        if info.is_main and stage.exists():
            shutil.rmtree(stage)  # left by a run killed while writing
        barrier(info)
        rank_state = {"rng": capture_rng_state(), "loader": self.loader.state_dict()}
        trainer_state = None
        if info.is_main:
            trainer_state = {
                "step": self.step,
                "world_size": info.world_size,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "seed": self.config.seed,
                "config": config_to_dict(self.config),
            }
        write_checkpoint_files(
            self.out_dir,
            self.step,
            info.rank,
            rank_state,
            model=self.model if info.is_main else None,
            trainer_state=trainer_state,
        )
        barrier(info)
        if info.is_main:
            publish_checkpoint(
                self.out_dir, self.step, info.world_size, self.config.keep_checkpoints
            )
        barrier(info)

    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train until ``config.steps`` (or until ``stop_after`` steps are done).

        Returns:
            :class:`TrainResult`; rank 0 also writes the final model to ``<out_dir>/model``.
        """
        config, info = self.config, self.info
        end = config.steps if stop_after is None else min(stop_after, config.steps)
        t0 = time.perf_counter()
        metrics_log = MetricsLogger(
            self.out_dir,
            config.steps,
            self.step,
            enabled=info.is_main,
            tensorboard=config.tensorboard,
            log_every=config.log_every,
            tty=self._tty,
        )
        result = TrainResult(step=self.step, out_dir=self.out_dir)
        if info.is_main:
            logger.info(
                "training %s for %d steps from step %d: %d samples per step "
                "(%d ranks × %d accumulation × %d), %s",
                config.model.name,
                config.steps,
                self.step,
                config.batch_size,
                info.world_size,
                config.grad_accum,
                self.micro_batch,
                info.device,
            )
        batches = self._batches()
        try:
            with _DeferredInterrupt(not info.distributed) as interrupt:
                while self.step < end:
                    metrics = self._train_step(self.step, batches)
                    self.step += 1
                    result.losses[self.step] = metrics["loss"]
                    metrics_log.log(self.step, metrics)
                    if not math.isfinite(metrics["loss"]):
                        raise FloatingPointError(
                            f"the loss is {metrics['loss']} at step {self.step}; lower "
                            "optim.lr or check the data"
                        )
                    if (
                        self.step % config.save_every == 0
                        or self.step == config.steps
                        or interrupt.requested
                    ):
                        self.save()
                    if interrupt.requested:
                        raise KeyboardInterrupt
        finally:
            metrics_log.close()
            self._report_skips()
        if self.step > 0:  # trained weights: no untrained warning from the inference methods
            self.model.weights_source = f"trained in {self.out_dir} ({self.step} steps)"
        if self.step == config.steps:
            result.model_dir = self.out_dir / "model"
            if info.is_main:
                self.model.save_pretrained(result.model_dir)
            barrier(info)
        result.step = self.step
        result.seconds = time.perf_counter() - t0
        return result
