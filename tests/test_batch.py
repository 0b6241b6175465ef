"""The batch contract: samples sorted by kind, rows checked once, groups sliced in order."""

from __future__ import annotations

import pytest
import torch

from mmclip.batch import MMCLIPBatch, SampleKind, row_groups
from mmclip.data.collate import build_batch
from mmclip.data.records import XrayRecord

K = SampleKind


def _batch(kinds: list[int], image_rows: int, text_rows: int, prompts: int = 0) -> MMCLIPBatch:
    g = torch.Generator().manual_seed(0)
    spans_per_row = [r % 3 for r in range(text_rows)]
    offsets = torch.tensor([0, *torch.tensor(spans_per_row).cumsum(0).tolist()], dtype=torch.int64)
    spans = torch.randint(1, 7, (int(offsets[-1]), 2), generator=g)
    return MMCLIPBatch(
        kind=torch.tensor(kinds),
        images=torch.randn(image_rows, 1, 8, 8, generator=g),
        input_ids=torch.randint(5, 50, (text_rows, 8), generator=g),
        attention_mask=torch.ones(text_rows, 8, dtype=torch.int64),
        span_offsets=offsets,
        spans=spans,
        prompt_label=torch.arange(len(kinds)),
        prompt_input_ids=torch.randint(5, 50, (prompts, 8), generator=g) if prompts else None,
        prompt_attention_mask=torch.ones(prompts, 8, dtype=torch.int64) if prompts else None,
    )


def test_groups_are_contiguous_rows_with_their_spans() -> None:
    batch = _batch([0, 0, 1, 2, 2, 3, 3, 3], image_rows=5, text_rows=6, prompts=3)
    assert batch.counts == (2, 1, 2, 3)
    groups = row_groups(batch)
    assert groups.num_pairs == 3
    assert torch.equal(groups.pair_images, batch.images[:3])
    assert torch.equal(groups.image_only, batch.images[3:])
    assert torch.equal(groups.pair_texts.input_ids, batch.input_ids[:3])
    assert torch.equal(groups.text_only.input_ids, batch.input_ids[3:])
    assert torch.equal(groups.text_only_labels, torch.tensor([5, 6, 7]))
    assert groups.prompts.rows == 3
    for text, rows in ((groups.pair_texts, [0, 1, 2]), (groups.text_only, [3, 4, 5])):
        per_row = [batch.spans[batch.span_offsets[r] : batch.span_offsets[r + 1]] for r in rows]
        offsets = torch.tensor([0, *torch.tensor([len(s) for s in per_row]).cumsum(0).tolist()])
        assert torch.equal(text.span_offsets, offsets)
        assert torch.equal(text.spans, torch.cat(per_row))


def test_paired_only_keeps_the_image_report_pairs() -> None:
    batch = _batch([0, 0, 1, 2, 3], image_rows=4, text_rows=4, prompts=1)
    groups = row_groups(batch, use_unpaired=False)
    assert groups.num_pairs == 2 and groups.pair_texts.rows == 2
    assert groups.image_only is None and groups.text_only is None and groups.prompts is None


def test_an_unsorted_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="sorted by kind"):
        _batch([0, 3, 0], image_rows=2, text_rows=3)


@pytest.mark.parametrize(
    ("image_rows", "text_rows", "prompts", "match"),
    [
        (2, 3, 1, "batch.images has 2 rows"),
        (3, 2, 1, "batch.input_ids has 2 rows"),
        (3, 3, 2, "prompt_input_ids has 2 rows"),
    ],
)
def test_rows_that_do_not_match_the_counts_are_refused(
    image_rows, text_rows, prompts, match
) -> None:
    with pytest.raises(ValueError, match=match):
        _batch([0, 1, 2, 3], image_rows=image_rows, text_rows=text_rows, prompts=prompts)


def test_moving_a_batch_keeps_its_counts() -> None:
    batch = _batch([0, 2, 3], image_rows=2, text_rows=2, prompts=1)
    assert batch.to("cpu").counts == batch.counts == (1, 0, 1, 1)


def test_build_batch_sorts_the_samples_and_their_images() -> None:
    records = [
        XrayRecord(None, "FINDINGS: Small left effusion.", source="t"),
        XrayRecord("b.png", None, source="t"),
        XrayRecord("a.png", "FINDINGS: Clear lungs.", source="t"),
    ]
    kinds = [r.kind for r in records]
    assert kinds == [K.TEXT_ONLY, K.IMAGE_ONLY, K.PAIRED]
    images = torch.stack([torch.full((1, 4, 4), 1.0), torch.full((1, 4, 4), 2.0)])  # b, a

    def tokenize(texts):
        from mmclip.data.collate import TokenizedText

        n = len(texts)
        ids = torch.tensor([[1, 10 + len(t), 2] for t in texts])
        return TokenizedText(
            ids,
            torch.ones_like(ids),
            torch.zeros_like(ids),
            torch.zeros(n + 1, dtype=torch.int64),
            torch.zeros(0, 2, dtype=torch.int64),
        )

    class Prompter:
        def labels(self, record):
            return {}

        def prompt(self, record, seed):
            return "no acute findings"

    batch = build_batch(records, images, tokenize, Prompter(), seed=0)
    assert batch.kind.tolist() == [K.PAIRED, K.IMAGE_ONLY, K.TEXT_ONLY]
    assert batch.images[:, 0, 0, 0].tolist() == [2.0, 1.0]  # a (the pair), then b
    assert batch.input_ids[:, 1].tolist() == [
        10 + len("FINDINGS: Clear lungs."),
        10 + len("FINDINGS: Small left effusion."),
    ]
