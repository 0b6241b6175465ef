"""Each mmclip operator, compiled kernel vs its pure-PyTorch reference.

CPU: B=64, T=128, P=196, D=768 (float32). CUDA (when present): B=256, bf16.
`pytest bench --benchmark-group-by=group` prints one group per operator; compare
the medians of the `compiled` and `reference` rows.
"""

from __future__ import annotations

import math

import pytest
import torch

from mmclip import ops
from mmclip.ops import reference

from .conftest import dtype_for, run_timed, sizes_for

pytestmark = pytest.mark.skipif(not ops.has_ops(), reason="compiled mmclip._C not built")
IMPLS = ["compiled", "reference"]


def _mm():
    return torch.ops.mmclip


@pytest.mark.parametrize("impl", IMPLS)
def test_cross_modal_attention_score(benchmark, bench_device, impl):
    s = sizes_for(bench_device)
    dtype = dtype_for(bench_device)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(s["B"], s["T"], s["D"], generator=g).to(bench_device, dtype)
    k = torch.randn(s["B"], s["P"], s["D"], generator=g).to(bench_device, dtype)
    w = (torch.rand(s["B"], s["T"], generator=g) > 0.2).float().to(bench_device)
    scale = 1 / math.sqrt(s["D"])
    benchmark.group = f"cross_modal_attention_score[{bench_device}]"
    benchmark.extra_info.update(s, dtype=str(dtype))
    fn = (
        _mm().cross_modal_attention_score
        if impl == "compiled"
        else reference.cross_modal_attention_score
    )
    run_timed(benchmark, bench_device, fn, q, k, w, scale)


@pytest.mark.parametrize("impl", IMPLS)
def test_attention_guided_mask(benchmark, bench_device, impl):
    s = sizes_for(bench_device)
    scores = torch.rand(s["B"], s["P"], device=bench_device).softmax(-1)
    n_mask = round(0.75 * s["P"])
    benchmark.group = f"attention_guided_mask[{bench_device}]"
    benchmark.extra_info.update(s)
    fn = _mm().attention_guided_mask if impl == "compiled" else reference.attention_guided_mask

    def step():  # the noise draw is part of both paths, as in the public wrapper
        noise = torch.rand(s["B"], s["P"], device=bench_device)
        return fn(scores, noise, n_mask, 0.5)

    run_timed(benchmark, bench_device, step)


@pytest.mark.parametrize("impl", IMPLS)
def test_masked_gather_scatter_fwd_bwd(benchmark, bench_device, impl):
    """masked_gather + masked_scatter, forward and backward (the AttMIM token shuffle)."""
    s = sizes_for(bench_device)
    dtype = dtype_for(bench_device)
    batch, patches, dim = s["B"], s["P"], s["D"]
    keep = (
        torch.rand(batch, patches, device=bench_device).argsort(1)[:, : patches // 4].sort(1).values
    )
    x = torch.randn(batch, patches, dim, device=bench_device, dtype=dtype, requires_grad=True)
    token = torch.zeros(dim, device=bench_device, dtype=dtype, requires_grad=True)
    grad = torch.randn(batch, patches, dim, device=bench_device, dtype=dtype)
    benchmark.group = f"masked_gather_scatter[{bench_device}]"
    benchmark.extra_info.update(s, dtype=str(dtype), kept=patches // 4)

    def step():
        with ops.use_reference(impl == "reference"):
            out = ops.masked_scatter(ops.masked_gather(x, keep), keep, token, patches)
            out.backward(grad)
        return out

    run_timed(benchmark, bench_device, step)


@pytest.mark.parametrize("impl", IMPLS)
def test_entity_span_mask(benchmark, bench_device, impl):
    s = sizes_for(bench_device)
    batch, length, per = s["B"], s["L"], s["spans"]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 30000, (batch, length), generator=g)
    attended = torch.ones(batch, length, dtype=torch.bool)
    attended[:, 100:] = False
    special = torch.zeros(batch, length, dtype=torch.bool)
    special[:, 0] = special[:, 99] = True
    starts = torch.randint(1, 90, (batch * per, 1), generator=g)
    spans = torch.cat([starts, starts + torch.randint(1, 4, (batch * per, 1), generator=g)], 1)
    offsets = torch.arange(0, batch * per + 1, per)
    args = [t.to(bench_device) for t in (ids, attended, special, offsets, spans)]
    benchmark.group = f"entity_span_mask[{bench_device}]"
    benchmark.extra_info.update(s)
    fn = _mm().entity_span_mask if impl == "compiled" else reference.entity_span_mask

    def step():
        noise = (
            torch.rand(batch * per, device=bench_device),
            torch.rand(batch, length, device=bench_device),
            torch.rand(batch, length, device=bench_device),
            torch.randint(30000, (batch, length), device=bench_device),
        )
        return fn(*args, *noise, 0.6, 0.3, 0.15, 0.5, 103)

    run_timed(benchmark, bench_device, step, rounds=10 if impl == "reference" else 30)


def test_copy_bandwidth_roofline(benchmark, bench_device):
    """Device-to-device copy of the gather+scatter bytes: the roofline of the shuffle."""
    s = sizes_for(bench_device)
    dtype = dtype_for(bench_device)
    src = torch.randn(s["B"], s["P"], s["D"], device=bench_device, dtype=dtype)
    dst = torch.empty_like(src)
    benchmark.group = f"masked_gather_scatter[{bench_device}]"
    benchmark.extra_info.update(s, bytes=2 * src.numel() * src.element_size())
    run_timed(benchmark, bench_device, dst.copy_, src)
