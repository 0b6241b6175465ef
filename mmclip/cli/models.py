"""``mmclip models``: list the model configs and the trained models registered locally."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import (
    _common,
)


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered model configs and the trained models of the local directory."""
    from mmclip.models import get_model_config, list_models
    from mmclip.models.home import list_pretrained, models_dir

    for name in list_models():
        c = get_model_config(name)
        print(
            f"{name:14s} ViT {c.vision.width}×{c.vision.depth} @ {c.vision.image_size}px, "
            f"BERT {c.text.hidden_size}×{c.text.num_layers}, embed {c.contrastive.embed_dim}"
        )
    trained = list_pretrained(as_str=True)
    print(f"\ntrained models in {models_dir()} (--model name:tag):")
    for spec in trained:
        print(f"  {spec}")
    if not trained:
        print("  none yet; `mmclip demo` trains mmclip-tiny and registers it as mmclip-tiny:demo")
    return 0


def add_parser(sub: Any) -> None:
    """Register this command on the ``mmclip`` sub-parsers."""
    p = sub.add_parser(
        "models", help="list the model configs and the trained models registered locally"
    )
    _common(p)
    p.set_defaults(func=cmd_models)
