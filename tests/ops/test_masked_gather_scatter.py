"""masked_gather / masked_scatter: equality, gradients, opcheck, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mmclip import ops
from mmclip.ops import reference

from .helpers import FLOAT_DTYPES, compiled, requires_ops


def random_keep(batch, patches, count, seed=0):
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(batch, patches, generator=g).argsort(1)
    return order[:, :count].sort(1).values


@given(
    batch=st.integers(0, 4),
    patches=st.integers(0, 70),
    dim=st.integers(0, 40),
    data=st.data(),
)
def test_gather_scatter_equal_reference(batch, patches, dim, data):
    count = data.draw(st.integers(0, patches))  # includes K = 0 and K = P
    seed = data.draw(st.integers(0, 2**16))
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES))
    x = torch.randn(batch, patches, dim).to(dtype)
    keep = random_keep(batch, patches, count, seed)
    token = torch.randn(dim).to(dtype)
    gathered = ops.masked_gather(x, keep)
    scattered = ops.masked_scatter(gathered, keep, token, patches)
    if ops.has_ops():  # without the extension ops.* is the reference itself
        assert torch.equal(gathered, reference.masked_gather(x, keep))
        assert torch.equal(scattered, reference.masked_scatter(gathered, keep, token, patches))
    # Round trip: kept rows come back, the rest hold the mask token.
    kept = torch.zeros(batch, patches, dtype=torch.bool)
    kept.scatter_(1, keep, True)
    assert torch.equal(scattered[kept], x[kept])
    assert torch.equal(scattered[~kept], token.expand(int((~kept).sum()), dim))


@requires_ops
@given(
    batch=st.integers(1, 3),
    patches=st.integers(1, 30),
    count=st.integers(0, 40),
    dim=st.integers(1, 9),
)
def test_backward_ops_equal_reference_with_repeats(batch, patches, count, dim):
    idx = torch.randint(patches, (batch, count))  # repeats allowed in a gather
    for dtype in FLOAT_DTYPES:
        grad = torch.randn(batch, count, dim).to(dtype)
        got = compiled().masked_gather_backward(grad, idx, patches)
        expected = reference.masked_gather_backward(grad, idx, patches)
        # Repeated indices are summed in the accumulation type: equal up to summation order.
        eps = torch.finfo(dtype).eps
        bound = eps * (count + 1) * float(grad.abs().max()) if count else 0.0
        torch.testing.assert_close(got.double(), expected.double(), atol=bound, rtol=eps)
    keep = random_keep(batch, patches, min(count, patches))
    for dtype in FLOAT_DTYPES:
        grad = torch.randn(batch, patches, dim).to(dtype)
        got_visible, got_token = compiled().masked_scatter_backward(grad, keep)
        exp_visible, exp_token = reference.masked_scatter_backward(grad, keep)
        assert torch.equal(got_visible, exp_visible)
        tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}.get(dtype, 1e-5)
        torch.testing.assert_close(got_token, exp_token, atol=tol * batch * patches, rtol=tol)


def test_gradcheck_float64(device):
    x = torch.randn(3, 7, 5, dtype=torch.float64, device=device, requires_grad=True)
    idx = torch.tensor([[0, 2, 2, 6], [5, 1, 0, 3], [6, 6, 6, 6]], device=device)
    assert torch.autograd.gradcheck(ops.masked_gather, (x, idx))
    assert torch.autograd.gradgradcheck(ops.masked_gather, (x, idx))
    visible = torch.randn(3, 4, 5, dtype=torch.float64, device=device, requires_grad=True)
    token = torch.randn(5, dtype=torch.float64, device=device, requires_grad=True)
    keep = random_keep(3, 7, 4).to(device)

    def scatter(v, t):
        return ops.masked_scatter(v, keep, t, 7)

    assert torch.autograd.gradcheck(scatter, (visible, token))
    assert torch.autograd.gradgradcheck(scatter, (visible, token))


@requires_ops
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_gradients_match_reference(dtype, device):
    x = torch.randn(4, 16, 8, device=device).to(dtype).requires_grad_(True)
    keep = random_keep(4, 16, 5).to(device)
    token = torch.randn(8, device=device).to(dtype).requires_grad_(True)
    weight = torch.randn(4, 16, 8, device=device).to(dtype)

    def loss():
        return (
            ops.masked_scatter(ops.masked_gather(x, keep) * 2, keep, token, 16).float()
            * weight.float()
        ).sum()

    grads = torch.autograd.grad(loss(), (x, token))
    with ops.use_reference():
        ref_grads = torch.autograd.grad(loss(), (x, token))
    for got, expected in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(
            got, expected, atol=1e-2 if dtype == torch.bfloat16 else 1e-3, rtol=1e-2
        )


@requires_ops
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_opcheck(dtype):
    x = torch.randn(3, 10, 6).to(dtype).requires_grad_(dtype != torch.bfloat16 or True)
    idx = torch.tensor([[0, 4, 4], [9, 1, 2], [3, 3, 8]])
    keep = random_keep(3, 10, 3)
    token = torch.randn(6).to(dtype).requires_grad_(True)
    visible = torch.randn(3, 3, 6).to(dtype).requires_grad_(True)
    grad_full = torch.randn(3, 10, 6).to(dtype)
    mm = compiled()
    torch.library.opcheck(mm.masked_gather.default, (x, idx))
    torch.library.opcheck(
        mm.masked_gather_backward.default, (torch.randn(3, 3, 6).to(dtype), idx, 10)
    )
    torch.library.opcheck(mm.masked_scatter.default, (visible, keep, token, 10))
    torch.library.opcheck(mm.masked_scatter_backward.default, (grad_full, keep))


def test_nan_poisoned_rows_are_not_read():
    """Rows of x that are not indexed may hold NaN: the gather must not touch them."""
    x = torch.full((2, 9, 4), float("nan"))
    keep = torch.tensor([[1, 4], [0, 8]])
    x[0, [1, 4]] = 1.0
    x[1, [0, 8]] = 2.0
    out = ops.masked_gather(x, keep)
    assert not bool(out.isnan().any())


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: ops.masked_gather(torch.zeros(2, 5), torch.zeros(2, 1, dtype=torch.long)),
            ValueError,
            "x must have 3 dimensions",
        ),
        (
            lambda: ops.masked_gather(torch.zeros(2, 5, 3), torch.zeros(2, 1, dtype=torch.int32)),
            ValueError,
            "idx must have dtype int64",
        ),
        (
            lambda: ops.masked_gather(torch.zeros(2, 5, 3), torch.zeros(3, 1, dtype=torch.long)),
            ValueError,
            "idx must have batch size 2",
        ),
        (
            lambda: ops.masked_gather(torch.zeros(2, 5, 3), torch.tensor([[0], [5]])),
            ValueError,
            "idx must index into \\[0, 5\\)",
        ),
        (
            lambda: ops.masked_gather(torch.zeros(2, 5, 3), torch.tensor([[0], [-1]])),
            ValueError,
            "idx must index into",
        ),
        (
            lambda: ops.masked_gather(
                torch.zeros(2, 5, 3, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long)
            ),
            ValueError,
            "x must have dtype",
        ),
        (
            lambda: ops.masked_scatter(
                torch.zeros(2, 2, 3), torch.tensor([[0, 1], [1, 1]]), torch.zeros(3), 4
            ),
            (ValueError, RuntimeError),
            "keep_idx must hold distinct",
        ),
        (
            lambda: ops.masked_scatter(
                torch.zeros(2, 2, 3), torch.tensor([[0, 1], [1, 4]]), torch.zeros(3), 4
            ),
            ValueError,
            "keep_idx must index into \\[0, 4\\)",
        ),
        (
            lambda: ops.masked_scatter(
                torch.zeros(2, 2, 3), torch.tensor([[0, 1], [1, 2]]), torch.zeros(4), 4
            ),
            ValueError,
            "mask_token must have shape",
        ),
        (
            lambda: ops.masked_scatter(
                torch.zeros(2, 2, 3), torch.tensor([[0, 1], [1, 2]]), torch.zeros(3).double(), 4
            ),
            ValueError,
            "mask_token must have dtype",
        ),
        (
            lambda: ops.masked_scatter(
                torch.zeros(2, 2, 3), torch.tensor([[0, 1], [1, 2]]), torch.zeros(3), 1
            ),
            ValueError,
            "num_patches must be >= the 2 visible",
        ),
        (
            lambda: ops.masked_scatter(
                torch.zeros(2, 2, 3), torch.tensor([[0], [1]]), torch.zeros(3), 4
            ),
            ValueError,
            "keep_idx must have shape",
        ),
    ],
)
def test_bad_input_names_the_argument(call, error, message):
    """Metadata errors are ValueError from the wrapper; value errors found by the
    compiled kernel while it runs (repeated keep_idx) are RuntimeError from C++."""
    with pytest.raises(error, match=message):
        call()


@requires_ops
def test_compiled_ops_check_indices_themselves():
    mm = compiled()
    with pytest.raises(RuntimeError, match="idx\\[1, 0\\] = 7 is out of range \\[0, 5\\)"):
        mm.masked_gather(torch.zeros(2, 5, 3), torch.tensor([[0], [7]]))
    with pytest.raises(RuntimeError, match="keep_idx must hold distinct indices"):
        mm.masked_scatter(torch.zeros(1, 2, 3), torch.tensor([[2, 2]]), torch.zeros(3), 4)
    with pytest.raises(RuntimeError, match="keep_idx\\[0, 1\\] = -3 is out of range"):
        mm.masked_scatter_backward(torch.zeros(1, 4, 3), torch.tensor([[0, -3]]))
    with pytest.raises(RuntimeError, match="idx\\[0, 0\\] = 9 is out of range"):
        mm.masked_gather_backward(torch.zeros(1, 1, 3), torch.tensor([[9]]), 4)
