"""A loader that draws every batch from several sources with configured ratios.

Example: 50 % paired image–report samples, 30 % image-only samples with disease-kind
prompts, 20 % text-only reports::

    loader = MixingLoader(
        {"paired": mimic, "images": chexpert, "reports": iu},
        {"paired": 0.5, "images": 0.3, "reports": 0.2},
        LoaderConfig(batch_size=64), tokenizer=tok,
    )

Each source is an endless, sharded stream: its own seeded permutation per pass, reshuffled
when it is exhausted (a small source is revisited more often than a large one, by design).
The per-batch counts are the ratios times the batch size, rounded by largest remainder (the
counts sum to the batch size exactly and are the same every step). The samples of a batch
are ordered source by source.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mmclip.batch import MMCLIPBatch
from mmclip.data.collate import Prompter, ReportTokenizer
from mmclip.data.loader import BatchBuilder, LoaderConfig, ShardedOrder, _prefetched
from mmclip.data.records import XrayRecord

__all__ = ["MixingLoader", "allocate"]

logger = logging.getLogger(__name__)


def allocate(ratios: Mapping[str, float], batch_size: int) -> dict[str, int]:
    """Samples per source: ``ratio · batch_size`` rounded by largest remainder."""
    if not ratios:
        raise ValueError("ratios is empty")
    if any(r < 0 for r in ratios.values()) or sum(ratios.values()) <= 0:
        raise ValueError(f"ratios must be >= 0 with a positive sum, got {dict(ratios)}")
    total = sum(ratios.values())
    exact = {k: r / total * batch_size for k, r in ratios.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    left = batch_size - sum(counts.values())
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[:left]:
        counts[k] += 1
    return counts


class _Stream:
    """Endless sharded stream of record indices of one source."""

    def __init__(self, n: int, order: ShardedOrder) -> None:
        self.n, self.order = n, order
        self.epoch, self.pos = 0, 0
        self._current = order.epoch(0)

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            if self.pos >= len(self._current):
                self.epoch, self.pos = self.epoch + 1, 0
                self._current = self.order.epoch(self.epoch)
            step = min(k - len(out), len(self._current) - self.pos)
            out.extend(int(i) for i in self._current[self.pos : self.pos + step])
            self.pos += step
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def restore(self, state: Mapping[str, int]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._current = self.order.epoch(self.epoch)


class MixingLoader:
    """Batches mixing several record lists with fixed ratios.

    Args:
        sources: name → records (each non-empty where its ratio is positive).
        ratios: name → weight (normalised; sources missing here are not drawn).
        config: loader settings (``batch_size`` is the total per batch).
        steps_per_epoch: batches per epoch (default: enough for the source with the most
            samples per drawn sample to be seen once).
        tokenizer, text_encoder, prompter: see :class:`~mmclip.data.loader.BatchBuilder`.
    """

    def __init__(
        self,
        sources: Mapping[str, Sequence[XrayRecord]],
        ratios: Mapping[str, float],
        config: LoaderConfig | None = None,
        steps_per_epoch: int | None = None,
        tokenizer: Any = None,
        text_encoder: ReportTokenizer | None = None,
        prompter: Prompter | None = None,
    ) -> None:
        self.config = config or LoaderConfig()
        unknown = set(ratios) - set(sources)
        if unknown:
            raise ValueError(f"ratios name unknown sources {sorted(unknown)}")
        self.counts = {k: v for k, v in allocate(ratios, self.config.batch_size).items() if v}
        self.sources = {k: list(sources[k]) for k in self.counts}
        for name, records in self.sources.items():
            if not records:
                raise ValueError(f"source {name!r} is empty but has a positive ratio")
        self.streams: dict[str, _Stream] = {}
        for i, (name, records) in enumerate(sorted(self.sources.items())):
            order = ShardedOrder(
                len(records),
                self.config.num_shards,
                self.config.shard_id,
                self.config.do_shuffle,
                self.config.seed * 1000 + i,
            )
            self.streams[name] = _Stream(len(records), order)
        if steps_per_epoch is None:
            steps_per_epoch = max(
                math.ceil(self.streams[k].order.per_shard / c) for k, c in self.counts.items()
            )
        self.steps_per_epoch = steps_per_epoch
        self.builder = BatchBuilder(self.config, tokenizer, text_encoder, prompter)
        self.epoch, self.step = 0, 0
        self._positions: list[dict[str, dict[str, int]]] | None = None
        self._plan_start = 0
        logger.info("mixing %s per batch of %d", self.counts, self.config.batch_size)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _next_records(self) -> list[XrayRecord]:
        records: list[XrayRecord] = []
        for name, count in self.counts.items():
            records.extend(self.sources[name][i] for i in self.streams[name].take(count))
        return records

    def __iter__(self) -> Iterator[MMCLIPBatch]:
        epoch, first = self.epoch, self.step
        if self._positions is not None:  # a previous pass was left mid-epoch: rewind streams
            for name, state in self._positions[first - self._plan_start].items():
                self.streams[name].restore(state)
        # Draw the indices of the rest of the epoch up front (cheap: integers only) and keep
        # the stream positions after each step, so state_dict() matches the batches consumed
        # even when batches are prepared ahead.
        plan: list[list[XrayRecord]] = []
        self._positions = [self._stream_states()]
        for _ in range(first, self.steps_per_epoch):
            plan.append(self._next_records())
            self._positions.append(self._stream_states())
        self._plan_start = first

        def make(step: int) -> MMCLIPBatch:
            seed = (self.config.seed, epoch, step, self.config.shard_id)
            return self.builder.build(plan[step - first], seed)

        steps = range(first, self.steps_per_epoch)
        batches = (
            _prefetched(make, steps, self.config.prefetch)
            if self.config.prefetch > 0
            else (make(s) for s in steps)
        )
        for batch in batches:
            self.step += 1
            yield batch
        self.builder.skips.report(f"mixing epoch {epoch}")
        self.builder.skips.reset()
        self.epoch, self.step = epoch + 1, 0
        self._positions = [self._stream_states()]
        self._plan_start = 0

    def _stream_states(self) -> dict[str, dict[str, int]]:
        return {k: s.state() for k, s in self.streams.items()}

    def state_dict(self) -> dict[str, Any]:
        """Position: epoch, step and every source stream's (epoch, pos) after that step."""
        positions = self._positions
        if positions is None:
            streams = self._stream_states()
        else:
            streams = positions[self.step - self._plan_start]
        return {
            "epoch": self.epoch,
            "step": self.step,
            "streams": streams,
            "skipped": self.builder.skips.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue where ``state`` was taken."""
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self._positions = None
        for name, stream_state in state["streams"].items():
            if name not in self.streams:
                raise ValueError(f"state has unknown source {name!r}")
            self.streams[name].restore(stream_state)
        self.builder.skips.load_state_dict(state.get("skipped", {}))
