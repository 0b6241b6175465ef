"""Every collective of the objective runs on every rank, whatever each rank's batch holds.

Two gloo processes run the model API (forward + backward) on batches of different
compositions: pairs, image + prompt, image-only and text-only samples, and none of a kind on
one rank. A collective skipped on one rank hangs the other; the test fails on a timeout
instead of hanging the suite.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmclip.batch import SampleKind

PAIR, PROMPT, IMAGE, TEXT = (
    SampleKind.PAIRED,
    SampleKind.IMAGE_PROMPT,
    SampleKind.IMAGE_ONLY,
    SampleKind.TEXT_ONLY,
)

# rank 0's kinds, rank 1's kinds
COMPOSITIONS = {
    "text-only-on-one-rank": ([PAIR, PAIR, TEXT], [PAIR, PAIR, IMAGE]),
    "pairs-on-one-rank": ([PAIR, PROMPT, TEXT], [IMAGE, PROMPT, IMAGE]),
    "nothing-in-common": ([TEXT, TEXT], [IMAGE, PROMPT]),
    "everything-on-both": ([PAIR, PROMPT, IMAGE, TEXT], [TEXT, IMAGE, PROMPT, PAIR]),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, kinds: list, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=_timeout())
    try:
        from tests.models.helpers import make_batch, make_tokenizer, tiny_model

        tokenizer = make_tokenizer()
        model = tiny_model(tokenizer, {"loss_weights.tp": 1.0})
        batch = make_batch(tokenizer, kinds[rank], image_size=32, seed=rank)
        out = model(batch, step=1000)
        out.loss.backward()
        terms = {k: float(getattr(out, k)) for k in ("clip", "tp") if getattr(out, k) is not None}
        queue.put((rank, "ok", terms))
    except Exception as error:  # reported to the parent, which fails the test
        queue.put((rank, "error", repr(error)))
    finally:
        dist.destroy_process_group()


def _timeout():
    import datetime

    return datetime.timedelta(seconds=60)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMPOSITIONS))
def test_two_ranks_with_different_compositions_finish_every_term(name: str) -> None:
    kinds = COMPOSITIONS[name]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, kinds, queue)) for r in (0, 1)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    hung = [p for p in procs if p.is_alive()]
    for proc in hung:
        proc.kill()
    assert not hung, f"{name}: a rank hung (a collective ran on one rank only)"
    results = dict((r, (status, detail)) for r, status, detail in [queue.get() for _ in procs])
    for rank, (status, detail) in results.items():
        assert status == "ok", f"rank {rank}: {detail}"
    # the global terms are the same number on both ranks
    for term in ("clip", "tp"):
        values = [results[r][1].get(term) for r in (0, 1)]
        if None not in values:
            assert values[0] == pytest.approx(values[1], rel=1e-5), term
