"""cross_modal_attention_score: non-finite weights rejected alike on every path, huge or tiny
finite weights normalised (rows still sum to 1) in the reference and the compiled kernel."""

from __future__ import annotations

import math

import pytest
import torch

from mmclip import ops
from mmclip.ops import reference

from .helpers import compiled, requires_ops

# Both backends: the reference, and the compiled kernels when they are built.
BACKENDS = [
    pytest.param(True, id="reference"),
    pytest.param(
        False,
        id="compiled",
        marks=pytest.mark.skipif(not ops.has_ops(), reason="compiled mmclip._C not built"),
    ),
]


def make_qk(device, batch=2, tokens=4, patches=7, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, tokens, dim, generator=g)
    k = torch.randn(batch, patches, dim, generator=g)
    return q.to(device), k.to(device)


def expected_scores(q, k, w, scale):
    """float64 oracle of the normalised formula: the weights scaled to a row maximum of 1."""
    w = w.double()
    w = w / w.amax(1, keepdim=True)
    attention = (torch.einsum("btd,bpd->btp", q.double(), k.double()) * scale).softmax(-1)
    return torch.einsum("bt,btp->bp", w, attention) / w.sum(1, keepdim=True)


@pytest.mark.parametrize("use_reference", BACKENDS)
@pytest.mark.parametrize(
    ("bad", "shown"), [(float("nan"), "nan"), (float("inf"), "inf"), (-0.5, "-0.5")]
)
def test_bad_weight_is_the_same_value_error_on_every_path(use_reference, bad, shown, device):
    """Before: NaN gave a silent 1/P row on the reference and a RuntimeError compiled."""
    q, k = make_qk(device)
    w = torch.rand(2, 4, device=device)
    w[1, 2] = bad
    message = rf"weight must be >= 0 and finite \(0 ignores a token\); found {shown} at \[1, 2\]"
    with ops.use_reference(use_reference), pytest.raises(ValueError, match=message):
        ops.cross_modal_attention_score(q, k, w)


@pytest.mark.parametrize("use_reference", BACKENDS)
@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (3.0e38, torch.float32),  # the float32 sum of such weights overflows
        (torch.finfo(torch.float32).max, torch.float32),
        (1.0e300, torch.float64),  # beyond float32 altogether
        (6.0e4, torch.float16),
        (1.0e-45, torch.float32),  # subnormal: tiny, but positive
    ],
)
def test_extreme_finite_weights_still_sum_to_one(use_reference, value, dtype, device):
    """Before: huge finite weights gave a zero (or NaN) row instead of one summing to 1."""
    q, k = make_qk(device)
    w = torch.tensor([[1.0, 0.5, 0.0, 0.25], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    scaled = (w * value).to(dtype).to(device)
    with ops.use_reference(use_reference):
        out = ops.cross_modal_attention_score(q, k, scaled, scale=0.5)
    assert out.dtype == torch.float32 and bool(out.isfinite().all())
    torch.testing.assert_close(out.sum(1).cpu(), torch.ones(2), atol=1e-5, rtol=0)
    expected = expected_scores(q.cpu(), k.cpu(), scaled.cpu(), 0.5).float()
    torch.testing.assert_close(out.cpu(), expected, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("use_reference", BACKENDS)
def test_scaling_all_weights_does_not_change_the_result(use_reference):
    q, k = make_qk("cpu", tokens=6, patches=11)
    w = torch.rand(2, 6)
    with ops.use_reference(use_reference):
        base = ops.cross_modal_attention_score(q, k, w)
        for factor in (1e-30, 1e30, 1e38):
            torch.testing.assert_close(
                ops.cross_modal_attention_score(q, k, w * factor), base, atol=1e-6, rtol=1e-5
            )


def test_normalized_weights_have_row_maximum_one():
    w = torch.tensor([[0.0, 0.0], [3e38, 1.5e38], [2.0, 0.0]])
    out = reference.normalized_weights(w)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0], [1.0, 0.5], [1.0, 0.0]]))
    big = torch.tensor([[1e300, 5e299]], dtype=torch.float64)
    torch.testing.assert_close(reference.normalized_weights(big), torch.tensor([[1.0, 0.5]]))
    assert reference.normalized_weights(torch.zeros(3, 0)).shape == (3, 0)


@requires_ops
def test_compiled_op_rejects_non_finite_weights_itself():
    q, k = make_qk("cpu")
    for bad in (float("nan"), float("inf")):
        w = torch.ones(2, 4)
        w[0, 3] = bad
        with pytest.raises(RuntimeError, match=r"weight must be >= 0 and finite.*at \[0, 3\]"):
            compiled().cross_modal_attention_score(q, k, w, 1.0)


@requires_ops
def test_compiled_op_normalises_huge_weights_itself():
    q, k = make_qk("cpu")
    w = torch.full((2, 4), 3e38)
    out = compiled().cross_modal_attention_score(q, k, w, 1 / math.sqrt(8))
    torch.testing.assert_close(out.sum(1), torch.ones(2), atol=1e-5, rtol=0)
