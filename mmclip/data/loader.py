"""The loader: records → seeded, sharded, resumable stream of :class:`MMCLIPBatch`.

:class:`XrayLoader` iterates one list of records an epoch at a time;
:class:`~mmclip.data.mixing.MixingLoader` draws each batch from several. Both use a
:class:`BatchBuilder`, which reads the image files, decodes and augments them (DALI, or the
PIL fallback), and assembles the batch (:func:`~mmclip.data.collate.build_batch`).

Bad data never stops a run silently. With ``on_error="raise"`` (default) a missing,
unreadable or undecodable image raises :class:`~mmclip.data.records.DataError` naming the
file; with ``on_error="skip"`` the sample is left out of its batch, warned about as it
happens and counted per reason (:class:`~mmclip.data.records.SkipCounter`); the counts are
logged at the end of every epoch, kept in ``state_dict()``, and totalled for the run by the
trainer. Before an image file is read it must be a regular file (a FIFO would block for ever)
no larger than :data:`MAX_IMAGE_BYTES`.

16-bit grey images are scaled by their bit depth on both backends (DALI is handed an 8-bit
copy made by :func:`~mmclip.data.transforms.reduce_high_bit_depth`).

Reproducibility: the order of epoch ``e`` is a permutation seeded by ``(seed, e)``; the
augmentation and prompt choices of a batch are seeded by ``(seed, epoch, step, shard_id)``.
A loader restored with ``load_state_dict`` continues at the same (epoch, step) and yields the
same batches as an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import queue
import stat
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from mmclip.batch import MMCLIPBatch, SampleKind
from mmclip.data.collate import (
    DiseaseKindPrompter,
    Prompter,
    RadiologyTextEncoder,
    ReportTokenizer,
    build_batch,
    sort_by_kind,
)
from mmclip.data.dali_pipeline import DaliImagePipeline, dali_available
from mmclip.data.records import (
    DataError,
    ErrorPolicy,
    SkipCounter,
    XrayRecord,
    check_error_policy,
)
from mmclip.data.transforms import (
    AugmentParams,
    PilImagePipeline,
    TransformConfig,
    reduce_high_bit_depth,
    sample_params,
)

__all__ = ["MAX_IMAGE_BYTES", "BatchBuilder", "LoaderConfig", "ShardedOrder", "XrayLoader"]

MAX_IMAGE_BYTES = 512 * 2**20
"""Image files larger than this (512 MiB) are refused before reading, as a per-sample
:class:`~mmclip.data.records.DataError` (an X-ray is at most tens of MB; a mislabelled 3 GB
file would otherwise be read whole into memory). Raise it by assigning to
``mmclip.data.loader.MAX_IMAGE_BYTES``."""

logger = logging.getLogger(__name__)

Backend = Literal["auto", "dali", "pil"]


@dataclass
class LoaderConfig:
    """Loader settings.

    Attributes:
        batch_size: samples per batch (per rank).
        shuffle: reshuffle each epoch (default: ``transform.train``).
        drop_last: drop the last incomplete batch (default: ``transform.train``).
        seed: seeds the order, the augmentation and the prompt choice.
        shard_id, num_shards: this rank and the world size (DDP); every shard gets the same
            number of batches (the order is padded by wrapping around).
        on_error: ``"raise"`` or ``"skip"`` (counted, logged each epoch).
        backend: ``"dali"``, ``"pil"`` or ``"auto"`` (DALI when it imports, else PIL with a
            warning).
        device: where the batch tensors go (``"cuda"`` → DALI ``mixed`` decoding there).
        num_threads: decoding threads.
        max_text_length: tokens per text row.
        prefetch: batches prepared ahead in a background thread (0 = none).
        transform: image transforms (training augmentation or deterministic evaluation).
    """

    batch_size: int = 64
    shuffle: bool | None = None
    drop_last: bool | None = None
    seed: int = 0
    shard_id: int = 0
    num_shards: int = 1
    on_error: ErrorPolicy = "raise"
    backend: Backend = "auto"
    device: str = "cpu"
    num_threads: int = 1
    max_text_length: int = 128
    prefetch: int = 0
    transform: TransformConfig = field(default_factory=TransformConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_shards < 1 or not 0 <= self.shard_id < self.num_shards:
            raise ValueError(f"bad shard {self.shard_id} of {self.num_shards}")
        check_error_policy(self.on_error)
        if self.backend not in ("auto", "dali", "pil"):
            raise ValueError(f"backend must be 'auto', 'dali' or 'pil', got {self.backend!r}")

    @property
    def do_shuffle(self) -> bool:
        """Effective ``shuffle``."""
        return self.transform.train if self.shuffle is None else self.shuffle

    @property
    def do_drop_last(self) -> bool:
        """Effective ``drop_last``."""
        return self.transform.train if self.drop_last is None else self.drop_last


class ShardedOrder:
    """The sample order of one shard for each epoch (like ``DistributedSampler``)."""

    def __init__(self, n: int, num_shards: int, shard_id: int, shuffle: bool, seed: int) -> None:
        self.n, self.num_shards, self.shard_id = n, num_shards, shard_id
        self.shuffle, self.seed = shuffle, seed

    @property
    def per_shard(self) -> int:
        """Samples per shard and epoch (``ceil(n / num_shards)``)."""
        return math.ceil(self.n / self.num_shards) if self.n else 0

    def epoch(self, epoch: int) -> np.ndarray:
        """Indices of this shard for ``epoch`` (int64 [per_shard])."""
        if self.n == 0:
            return np.zeros(0, dtype=np.int64)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        total = self.per_shard * self.num_shards
        if total > self.n:  # pad by wrapping so every shard has the same length
            order = np.concatenate([order, np.resize(order, total - self.n)])
        return order[self.shard_id :: self.num_shards].astype(np.int64)


def _default_backend(config: LoaderConfig) -> str:
    if config.backend != "auto":
        return config.backend
    if dali_available():
        return "dali"
    logger.warning("nvidia.dali is not available: decoding with the PIL / numpy fallback")
    return "pil"


class BatchBuilder:
    """Reads, decodes, augments and collates a list of records into one batch.

    Args:
        config: loader settings (transforms, backend, device, error policy).
        tokenizer: fast tokenizer for the default text encoder (or pass ``text_encoder``).
        text_encoder: a :class:`~mmclip.data.collate.ReportTokenizer` (overrides ``tokenizer``).
        prompter: a :class:`~mmclip.data.collate.Prompter` (default
            :class:`~mmclip.data.collate.DiseaseKindPrompter`).
        max_batch: the largest number of images one call decodes.
    """

    def __init__(
        self,
        config: LoaderConfig,
        tokenizer: Any = None,
        text_encoder: ReportTokenizer | None = None,
        prompter: Prompter | None = None,
        max_batch: int | None = None,
    ) -> None:
        self.config = config
        if text_encoder is None and tokenizer is not None:
            text_encoder = RadiologyTextEncoder(tokenizer, config.max_text_length)
        self.text_encoder = text_encoder
        self.prompter = prompter if prompter is not None else DiseaseKindPrompter()
        self.device = torch.device(config.device)
        self.backend = _default_backend(config)
        self.skips = SkipCounter()
        self._pil = PilImagePipeline(config.transform, config.num_threads)
        self._dali: DaliImagePipeline | None = None
        if self.backend == "dali":
            self._dali = DaliImagePipeline(
                config.transform, max_batch or config.batch_size, self.device, config.num_threads
            )

    def _read(self, record: XrayRecord) -> bytes | None:
        assert record.image_path is not None
        path = record.image_path
        try:
            info = path.stat()
        except OSError as err:
            return self._fail("missing image file", f"{path}: {err.strerror or err}")
        if not stat.S_ISREG(info.st_mode):
            return self._fail(
                "not a regular file", f"{path}: not a regular file (a FIFO, device or folder)"
            )
        if info.st_size > MAX_IMAGE_BYTES:
            return self._fail(
                "image file too large",
                f"{path}: {info.st_size / 2**20:.0f} MiB, over the {MAX_IMAGE_BYTES // 2**20} MiB "
                "limit (mmclip.data.loader.MAX_IMAGE_BYTES)",
            )
        try:
            data = path.read_bytes()
        except OSError as err:
            return self._fail("unreadable image", f"{path}: {err.strerror or err}")
        if not data:
            return self._fail("empty image file", f"{record.image_path}: empty file")
        return data

    def _fail(self, reason: str, detail: str) -> None:
        if self.config.on_error == "raise":
            raise DataError(detail)
        self.skips.add(reason, detail)
        return None

    def _decode_each(
        self, records: list[XrayRecord], encoded: list[bytes], params: AugmentParams
    ) -> tuple[list[int], Tensor]:
        """PIL decoding one by one: finds the bad files (raise or count)."""
        good: list[int] = []
        rows: list[np.ndarray] = []
        for i, (record, data) in enumerate(zip(records, encoded, strict=True)):
            try:
                rows.append(self._pil.decode_one(data, params, i))
            except Exception as err:
                self._fail("undecodable image", f"{record.image_path}: cannot decode ({err})")
                continue
            good.append(i)
        size = self.config.transform.image_size
        if not rows:
            return good, torch.empty((0, 1, size, size))
        return good, torch.from_numpy(np.stack(rows)[:, None])

    def build(self, records: Sequence[XrayRecord], seed: Sequence[int]) -> MMCLIPBatch:
        """One batch of ``records``; ``seed`` (a tuple of ints) seeds augmentation + prompts."""
        rng = np.random.default_rng(list(seed))
        kept: list[XrayRecord] = []
        image_records: list[XrayRecord] = []
        encoded: list[bytes] = []
        for record in sort_by_kind(records):
            if record.kind == SampleKind.TEXT_ONLY:
                if not (record.report or "").strip():
                    self._fail("empty report", f"{record.source}: empty report")
                    continue
                kept.append(record)
                continue
            data = self._read(record)
            if data is None:
                continue
            kept.append(record)
            image_records.append(record)
            encoded.append(data)
        params = sample_params(self.config.transform, len(encoded), rng)
        images: Tensor | None = None
        if encoded:
            images = self._decode(image_records, encoded, params, kept)
        prompt_seed = int(rng.integers(2**31))
        batch = build_batch(kept, images, self.text_encoder, self.prompter, prompt_seed)
        return batch.to(self.device, non_blocking=True)

    def _decode(
        self,
        image_records: list[XrayRecord],
        encoded: list[bytes],
        params: AugmentParams,
        kept: list[XrayRecord],
    ) -> Tensor:
        if self._dali is not None:
            # DALI divides 16-bit PNGs by 65,535: hand it 8 bits scaled as the PIL path does.
            encoded = [reduce_high_bit_depth(data) for data in encoded]
            try:
                return self._dali(encoded, params)
            except Exception as err:
                logger.debug("DALI failed on a batch (%s); decoding it image by image", err)
        elif self.config.on_error == "raise":
            try:
                return self._pil(encoded, params)
            except Exception:
                logger.debug("PIL failed on a batch; decoding it image by image")
        good, images = self._decode_each(image_records, encoded, params)
        if len(good) < len(image_records):
            bad = {id(image_records[i]) for i in range(len(image_records)) if i not in set(good)}
            kept[:] = [r for r in kept if id(r) not in bad]
        if self._dali is not None and good:
            # Keep the backend's numerics for the good images.
            try:
                return self._dali([encoded[i] for i in good], params.select(good))
            except Exception:  # pragma: no cover - fall back to the PIL result
                pass
        return images.to(self.device)


class XrayLoader:
    """Batches of one list of records, epoch after epoch.

    ``for batch in loader`` yields the rest of the current epoch (from the restored step
    when resumed) and then moves to the next epoch. ``len(loader)`` is the number of
    batches per epoch of this shard.

    Args:
        records: the samples.
        config: loader settings.
        tokenizer: fast tokenizer (see :class:`BatchBuilder`), or pass ``text_encoder``.
        text_encoder, prompter: see :class:`BatchBuilder`.
    """

    def __init__(
        self,
        records: Sequence[XrayRecord],
        config: LoaderConfig | None = None,
        tokenizer: Any = None,
        text_encoder: ReportTokenizer | None = None,
        prompter: Prompter | None = None,
    ) -> None:
        self.records = list(records)
        self.config = config or LoaderConfig()
        self.builder = BatchBuilder(self.config, tokenizer, text_encoder, prompter)
        self.order = ShardedOrder(
            len(self.records),
            self.config.num_shards,
            self.config.shard_id,
            self.config.do_shuffle,
            self.config.seed,
        )
        self.epoch = 0
        self.step = 0

    @property
    def skips(self) -> SkipCounter:
        """Skipped-sample counts of the current epoch."""
        return self.builder.skips

    def __len__(self) -> int:
        n, b = self.order.per_shard, self.config.batch_size
        return n // b if self.config.do_drop_last else math.ceil(n / b)

    def batch_at(self, epoch: int, step: int) -> MMCLIPBatch:
        """The batch ``step`` of ``epoch`` (a pure function of the two and the config)."""
        b = self.config.batch_size
        idx = self.order.epoch(epoch)[step * b : (step + 1) * b]
        seed = (self.config.seed, epoch, step, self.config.shard_id)
        return self.builder.build([self.records[i] for i in idx], seed)

    def __iter__(self) -> Iterator[MMCLIPBatch]:
        epoch, steps = self.epoch, len(self)
        if self.config.prefetch > 0:
            batches = _prefetched(
                lambda s: self.batch_at(epoch, s), range(self.step, steps), self.config.prefetch
            )
        else:
            batches = (self.batch_at(epoch, s) for s in range(self.step, steps))
        for batch in batches:
            self.step += 1
            yield batch
        self.skips.report(f"epoch {epoch}")
        self.skips.reset()
        self.epoch, self.step = epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        """Position for checkpoint resume: ``{"epoch", "step", "skipped"}``."""
        return {"epoch": self.epoch, "step": self.step, "skipped": self.skips.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at the saved (epoch, step)."""
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        if not 0 <= self.step <= len(self):
            raise ValueError(f"step {self.step} outside the epoch of {len(self)} batches")
        self.skips.load_state_dict(state.get("skipped", {}))


def _prefetched(make: Any, steps: range, depth: int) -> Iterator[MMCLIPBatch]:
    """Batches of ``steps`` made ahead by one background thread (errors re-raised here)."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def worker() -> None:
        try:
            for s in steps:
                if stop.is_set():
                    return
                q.put(("batch", make(s)))
            q.put(("done", None))
        except BaseException as err:  # re-raised in the consumer
            q.put(("error", err))

    thread = threading.Thread(target=worker, name="mmclip-data-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            tag, value = q.get()
            if tag == "done":
                return
            if tag == "error":
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
