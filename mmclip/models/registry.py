"""Model registry (as open_clip): named configs, ``create_model`` and ``list_models``.

Changes to a config use the dotted paths of :mod:`mmclip.config`, as ``--set`` and
``model.overrides`` do in a training config:

- dotted keys: ``create_model("mmclip-tiny", overrides={"attmim.tau_final": float("inf")})``
  (or ``overrides=["attmim.tau_final=inf"]``, values parsed as YAML);

and, being just the config's structure, keyword arguments (they can be mixed):

- nested dicts per section: ``create_model("mmclip-tiny", attmim={"tau_final": float("inf")})``;
- top-level fields directly: ``use_unpaired=False``.

Unknown keys and wrongly typed values raise :class:`~mmclip.config.ConfigError` (a
``ValueError``) naming the dotted key; the old double-underscore form (``attmim__tau_final=``)
is refused with its dotted equivalent.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any

from mmclip.config import ConfigError, apply_dotted, apply_set, config_to_dict, flatten

from .config import (
    AttMIMConfig,
    ContrastiveConfig,
    EntMLMConfig,
    LocalConfig,
    LossWeights,
    MMCLIPConfig,
    TextConfig,
    VisionConfig,
)
from .mmclip import MMCLIPModel

__all__ = ["apply_overrides", "create_model", "get_model_config", "list_models", "register_model"]

_REGISTRY: dict[str, Callable[[], MMCLIPConfig]] = {}


def register_model(name: str, config: MMCLIPConfig | Callable[[], MMCLIPConfig]) -> None:
    """Register a config (or a factory of one) under ``name`` (replacing any previous one)."""
    if isinstance(config, MMCLIPConfig):
        frozen = copy.deepcopy(config)
        _REGISTRY[name] = lambda: copy.deepcopy(frozen)
    else:
        _REGISTRY[name] = config


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get_model_config(name: str) -> MMCLIPConfig:
    """A fresh copy of the registered config ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered: {list_models()}")
    config = _REGISTRY[name]()
    config.name = name
    return config


def _is_instance(value: Any) -> bool:
    return is_dataclass(value) and not isinstance(value, type)


def _refuse_double_underscore(key: str) -> None:
    if "__" in key:
        dotted = key.replace("__", ".")
        raise ConfigError(
            f"double-underscore override {key!r} is not supported; the path is dotted: "
            f'use create_model(name, overrides={{"{dotted}": ...}})'
        )


def _dotted_overrides(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level fields and whole sections (dicts or dataclasses) as dotted keys."""
    out = flatten({k: config_to_dict(v) if _is_instance(v) else v for k, v in fields.items()})
    for key in out:
        _refuse_double_underscore(key)
    return out


def apply_overrides(
    config: MMCLIPConfig,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    **fields: Any,
) -> MMCLIPConfig:
    """A new config with changes applied (``config`` is left as it is).

    Args:
        config: the config to start from.
        overrides: dotted keys and their values, ``{"attmim.tau_final": float("inf")}``
            (a nested mapping, ``{"attmim": {"tau_final": ...}}``, is the same), or
            ``"attmim.tau_final=inf"`` strings whose values are parsed as YAML, as ``--set``.
        **fields: top-level fields (``use_unpaired=False``) and sections as dicts or
            dataclasses (``attmim={"tau_final": ...}``: only the fields named change).

    Raises:
        ConfigError: (a ``ValueError``) an unknown key, a wrongly typed value or a
            double-underscore key (``attmim__tau_final``), naming the dotted key.
    """
    tree = config.to_dict()
    apply_dotted(tree, _dotted_overrides(fields))
    if isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(overrides, Mapping):
        apply_dotted(tree, _dotted_overrides(overrides))
    else:
        for assignment in overrides or ():
            _refuse_double_underscore(assignment.split("=", 1)[0])
            apply_set(tree, assignment)
    return MMCLIPConfig.from_dict(tree)


def create_model(
    name_or_config: str | MMCLIPConfig,
    tokenizer: Any = None,
    *,
    pretrained: str | Path | None = None,
    device: Any = "cpu",
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    **fields: Any,
) -> MMCLIPModel:
    """Build a model from a registered name (or a config) with overrides, or load a trained one.

    Args:
        name_or_config: e.g. ``"mmclip-tiny"`` (see :func:`list_models`) or an
            :class:`~mmclip.models.MMCLIPConfig`.
        tokenizer: ``PreTrainedTokenizerFast`` or a local directory holding one (not with
            ``pretrained``: a saved model has its own).
        pretrained: load trained weights instead of a random init: a tag of
            ``name_or_config`` registered in the local model directory (``"demo"`` after
            ``mmclip demo``: ``$MMCLIP_HOME/models/mmclip-tiny/demo``, see
            :func:`~mmclip.models.home.list_pretrained`) or a saved-model directory.
        device: where a ``pretrained`` model is put (a random one is built on the CPU).
        overrides: dotted config keys and values, ``{"attmim.tau_final": float("inf")}``,
            or ``"key.sub=value"`` strings (see :func:`apply_overrides`).
        **fields: top-level fields and section dicts (see the module docstring).

    Returns:
        :class:`~mmclip.models.MMCLIPModel`: with ``pretrained``, the trained model in eval
        mode (as ``MMCLIPModel.from_pretrained``); else a random init (except a text encoder
        loaded from ``text.pretrained``) in training mode.

    Raises:
        FileNotFoundError: ``pretrained`` names no registered tag and no directory; the
            message lists what is registered and how to make a model (``mmclip demo``).
    """
    if pretrained is not None:
        return _load_pretrained(name_or_config, pretrained, tokenizer, device, overrides, fields)
    if isinstance(name_or_config, MMCLIPConfig):
        config = copy.deepcopy(name_or_config)
    else:
        config = get_model_config(name_or_config)
    if overrides or fields:
        config = apply_overrides(config, overrides, **fields)
    if isinstance(tokenizer, Path):
        tokenizer = str(tokenizer)
    return MMCLIPModel(config, tokenizer=tokenizer)


def _load_pretrained(
    name_or_config: str | MMCLIPConfig,
    pretrained: str | Path,
    tokenizer: Any,
    device: Any,
    overrides: Mapping[str, Any] | Iterable[str] | None,
    fields: Mapping[str, Any],
) -> MMCLIPModel:
    """``create_model(name, pretrained=tag or directory)``."""
    from .home import is_registered, resolve_model_dir

    if tokenizer is not None:
        raise ValueError("create_model(pretrained=...) loads the saved model's own tokenizer")
    name = name_or_config.name if isinstance(name_or_config, MMCLIPConfig) else name_or_config
    tag = str(pretrained)
    if isinstance(pretrained, Path) or any(c in tag for c in ":/\\"):
        directory = resolve_model_dir(pretrained)  # a directory (or name:tag) given in full
    elif is_registered(name, tag) or not Path(tag).is_dir():
        directory = resolve_model_dir(f"{name}:{tag}")  # a registered tag comes first
    else:
        directory = resolve_model_dir(tag)
    return MMCLIPModel.from_pretrained(directory, device, overrides, **fields)


def _tiny() -> MMCLIPConfig:
    return MMCLIPConfig(
        # Trained from scratch on small data: mean pooling on both towers and a warmer
        # start temperature keep the contrastive term out of the collapsed saddle where
        # every [CLS] state of a freshly initialised tower is the same point (docs/models.md).
        # 96 px / patch 16: a 6 x 6 grid, fine enough to localise a finding; width 96,
        # depth 3 and one text layer keep the CPU demo under 5 minutes (docs/models.md).
        vision=VisionConfig(image_size=96, width=96, depth=3, heads=3, pool="mean"),
        text=TextConfig(
            pool="mean",
            vocab_size=4096,
            hidden_size=128,
            num_layers=1,
            num_heads=2,
            intermediate_size=512,
            max_position_embeddings=128,
            max_length=64,
        ),
        contrastive=ContrastiveConfig(embed_dim=128, init_temperature=0.2),
        # The local term (multiple-instance token -> patch NCE) and the guidance read the
        # patch states after the first block: deeper states are mixed by self-attention and
        # no longer say where a finding is (measured in docs/models.md: attention
        # concentration 6.3x after one block, 2.1x after two, 1.6x after three).
        local=LocalConfig(kind="mil", init_attention_temperature=0.25),
        # Masking 50 %: 75 % would leave the contrastive image embedding too few patches to
        # align in a few hundred steps; the MAE term is weighted 0.5 so that it does not
        # dominate the shared encoder (docs/models.md).
        attmim=AttMIMConfig(
            mask_ratio=0.5,
            guide_depth=1,
            guide_scale=30.0,
            # Draw the mask around what the text points at (a lesion is contiguous):
            # lesion-hit 0.91 vs 0.73 without, same model and seed (docs/models.md).
            mask_dilation=3,
            decoder_width=128,
            decoder_depth=1,
            decoder_heads=4,
            guide_warmup_steps=100,
            tau_anneal_steps=1000,
        ),
        entmlm=EntMLMConfig(decoder_depth=1, decoder_heads=2),
        loss_weights=LossWeights(mim=0.5),
    )


def _vit_bert(
    width: int, heads: int, text_width: int, text_layers: int, decoder: int
) -> MMCLIPConfig:
    """A 224 px ViT-B/16-shaped image tower (depth 12) with a BERT-shaped text tower.

    Args:
        width, heads: the ViT's width and heads.
        text_width, text_layers: the BERT's hidden size (4x for its MLP) and layers.
        decoder: the AttMIM decoder's width (heads = width / 32).
    """
    return MMCLIPConfig(
        vision=VisionConfig(image_size=224, width=width, depth=12, heads=heads),
        text=TextConfig(
            vocab_size=30522,
            hidden_size=text_width,
            num_layers=text_layers,
            num_heads=12,
            intermediate_size=4 * text_width,
            max_position_embeddings=512,
            max_length=256,
        ),
        contrastive=ContrastiveConfig(embed_dim=512),
        attmim=AttMIMConfig(decoder_width=decoder, decoder_depth=4, decoder_heads=decoder // 32),
        entmlm=EntMLMConfig(decoder_depth=1, decoder_heads=12),
    )


def _small() -> MMCLIPConfig:
    return _vit_bert(width=384, heads=6, text_width=384, text_layers=6, decoder=256)


def _base() -> MMCLIPConfig:
    return _vit_bert(width=768, heads=12, text_width=768, text_layers=12, decoder=512)


register_model("mmclip-tiny", _tiny)
register_model("mmclip-small", _small)
register_model("mmclip-base", _base)
