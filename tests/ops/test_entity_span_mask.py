"""entity_span_mask: exactness vs the reference, invariants, 80/10/10, bad input."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from mmclip import ops
from mmclip.ops import reference

from .helpers import compiled, requires_ops

MASK_ID, VOCAB = 3, 500
DEFAULTS = {"entity_prob": 0.6, "target_ratio": 0.3, "min_ratio": 0.15, "max_ratio": 0.5}


@dataclass
class TextBatch:
    ids: torch.Tensor
    attended: torch.Tensor
    special: torch.Tensor
    offsets: torch.Tensor
    spans: torch.Tensor

    def args(self):
        return (self.ids, self.attended, self.special, self.offsets, self.spans)

    def to(self, device):
        return TextBatch(*(t.to(device) for t in self.args()))


def make_batch(batch, length, spans_per_sample, seed=0) -> TextBatch:
    """[CLS] tokens [SEP] [PAD]…, with random non-overlapping or overlapping spans."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, VOCAB, (batch, length), generator=g)
    attended = torch.zeros(batch, length, dtype=torch.bool)
    special = torch.zeros(batch, length, dtype=torch.bool)
    offsets, spans = [0], []
    for b in range(batch):
        real = int(torch.randint(0, length + 1, (1,), generator=g)) if length else 0
        attended[b, :real] = True
        if real:
            special[b, 0] = True
            special[b, real - 1] = True
        for _ in range(spans_per_sample if length else 0):
            start = int(torch.randint(0, length, (1,), generator=g))
            end = min(length, start + int(torch.randint(1, 5, (1,), generator=g)))
            spans.append((start, end))
        offsets.append(len(spans))
    span_tensor = torch.tensor(spans, dtype=torch.long).reshape(-1, 2)
    return TextBatch(ids, attended, special, torch.tensor(offsets), span_tensor)


def draw_noise(text: TextBatch, seed: int):
    g = torch.Generator().manual_seed(seed)
    batch, length = text.ids.shape
    return (
        torch.rand(text.spans.shape[0], generator=g),
        torch.rand(batch, length, generator=g),
        torch.rand(batch, length, generator=g),
        torch.randint(VOCAB, (batch, length), generator=g),
    )


def run(text: TextBatch, seed=0, device="cpu", **settings):
    settings = DEFAULTS | settings
    return ops.entity_span_mask(
        *text.to(device).args(),
        **settings,
        mask_token_id=MASK_ID,
        vocab_size=VOCAB,
        generator=torch.Generator(device).manual_seed(seed),
    )


@given(
    batch=st.integers(0, 5),
    length=st.integers(0, 40),
    spans_per_sample=st.integers(0, 6),
    entity_prob=st.floats(0, 1),
    target=st.floats(0, 1),
    bounds=st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted),
    seed=st.integers(0, 2**16),
)
def test_compiled_equals_reference_and_invariants(
    batch, length, spans_per_sample, entity_prob, target, bounds, seed
):
    text = make_batch(batch, length, spans_per_sample, seed)
    noise = draw_noise(text, seed)
    settings = (entity_prob, target, bounds[0], bounds[1])
    masked, labels = reference.entity_span_mask(*text.args(), *noise, *settings, MASK_ID)
    check_invariants(text, noise, masked, labels, *settings)
    if ops.has_ops():
        got = compiled().entity_span_mask(*text.args(), *noise, *settings, MASK_ID)
        assert torch.equal(got[0], masked) and torch.equal(got[1], labels)


def check_invariants(text, noise, masked, labels, entity_prob, target, low, high):
    span_noise, _, action, random_ids = noise
    chosen = labels != -100
    maskable = text.attended & ~text.special
    # Special and padding tokens are never chosen; labels hold the original ids.
    assert not bool((chosen & ~maskable).any())
    assert torch.equal(labels[chosen], text.ids[chosen])
    assert torch.equal(masked[~chosen], text.ids[~chosen])
    # 80/10/10 decisions follow the action noise exactly.
    assert bool((masked[chosen & (action < 0.8)] == MASK_ID).all())
    middle = chosen & (action >= 0.8) & (action < 0.9)
    assert torch.equal(masked[middle], random_ids[middle])
    assert torch.equal(masked[chosen & (action >= 0.9)], text.ids[chosen & (action >= 0.9)])
    # Counts respect the budget and the ratio bounds.
    n = maskable.sum(1)
    n_target, n_max = reference.entity_span_counts(n, target, low, high)
    counts = chosen.sum(1)
    assert bool(((counts >= n_target) & (counts <= n_max)).all())
    has = n > 0
    floor_min = torch.ceil(low * n - 1e-9).clamp_min(1).minimum(n_max)
    assert bool((counts[has] >= floor_min[has]).all())
    assert bool((counts[has] >= 1).all()) and bool((counts[~has] == 0).all())
    assert bool((n_max[has] <= torch.floor(high * n[has] + 1e-9).clamp_min(1)).all())
    # A span chosen by its noise is masked whole unless it would break n_max.
    for b in range(text.ids.shape[0]):
        for s in range(int(text.offsets[b]), int(text.offsets[b + 1])):
            start, end = text.spans[s].tolist()
            inside = maskable[b, start:end]
            whole = bool(chosen[b, start:end][inside].all())
            if span_noise[s] < entity_prob and not whole:
                # Only allowed when taking it would have exceeded the maximum.
                assert int(counts[b]) + int((inside & ~chosen[b, start:end]).sum()) > int(n_max[b])


def test_spans_are_masked_whole_with_probability_one():
    text = make_batch(8, 32, 2, seed=3)
    text.spans = text.spans.clamp(max=31)
    _, labels = run(text, entity_prob=1.0, target_ratio=0.5, max_ratio=1.0)
    chosen = labels != -100
    maskable = text.attended & ~text.special
    for b in range(8):
        for s in range(int(text.offsets[b]), int(text.offsets[b + 1])):
            start, end = text.spans[s].tolist()
            assert bool(chosen[b, start:end][maskable[b, start:end]].all())


def test_entity_prob_zero_is_random_masking_at_the_target_ratio():
    text = make_batch(64, 50, 4, seed=1)
    _, labels = run(text, entity_prob=0.0, target_ratio=0.3)
    n = (text.attended & ~text.special).sum(1)
    n_target, _ = reference.entity_span_counts(n, 0.3, 0.15, 0.5)
    assert torch.equal((labels != -100).sum(1), n_target)


def test_replacement_proportions_are_80_10_10():
    text = make_batch(256, 128, 8, seed=2)
    masked, labels = run(text, seed=4)
    chosen = labels != -100
    is_mask = (masked == MASK_ID) & chosen & (text.ids != MASK_ID)
    unchanged = (masked == text.ids) & chosen
    random = chosen & ~is_mask & ~unchanged
    observed = [int(is_mask.sum()), int(random.sum()), int(unchanged.sum())]
    total = sum(observed)
    # A random id can equal the original (probability 1/VOCAB): fold that into the test.
    p_same = 1.0 / VOCAB
    expected = [0.8 * total, 0.1 * (1 - p_same) * total, (0.1 + 0.1 * p_same) * total]
    assert stats.chisquare(observed, expected).pvalue > 1e-4, observed


def test_same_generator_state_same_result(device):
    text = make_batch(6, 30, 3, seed=5)
    a = run(text, seed=11, device=device)
    b = run(text, seed=11, device=device)
    c = run(text, seed=12, device=device)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_integer_masks_are_accepted_and_empty_batches_work():
    text = make_batch(3, 12, 2, seed=6)
    as_bool = run(text, seed=1)
    int_text = TextBatch(
        text.ids, text.attended.long(), text.special.int(), text.offsets, text.spans
    )
    as_int = run(int_text, seed=1)
    assert torch.equal(as_bool[0], as_int[0])
    empty = TextBatch(
        torch.zeros(0, 7, dtype=torch.long),
        torch.zeros(0, 7, dtype=torch.bool),
        torch.zeros(0, 7, dtype=torch.bool),
        torch.zeros(1, dtype=torch.long),
        torch.zeros(0, 2, dtype=torch.long),
    )
    masked, labels = run(empty)
    assert masked.shape == labels.shape == (0, 7)


@requires_ops
def test_opcheck():
    text = make_batch(4, 20, 3, seed=7)
    noise = draw_noise(text, 0)
    torch.library.opcheck(
        compiled().entity_span_mask.default, (*text.args(), *noise, 0.6, 0.3, 0.15, 0.5, MASK_ID)
    )


def _bad(**changes):
    text = make_batch(2, 10, 2, seed=8)
    args = {
        "input_ids": text.ids,
        "attention_mask": text.attended,
        "special_tokens_mask": text.special,
        "span_offsets": text.offsets,
        "spans": text.spans,
        **DEFAULTS,
        "mask_token_id": MASK_ID,
        "vocab_size": VOCAB,
    }
    return args | changes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (_bad(input_ids=torch.zeros(2, 10, dtype=torch.int32)), "input_ids must have dtype int64"),
        (_bad(input_ids=torch.zeros(20, dtype=torch.long)), "input_ids must have 2 dimensions"),
        (_bad(attention_mask=torch.ones(2, 9, dtype=torch.bool)), "attention_mask must have shape"),
        (
            _bad(special_tokens_mask=torch.zeros(2, 10)),
            "special_tokens_mask must be bool or integer",
        ),
        (_bad(span_offsets=torch.tensor([0, 1])), "span_offsets must have shape \\(3,\\)"),
        (
            _bad(span_offsets=torch.tensor([0, 3, 1]), spans=torch.tensor([[0, 1]])),
            "span_offsets must",
        ),
        (
            _bad(span_offsets=torch.tensor([0, 1, 1]), spans=torch.tensor([[4, 12]])),
            "spans\\[0\\] = \\(4, 12\\) lies outside",
        ),
        (
            _bad(span_offsets=torch.tensor([0, 1, 1]), spans=torch.tensor([[-1, 2]])),
            "spans\\[0\\] = \\(-1, 2\\) lies outside",
        ),
        (
            _bad(span_offsets=torch.tensor([0, 1, 1]), spans=torch.tensor([[5, 3]])),
            "ends before it starts",
        ),
        (_bad(spans=torch.zeros(4, 3, dtype=torch.long)), "spans must have shape \\(S, 2\\)"),
        (_bad(entity_prob=1.5), "entity_prob must lie in \\[0, 1\\]"),
        (_bad(target_ratio=-0.1), "target_ratio must lie in \\[0, 1\\]"),
        (_bad(min_ratio=0.6, max_ratio=0.5), "min_ratio \\(0.6\\) must not exceed max_ratio"),
        (_bad(mask_token_id=VOCAB), "mask_token_id must lie in"),
        (_bad(vocab_size=0), "vocab_size must be >= 1"),
    ],
)
def test_bad_input_names_the_argument(args, message):
    with pytest.raises(ValueError, match=message):
        ops.entity_span_mask(**args)


@requires_ops
def test_compiled_op_checks_spans_itself():
    text = make_batch(2, 10, 1, seed=9)
    noise = draw_noise(text, 0)
    bad_spans = text.spans.clone()
    bad_spans[1] = torch.tensor([8, 11])
    with pytest.raises(RuntimeError, match="spans\\[1\\] = \\(8, 11\\) lies outside"):
        compiled().entity_span_mask(
            text.ids,
            text.attended,
            text.special,
            text.offsets,
            bad_spans,
            *noise,
            0.6,
            0.3,
            0.15,
            0.5,
            MASK_ID,
        )
    with pytest.raises(RuntimeError, match=r"min_ratio \(0\.6\) must not exceed max_ratio"):
        compiled().entity_span_mask(*text.args(), *noise, 0.6, 0.3, 0.6, 0.5, MASK_ID)
