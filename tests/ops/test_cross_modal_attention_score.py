"""cross_modal_attention_score: oracle comparison, invariants, opcheck, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mmclip import ops
from mmclip.ops import reference

from .helpers import FLOAT_DTYPES, SCORE_ATOL, compiled, requires_ops


def make_inputs(batch, tokens, patches, dim, dtype, device, seed=0, zero_rows=()):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, tokens, dim, generator=g).to(dtype).to(device)
    k = torch.randn(batch, patches, dim, generator=g).to(dtype).to(device)
    w = torch.rand(batch, tokens, generator=g)
    w[w < 0.2] = 0.0  # padding-like zero weights
    for row in zero_rows:
        w[row] = 0.0
    return q, k, w.to(device)


def oracle(q, k, w, scale):
    """float64 composition from the (already rounded) inputs."""
    logits = torch.einsum("btd,bpd->btp", q.double(), k.double()) * scale
    attention = logits.softmax(-1)
    w = w.double()
    total = w.sum(1, keepdim=True)
    scores = torch.einsum("bt,btp->bp", w, attention) / total.clamp_min(1e-300)
    return torch.where(total > 0, scores, torch.full_like(scores, 1.0 / k.shape[1]))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_matches_oracle_within_twice_reference_error(dtype, device):
    q, k, w = make_inputs(4, 9, 37, 24, dtype, device, zero_rows=(2,))
    scale = 1 / math.sqrt(24)
    expected = oracle(q.cpu(), k.cpu(), w.cpu(), scale)
    ref_err = (
        (reference.cross_modal_attention_score(q, k, w, scale).cpu().double() - expected)
        .abs()
        .max()
    )
    out = ops.cross_modal_attention_score(q, k, w)
    assert out.dtype == torch.float32 and out.shape == (4, 37)
    err = (out.cpu().double() - expected).abs().max()
    assert err <= 2 * ref_err + SCORE_ATOL[dtype], (float(err), float(ref_err))


@given(
    batch=st.integers(0, 4),
    tokens=st.integers(1, 12),
    patches=st.integers(1, 70),
    dim=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_rows_sum_to_one_and_zero_weight_rows_are_uniform(batch, tokens, patches, dim, seed):
    q, k, w = make_inputs(batch, tokens, patches, dim, torch.float32, "cpu", seed)
    if batch:
        w[0] = 0.0
    out = ops.cross_modal_attention_score(q, k, w)
    assert out.shape == (batch, patches)
    if batch:
        torch.testing.assert_close(out.sum(1), torch.ones(batch), atol=1e-5, rtol=0)
        torch.testing.assert_close(out[0], torch.full((patches,), 1.0 / patches))
        assert bool((out >= 0).all())
    expected = oracle(q, k, w, 1 / math.sqrt(dim)).float()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_scale_and_entity_weighting_change_the_result():
    q, k, w = make_inputs(2, 6, 20, 16, torch.float32, "cpu")
    base = ops.cross_modal_attention_score(q, k, w, scale=0.25)
    sharper = ops.cross_modal_attention_score(q, k, w, scale=4.0)
    assert not torch.allclose(base, sharper)
    # Sharper logits concentrate attention: the maximum score grows.
    assert bool((sharper.max(1).values > base.max(1).values).all())
    single = torch.zeros_like(w)
    single[:, 3] = 1.0
    out = ops.cross_modal_attention_score(q, k, single, scale=0.5)
    expected = torch.softmax(torch.einsum("bd,bpd->bp", q[:, 3], k) * 0.5, -1)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_output_does_not_require_grad():
    q, k, w = make_inputs(2, 3, 5, 4, torch.float32, "cpu")
    q.requires_grad_(True)
    assert not ops.cross_modal_attention_score(q, k, w).requires_grad


def test_empty_inputs():
    out = ops.cross_modal_attention_score(
        torch.zeros(0, 3, 4), torch.zeros(0, 5, 4), torch.zeros(0, 3)
    )
    assert out.shape == (0, 5)
    out = ops.cross_modal_attention_score(
        torch.zeros(2, 3, 4), torch.zeros(2, 0, 4), torch.ones(2, 3)
    )
    assert out.shape == (2, 0)


@requires_ops
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_opcheck(dtype):
    q, k, w = make_inputs(3, 5, 11, 8, dtype, "cpu", zero_rows=(1,))
    torch.library.opcheck(compiled().cross_modal_attention_score.default, (q, k, w, 0.3))


@pytest.mark.parametrize(
    ("q", "k", "w", "message"),
    [
        (torch.zeros(2, 3), torch.zeros(2, 5, 4), torch.zeros(2, 3), "q must have 3 dimensions"),
        (torch.zeros(2, 3, 4), torch.zeros(2, 5, 6), torch.zeros(2, 3), "k must have shape"),
        (torch.zeros(2, 3, 4), torch.zeros(3, 5, 4), torch.zeros(2, 3), "k must have shape"),
        (torch.zeros(2, 3, 4), torch.zeros(2, 5, 4), torch.zeros(2, 4), "weight must have shape"),
        (
            torch.zeros(2, 3, 4),
            torch.zeros(2, 5, 4).double(),
            torch.zeros(2, 3),
            "k must have dtype",
        ),
        (
            torch.zeros(2, 3, 4, dtype=torch.long),
            torch.zeros(2, 5, 4),
            torch.zeros(2, 3),
            "q must have dtype",
        ),
        (torch.zeros(2, 3, 4), torch.zeros(2, 5, 4), -torch.ones(2, 3), "weight must be >= 0"),
        (torch.zeros(2, 3, 4), torch.zeros(2, 5, 4), "w", "weight must be a torch.Tensor"),
    ],
)
def test_bad_input_names_the_argument(q, k, w, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ops.cross_modal_attention_score(q, k, w)


def test_bad_scale():
    q, k, w = make_inputs(1, 2, 3, 4, torch.float32, "cpu")
    with pytest.raises(ValueError, match="scale must be finite"):
        ops.cross_modal_attention_score(q, k, w, scale=float("nan"))


@requires_ops
def test_compiled_op_checks_arguments_itself():
    with pytest.raises(RuntimeError, match=r"weight.shape\[1\] must be 3"):
        compiled().cross_modal_attention_score(
            torch.zeros(2, 3, 4), torch.zeros(2, 5, 4), torch.zeros(2, 2), 1.0
        )
    with pytest.raises(RuntimeError, match="weight must be >= 0"):
        compiled().cross_modal_attention_score(
            torch.zeros(1, 2, 4), torch.zeros(1, 5, 4), -torch.ones(1, 2), 1.0
        )


def test_nan_poisoned_padding_is_not_read():
    """Zero-weight tokens must not influence the result, even when they hold NaN."""
    q, k, w = make_inputs(3, 8, 15, 8, torch.float32, "cpu")
    w[:, 5:] = 0.0
    clean = ops.cross_modal_attention_score(q, k, w)
    poisoned = q.clone()
    poisoned[:, 5:] = float("nan")
    with ops.use_reference(False):
        out = ops.cross_modal_attention_score(poisoned, k, w)
    if ops.has_ops():
        torch.testing.assert_close(out, clean)
    else:  # the reference reads every token: NaN padding propagates there by design
        assert bool(out.isnan().any())


@pytest.mark.parametrize("use_reference", [False, True])
def test_an_enclosing_autocast_region_changes_nothing(device, use_reference):
    """bf16 autocast (as a training step under ``precision: bf16``) must not re-cast the
    op's float32 sums: before, the C++ CPU kernel failed there (addmv of bf16 and float)."""
    if not use_reference and not ops.has_ops():
        pytest.skip("compiled mmclip._C not built")
    q, k, w = make_inputs(3, 6, 11, 16, torch.bfloat16, device, zero_rows=(1,))
    with ops.use_reference(use_reference):
        plain = ops.cross_modal_attention_score(q, k, w, 3.0)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            autocast = ops.cross_modal_attention_score(q, k, w, 3.0)
    assert autocast.dtype == torch.float32
    torch.testing.assert_close(autocast, plain, rtol=0, atol=SCORE_ATOL[torch.bfloat16])
