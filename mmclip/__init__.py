"""mmclip: medical vision-language pre-training on chest X-rays.

Contrastive image–text learning with attention-guided masked image modelling
(AttMIM) and entity-masked language modelling (EntMLM), learning from paired and
unpaired data. The operators live in :mod:`mmclip.ops`; the model blocks and the
registry (``create_model``, ``list_models``, ``list_pretrained``…) of :mod:`mmclip.models`
and the one-call ``zeroshot`` and ``retrieve`` of :mod:`mmclip.eval.predict` are exported
here too, imported on first use so that ``import mmclip`` stays light.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

if os.environ.get("RANK", "0") not in ("", "0"):
    # Under torchrun, ranks other than 0 keep torch's C++ warnings (DDP's reducer notes, …)
    # to themselves, so each is printed once, by rank 0. torch reads this when it loads.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")

from . import ops

__version__ = "0.1.0"

_MODEL_EXPORTS = (
    "AttMIM",
    "CheckpointMismatchError",
    "ContrastiveLoss",
    "EntMLM",
    "LocalAlignmentLoss",
    "MMCLIPConfig",
    "MMCLIPModel",
    "TextEncoder",
    "VisionTransformer",
    "create_model",
    "get_model_config",
    "list_models",
    "list_pretrained",
    "register_model",
)

_PREDICT_EXPORTS = ("retrieve", "zeroshot")

__all__ = ["__version__", "ops", *_MODEL_EXPORTS, *_PREDICT_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _MODEL_EXPORTS or name in _PREDICT_EXPORTS:
        module = ".models" if name in _MODEL_EXPORTS else ".eval.predict"
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmclip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
