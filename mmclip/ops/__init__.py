"""The mmclip operators: C++/CUDA kernels with pure-PyTorch references.

Public functions (each also has an ``nn.Module`` form):

- :func:`cross_modal_attention_score` — attention each patch receives from the text.
- :func:`attention_guided_mask` — Gumbel-top-k choice of the patches to mask.
- :func:`masked_gather` / :func:`masked_scatter` — visible tokens out and back in.
- :func:`entity_span_mask` — whole-entity masking with BERT replacement.

When the compiled library ``mmclip._C`` is missing the references run instead
(:func:`has_ops` says which); :func:`use_reference` forces the references.
"""

from . import reference
from ._library import OpsUnavailableError, has_ops, load_error, require_ops, use_reference
from .attention_guided_mask import AttentionGuidedMask, attention_guided_mask, mask_count
from .cross_modal_attention_score import CrossModalAttentionScore, cross_modal_attention_score
from .entity_span_mask import EntitySpanMask, entity_span_mask
from .masked_gather_scatter import MaskedGather, MaskedScatter, masked_gather, masked_scatter

__all__ = [
    "AttentionGuidedMask",
    "CrossModalAttentionScore",
    "EntitySpanMask",
    "MaskedGather",
    "MaskedScatter",
    "OpsUnavailableError",
    "attention_guided_mask",
    "cross_modal_attention_score",
    "entity_span_mask",
    "has_ops",
    "load_error",
    "mask_count",
    "masked_gather",
    "masked_scatter",
    "reference",
    "require_ops",
    "use_reference",
]
