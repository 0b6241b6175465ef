"""``mmclip models``: list the registered models."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import (
    _common,
)


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered models."""
    from mmclip.models import get_model_config, list_models

    for name in list_models():
        c = get_model_config(name)
        print(
            f"{name:14s} ViT {c.vision.width}×{c.vision.depth} @ {c.vision.image_size}px, "
            f"BERT {c.text.hidden_size}×{c.text.num_layers}, embed {c.contrastive.embed_dim}"
        )
    return 0


def add_parser(sub: Any) -> None:
    """Register this command on the ``mmclip`` sub-parsers."""
    p = sub.add_parser("models", help="list the registered models")
    _common(p)
    p.set_defaults(func=cmd_models)
