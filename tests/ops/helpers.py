"""Helpers of the operator tests: compiled-op access and tolerance tables."""

from __future__ import annotations

import pytest
import torch

from mmclip import ops

requires_ops = pytest.mark.skipif(not ops.has_ops(), reason="compiled mmclip._C not built")

# Absolute floor added to the "within 2x the error of a same-precision PyTorch
# computation" rule, per input dtype (the score op computes in float32 internally).
SCORE_ATOL = {
    torch.float64: 1e-12,
    torch.float32: 2e-6,
    torch.float16: 2e-6,
    torch.bfloat16: 2e-6,
}
FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def compiled():
    """The compiled operator namespace, ``torch.ops.mmclip``."""
    return torch.ops.mmclip
