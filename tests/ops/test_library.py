"""Loading of the compiled library, the reference fallback and use_reference()."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import mmclip
from mmclip import ops

from .helpers import requires_ops

WITHOUT_EXTENSION = textwrap.dedent(
    """
    import sys
    sys.modules["mmclip._C"] = None  # makes `import mmclip._C` raise ImportError
    import torch, mmclip
    from mmclip import ops
    assert not ops.has_ops()
    try:
        ops.require_ops()
    except ops.OpsUnavailableError as error:
        assert "pip install --no-build-isolation" in str(error), error
    else:
        raise AssertionError("require_ops() did not raise")
    x = torch.randn(2, 6, 3, requires_grad=True)
    keep = torch.tensor([[0, 2], [5, 1]])
    ops.masked_gather(x, keep).sum().backward()
    assert x.grad.sum() == 12
    q, k = torch.randn(2, 3, 4), torch.randn(2, 6, 4)
    scores = ops.cross_modal_attention_score(q, k, torch.ones(2, 3))
    keep_idx, mask_idx, mask = ops.attention_guided_mask(scores, 0.5, 1.0)
    assert mask.sum() == 6
    print("fallback ok")
    """
)


def test_import_works_without_the_compiled_library():
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTENSION], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "fallback ok" in result.stdout


def test_has_ops_reports_the_loaded_library():
    assert ops.has_ops() == (ops.load_error() is None)
    if ops.has_ops():
        ops.require_ops()  # no error
        assert hasattr(torch.ops.mmclip, "masked_gather")


@requires_ops
def test_use_reference_switches_backend_and_restores(monkeypatch):
    calls = []
    original = ops.reference.masked_gather
    monkeypatch.setattr(ops.reference, "masked_gather", lambda *a: calls.append(1) or original(*a))
    x, idx = torch.randn(1, 4, 2), torch.tensor([[1, 3]])
    ops.masked_gather(x, idx)
    assert calls == []
    with ops.use_reference():
        ops.masked_gather(x, idx)
        with ops.use_reference(False):
            ops.masked_gather(x, idx)
        assert calls == [1]
    ops.masked_gather(x, idx)
    assert calls == [1]


def test_package_exports():
    for name in ops.__all__:
        assert hasattr(ops, name), name
    assert mmclip.__version__
    with pytest.raises(TypeError):
        ops.masked_gather("x", torch.zeros(1, 1, dtype=torch.long))


def test_modules_wrap_the_functions():
    scatter = ops.MaskedScatter(dim=4)
    assert scatter.mask_token.requires_grad
    visible = torch.randn(2, 3, 4, requires_grad=True)
    keep = torch.tensor([[0, 1, 5], [2, 3, 4]])
    out = scatter(ops.MaskedGather()(torch.randn(2, 6, 4), keep) + visible, keep, 6)
    out.sum().backward()
    assert scatter.mask_token.grad is not None
    torch.testing.assert_close(scatter.mask_token.grad, torch.full((4,), 6.0))
    mask = ops.AttentionGuidedMask(mask_ratio=0.5, tau=0.0)
    _, masked, _ = mask(torch.tensor([[0.1, 0.5, 0.3, 0.1]]))
    assert masked.tolist() == [[1, 2]]
    score = ops.CrossModalAttentionScore(scale=1.0)
    assert score(torch.randn(1, 2, 3), torch.randn(1, 5, 3), torch.ones(1, 2)).shape == (1, 5)
    entity = ops.EntitySpanMask(mask_token_id=1, vocab_size=10)
    ids = torch.randint(2, 10, (2, 8))
    ones = torch.ones(2, 8, dtype=torch.bool)
    _, labels = entity(ids, ones, ~ones, torch.tensor([0, 1, 1]), torch.tensor([[2, 4]]))
    assert ((labels != -100).sum(1) >= 1).all()
    assert "entity_prob=0.6" in repr(entity)
