from __future__ import annotations

import io
import logging
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmclip.batch import MMCLIPBatch, SampleKind, row_groups
from mmclip.data import (
    DataError,
    LoaderConfig,
    MixingLoader,
    PilImagePipeline,
    TransformConfig,
    XrayLoader,
    XrayRecord,
    allocate,
    dali_available,
    sample_params,
)
from mmclip.data.collate import disease_kind_id

BACKENDS = ["pil", pytest.param("dali", marks=pytest.mark.skipif(
    not dali_available(), reason="nvidia.dali not installed"))]  # fmt: skip


def _cfg(**kw: object) -> LoaderConfig:
    transform = TransformConfig(image_size=32, train=bool(kw.pop("train", True)))
    return LoaderConfig(batch_size=8, transform=transform, **kw)  # type: ignore[arg-type]


def _equal(a: MMCLIPBatch, b: MMCLIPBatch) -> bool:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            if x != y:
                return False
        elif not torch.equal(x, y):
            return False
    return True


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_contract(synth_records: list[XrayRecord], tokenizer, backend: str) -> None:
    loader = XrayLoader(synth_records, _cfg(backend=backend), tokenizer=tokenizer)
    batches = list(loader)
    assert len(batches) == len(loader) == 40 // 8
    b = batches[0]
    assert b.images is not None and b.images.shape == (8, 1, 32, 32)
    assert b.images.dtype == torch.float32 and torch.isfinite(b.images).all()
    assert (b.kind == SampleKind.PAIRED).all()
    assert b.counts == (8, 0, 0, 0)
    assert b.input_ids.shape[0] == 8 and b.span_offsets.shape == (9,)
    assert b.spans.shape[1] == 2 and int(b.span_offsets[-1]) == b.spans.shape[0]
    # Spans are inside the real tokens and avoid special tokens.
    for row in range(8):
        lo, hi = b.span_offsets[row : row + 2].tolist()
        for start, end in b.spans[lo:hi].tolist():
            assert (
                b.attention_mask[row, start:end].all()
                and not b.special_tokens_mask[row, start:end].any()
            )
    assert (b.prompt_label >= 0).all()


def test_pil_and_dali_agree(synth_records: list[XrayRecord]) -> None:
    if not dali_available():
        pytest.skip("nvidia.dali not installed")
    from mmclip.data import DaliImagePipeline

    data = [r.image_path.read_bytes() for r in synth_records[:4]]  # type: ignore[union-attr]
    for train in (True, False):
        config = TransformConfig(image_size=48, train=train)
        params = sample_params(config, 4, np.random.default_rng(0))
        a = PilImagePipeline(config)(data, params)
        b = DaliImagePipeline(config, 4)(data, params)
        assert a.shape == b.shape == (4, 1, 48, 48)
        assert (a - b).abs().mean() < 0.05 * config.std * 4


def test_eval_is_deterministic(synth_records: list[XrayRecord], tokenizer) -> None:
    a = XrayLoader(synth_records, _cfg(train=False, backend="pil"), tokenizer=tokenizer)
    b = XrayLoader(synth_records, _cfg(train=False, backend="pil", seed=9), tokenizer=tokenizer)
    first_a, first_b = next(iter(a)), next(iter(b))
    assert torch.equal(first_a.images, first_b.images)  # no augmentation, no shuffle
    assert len(a) == 5


def test_sharding_covers_everything_once(synth_records: list[XrayRecord], tokenizer) -> None:
    records = synth_records[:37]
    seen: list[str] = []
    for shard in range(3):
        cfg = _cfg(backend="pil", num_shards=3, shard_id=shard, drop_last=False)
        loader = XrayLoader(records, cfg, tokenizer=tokenizer)
        assert len(loader) == 2  # ceil(ceil(37 / 3) / 8)
        idx = loader.order.epoch(0)
        seen += [records[i].patient_id or "" for i in idx]
    assert len(seen) == 39 and set(seen) == {r.patient_id for r in records}


def test_resume_is_exact(synth_records: list[XrayRecord], tokenizer) -> None:
    cfg = _cfg(backend="pil", seed=5)
    full = XrayLoader(synth_records, cfg, tokenizer=tokenizer)
    reference = list(full) + list(full)  # two epochs
    run = XrayLoader(synth_records, cfg, tokenizer=tokenizer)
    it = iter(run)
    got = [next(it), next(it)]
    state = run.state_dict()
    assert state["epoch"] == 0 and state["step"] == 2
    resumed = XrayLoader(synth_records, cfg, tokenizer=tokenizer)
    resumed.load_state_dict(state)
    got += list(resumed) + list(resumed)
    assert len(got) == len(reference)
    assert all(_equal(x, y) for x, y in zip(got, reference, strict=True))
    # Epochs differ (reshuffled), prefetching changes nothing.
    assert not _equal(reference[0], reference[5])
    pre = XrayLoader(synth_records, _cfg(backend="pil", seed=5, prefetch=2), tokenizer=tokenizer)
    assert all(_equal(x, y) for x, y in zip(list(pre), reference[:5], strict=True))


def _corrupt_records(tmp_path: Path, good: list[XrayRecord]) -> list[XrayRecord]:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    trunc = tmp_path / "trunc.png"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(buf, format="PNG")
    trunc.write_bytes(buf.getvalue()[:30])
    return [
        good[0],
        XrayRecord(bad, "report", {"Edema": 1}, source="t"),
        good[1],
        XrayRecord(tmp_path / "missing.jpg", "report", source="t"),
        XrayRecord(trunc, None, {"Edema": 0}, source="t"),
        good[2],
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_images_raise_or_are_counted(
    tmp_path: Path,
    synth_records: list[XrayRecord],
    tokenizer,
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = _corrupt_records(tmp_path, synth_records)
    cfg = _cfg(backend=backend, shuffle=False, drop_last=False)
    with pytest.raises(DataError, match=r"missing\.jpg: No such file"):
        list(XrayLoader(records, cfg, tokenizer=tokenizer))
    for bad in (records[1], records[4]):
        with pytest.raises(DataError, match=rf"{bad.image_path.name}: cannot decode"):
            list(XrayLoader([synth_records[0], bad], cfg, tokenizer=tokenizer))
    cfg = _cfg(backend=backend, shuffle=False, drop_last=False, on_error="skip")
    loader = XrayLoader(records, cfg, tokenizer=tokenizer)
    with caplog.at_level(logging.WARNING):
        it = iter(loader)
        batch = next(it)
        assert loader.skips.total == 3
        assert loader.state_dict()["skipped"]["counts"] == {
            "undecodable image": 2,
            "missing image file": 1,
        }
        list(it)
    assert batch.batch_size == 3 and batch.images.shape[0] == 3
    assert "skipped 3 bad samples" in caplog.text and "missing.jpg" in caplog.text


def test_sample_kinds_and_prompts(synth_records: list[XrayRecord], tokenizer) -> None:
    image = synth_records[0].image_path
    records = [
        XrayRecord(None, "FINDINGS: Small left pleural effusion. No pneumothorax.", source="t"),
        XrayRecord(image, None, {"Cardiomegaly": 1}, source="t"),
        XrayRecord(image, None, source="t"),
        synth_records[1],
        XrayRecord(None, "FINDINGS: The heart is enlarged.", {"Cardiomegaly": 1}, source="t"),
    ]
    cfg = _cfg(backend="pil", shuffle=False, drop_last=False)
    batch = next(iter(XrayLoader(records, cfg, tokenizer=tokenizer)))
    # sorted by kind (stable): synth pair, image + prompt, image only, the two text-only reports
    assert batch.kind.tolist() == [0, 1, 2, 3, 3] and batch.counts == (1, 1, 1, 2)
    assert batch.images.shape[0] == 3 and batch.input_ids.shape[0] == 4
    assert batch.prompt_input_ids.shape[0] == 2
    labels = batch.prompt_label.tolist()
    assert labels[2] == -1 and labels[1] == labels[4] == disease_kind_id({"Cardiomegaly": 1})
    assert labels[3] == disease_kind_id({"Pleural Effusion": 1})
    groups = row_groups(batch)
    assert groups.num_pairs == 2 and groups.image_only.shape[0] == 1
    assert groups.text_only.rows == 2 and groups.prompts.rows == 2
    report = tokenizer.decode(groups.text_only.input_ids[0], skip_special_tokens=True)
    assert "effusion" in report
    prompt = tokenizer.decode(batch.input_ids[1], skip_special_tokens=True)
    assert "cardiomegaly" in prompt or "heart" in prompt or "cardiac" in prompt


def test_allocate() -> None:
    assert allocate({"a": 0.5, "b": 0.3, "c": 0.2}, 64) == {"a": 32, "b": 19, "c": 13}
    assert sum(allocate({"a": 1, "b": 1, "c": 1}, 10).values()) == 10
    with pytest.raises(ValueError):
        allocate({"a": -1.0}, 4)


def test_mixing_loader(synth_records: list[XrayRecord], tokenizer) -> None:
    paired = synth_records[:20]
    images = [XrayRecord(r.image_path, None, r.labels, r.patient_id) for r in synth_records[20:]]
    texts = [XrayRecord(None, r.report, {}, r.patient_id) for r in synth_records[:10]]
    sources = {"paired": paired, "images": images, "reports": texts}
    ratios = {"paired": 0.5, "images": 0.3, "reports": 0.2}
    cfg = LoaderConfig(batch_size=10, transform=TransformConfig(image_size=32), backend="pil")
    loader = MixingLoader(sources, ratios, cfg, steps_per_epoch=4, tokenizer=tokenizer)
    reference = list(loader) + list(loader)
    assert len(reference) == 8
    for b in reference:
        assert b.kind.tolist() == [0] * 5 + [1] * 3 + [3] * 2
        assert b.images.shape[0] == 8 and b.prompt_input_ids.shape[0] == 2
    again = MixingLoader(sources, ratios, cfg, steps_per_epoch=4, tokenizer=tokenizer)
    it = iter(again)
    got = [next(it) for _ in range(3)]
    state = again.state_dict()
    resumed = MixingLoader(sources, ratios, cfg, steps_per_epoch=4, tokenizer=tokenizer)
    resumed.load_state_dict(state)
    got += list(resumed) + list(resumed)
    assert all(_equal(x, y) for x, y in zip(got, reference, strict=True))
    with pytest.raises(ValueError, match="unknown sources"):
        MixingLoader(sources, {"nope": 1.0}, cfg)


def test_a_fifo_or_an_oversized_file_is_refused_before_reading(
    tmp_path: Path, synth_records: list[XrayRecord], tokenizer, monkeypatch
) -> None:
    import dataclasses
    import os

    from mmclip.data import loader as loader_module

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # reading it would block for ever
    big = tmp_path / "big.jpg"
    with open(big, "wb") as handle:  # sparse: no memory or disk is used
        handle.seek(loader_module.MAX_IMAGE_BYTES)
        handle.write(b"\0")
    records = [
        synth_records[0],
        dataclasses.replace(synth_records[1], image_path=fifo),
        dataclasses.replace(synth_records[2], image_path=big),
    ]
    with pytest.raises(DataError, match=r"pipe\.jpg: not a regular file"):
        list(XrayLoader(records[:2], _cfg(shuffle=False, drop_last=False), tokenizer=tokenizer))
    with pytest.raises(DataError, match=r"big\.jpg: 512 MiB, over the 512 MiB limit"):
        list(XrayLoader(records[2:], _cfg(shuffle=False, drop_last=False), tokenizer=tokenizer))
    cfg = _cfg(shuffle=False, drop_last=False, on_error="skip")
    loader = XrayLoader(records, cfg, tokenizer=tokenizer)
    batch = next(iter(loader))
    assert batch.batch_size == 1
    assert loader.skips.counts == {"not a regular file": 1, "image file too large": 1}


def test_a_misspelt_error_policy_is_refused() -> None:
    from mmclip.data.sources import load_source

    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'; got 'rasie'"):
        load_source("iu-xray", "/nonexistent", on_error="rasie")
