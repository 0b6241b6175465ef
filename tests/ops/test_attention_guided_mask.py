"""attention_guided_mask: exactness vs the reference, invariants, statistics, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from mmclip import ops
from mmclip.ops import reference

from .helpers import FLOAT_DTYPES, compiled, requires_ops

INF = float("inf")


def random_scores(batch, patches, seed=0, dtype=torch.float32, ties=False):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(batch, patches, generator=g)
    if ties:  # few distinct values: many exact ties
        s = (s * 4).floor() / 4 + 0.125
    return (s / s.sum(1, keepdim=True).clamp_min(1e-12)).to(dtype)


def check_invariants(keep_idx, mask_idx, mask, patches, n_mask):
    batch = mask.shape[0]
    assert keep_idx.dtype == mask_idx.dtype == torch.int64 and mask.dtype == torch.bool
    assert keep_idx.shape == (batch, patches - n_mask) and mask_idx.shape == (batch, n_mask)
    assert bool((keep_idx[:, 1:] > keep_idx[:, :-1]).all()) and bool(
        (mask_idx[:, 1:] > mask_idx[:, :-1]).all()
    )
    union = torch.cat([keep_idx, mask_idx], 1).sort(1).values
    assert torch.equal(union, torch.arange(patches).expand(batch, patches))
    assert bool(mask.gather(1, mask_idx).all()) and not bool(mask.gather(1, keep_idx).any())


@given(
    batch=st.integers(0, 5),
    patches=st.integers(0, 80),
    ratio=st.floats(0, 1),
    tau=st.sampled_from([0.0, 1e-3, 0.5, 1.0, 7.0, INF]),
    ties=st.booleans(),
    seed=st.integers(0, 2**20),
)
def test_compiled_equals_reference_and_invariants(batch, patches, ratio, tau, ties, seed):
    scores = random_scores(batch, patches, seed, ties=ties)
    if batch and patches:
        scores[0, 0] = 0.0  # log(0) = -inf key
    n_mask = ops.mask_count(ratio, patches)
    noise = torch.rand(batch, patches, generator=torch.Generator().manual_seed(seed + 1))
    expected = reference.attention_guided_mask(scores, noise, n_mask, tau)
    check_invariants(*expected, patches, n_mask)
    if ops.has_ops():
        got = compiled().attention_guided_mask(scores, noise, n_mask, tau)
        for g, e in zip(got, expected, strict=True):
            assert torch.equal(g, e)


def test_tau_zero_takes_exactly_the_top_scores_ties_by_index():
    scores = torch.tensor([[0.1, 0.4, 0.4, 0.05, 0.4, 0.05]])
    keep, masked, _ = ops.attention_guided_mask(scores, 0.5, 0.0)
    assert masked.tolist() == [[1, 2, 4]] and keep.tolist() == [[0, 3, 5]]
    keep, masked, _ = ops.attention_guided_mask(scores, 2 / 6, 0.0)
    assert masked.tolist() == [[1, 2]]  # the third 0.4 loses the tie by index


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtypes_and_device(dtype, device):
    scores = random_scores(3, 50, dtype=dtype).to(device)
    keep, masked, mask = ops.attention_guided_mask(
        scores, 0.75, 0.5, torch.Generator(device).manual_seed(3)
    )
    assert keep.device == scores.device
    check_invariants(keep.cpu(), masked.cpu(), mask.cpu(), 50, 38)


def test_same_generator_state_same_mask(device):
    scores = random_scores(4, 64).to(device)
    a = ops.attention_guided_mask(scores, 0.6, 1.0, torch.Generator(device).manual_seed(7))
    b = ops.attention_guided_mask(scores, 0.6, 1.0, torch.Generator(device).manual_seed(7))
    c = ops.attention_guided_mask(scores, 0.6, 1.0, torch.Generator(device).manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[2], c[2])


def test_uniform_masking_frequency_is_mask_ratio():
    """tau = inf: each patch is masked with probability n/P (binomial test per patch)."""
    trials, patches, ratio = 4000, 49, 0.75
    scores = random_scores(trials, patches, seed=1)
    _, _, mask = ops.attention_guided_mask(scores, ratio, INF, torch.Generator().manual_seed(0))
    p = ops.mask_count(ratio, patches) / patches
    counts = mask.sum(0).tolist()
    pvalues = [stats.binomtest(int(c), trials, p).pvalue for c in counts]
    # Bonferroni over the patches at a 1e-3 family-wise level.
    assert min(pvalues) > 1e-3 / patches, min(pvalues)


def test_small_tau_masks_high_scores_more_often():
    trials, patches = 3000, 20
    base = torch.linspace(0.01, 1.0, patches)
    scores = (base / base.sum()).expand(trials, patches).contiguous()
    frequency = {}
    for tau in (INF, 1.0, 0.1):
        _, _, mask = ops.attention_guided_mask(scores, 0.25, tau, torch.Generator().manual_seed(1))
        frequency[tau] = mask.float().mean(0)
    rho_inf = stats.spearmanr(base, frequency[INF]).statistic
    rho_small = stats.spearmanr(base, frequency[0.1]).statistic
    assert rho_small > 0.95 and abs(rho_inf) < 0.6
    top = slice(patches - 5, patches)
    assert frequency[0.1][top].mean() > frequency[1.0][top].mean() > frequency[INF][top].mean()


def test_gumbel_top_k_matches_sampling_without_replacement():
    """With n = 1 and tau = 1, patch p is masked with probability s_p (Gumbel-max)."""
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    trials = 20000
    scores = probs.expand(trials, 4).contiguous()
    _, masked, _ = ops.attention_guided_mask(scores, 0.25, 1.0, torch.Generator().manual_seed(5))
    counts = torch.bincount(masked[:, 0], minlength=4).double()
    expected = probs.double() / probs.double().sum() * trials
    pvalue = stats.chisquare(counts.numpy(), expected.numpy()).pvalue
    assert pvalue > 1e-4


@requires_ops
def test_opcheck():
    scores = random_scores(3, 17)
    noise = torch.rand(3, 17)
    for tau in (0.0, 0.7, INF):
        torch.library.opcheck(compiled().attention_guided_mask.default, (scores, noise, 9, tau))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scores": torch.zeros(4)}, ValueError, "scores must have 2 dimensions"),
        ({"scores": torch.zeros(2, 4, dtype=torch.long)}, ValueError, "scores must have dtype"),
        ({"mask_ratio": 1.5}, ValueError, "mask_ratio must lie in \\[0, 1\\]"),
        ({"mask_ratio": -0.1}, ValueError, "mask_ratio must lie in \\[0, 1\\]"),
        ({"tau": -1.0}, ValueError, "tau must be >= 0"),
        ({"tau": float("nan")}, ValueError, "tau must be >= 0"),
        ({"scores": [[0.5, 0.5]]}, TypeError, "scores must be a torch.Tensor"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, message):
    args = {"scores": torch.full((2, 4), 0.25), "mask_ratio": 0.5, "tau": 1.0} | kwargs
    with pytest.raises(error, match=message):
        ops.attention_guided_mask(**args)


@requires_ops
def test_compiled_op_checks_arguments_itself():
    with pytest.raises(RuntimeError, match="n_mask must lie in \\[0, 4\\]"):
        compiled().attention_guided_mask(torch.rand(2, 4), torch.rand(2, 4), 5, 1.0)
    with pytest.raises(RuntimeError, match="noise must have the shape of scores"):
        compiled().attention_guided_mask(torch.rand(2, 4), torch.rand(2, 3), 1, 1.0)
    with pytest.raises(RuntimeError, match="noise must have dtype Float"):
        compiled().attention_guided_mask(torch.rand(2, 4), torch.rand(2, 4).double(), 1, 1.0)
