"""The saved-model format of :class:`~mmclip.models.MMCLIPModel`: write, read and check.

A model directory holds ``config.json`` (the :class:`~mmclip.models.MMCLIPConfig` with
``model_type`` and ``format_version``), ``model.safetensors`` and, when the model has one,
the tokenizer files. Every file is checked before use: a corrupt or hostile file is a
``ValueError`` naming it, never a traceback from deep inside torch (issue 15).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..io import atomic_output, atomic_output_dir, atomic_write_text
from .config import MMCLIPConfig
from .text import load_tokenizer

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "HEAD_NAMES",
    "READABLE_VERSIONS",
    "SIZE_BOUNDS",
    "WEIGHTS_NAME",
    "CheckpointMismatchError",
    "PretrainedModelIO",
    "check_config_sizes",
    "check_state_matches",
    "read_model_directory",
    "upgrade_state_keys",
    "write_model_directory",
]

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 3
"""3: the heads live in the model's ``objective`` (``objective.attmim.*``,
``objective.local.*``, …); 2: the same tensors with the heads at the top (``attmim.*``,
``local.*``, …; read by renaming, :func:`upgrade_state_keys`); 1: towers inside the heads
(``attmim.encoder.*``, ``entmlm.encoder.*``; not readable)."""

READABLE_VERSIONS = (2, 3)

HEAD_NAMES = ("contrastive", "local", "attmim", "entmlm", "tp_loss")
"""The heads that format 2 kept at the top of the state dict and format 3 in ``objective``."""


def upgrade_state_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A state dict of format 2 (heads at the top) renamed to format 3 (``objective.*``).

    Keys of format 3 are returned unchanged, so every state dict can go through it (model
    directories and training checkpoints alike). The tensors are not copied.
    """
    heads = tuple(f"{name}." for name in HEAD_NAMES)
    return {(f"objective.{k}" if k.startswith(heads) else k): v for k, v in state.items()}


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors do not match the model built from its config."""


SIZE_BOUNDS: dict[str, tuple[int, int]] = {
    "vision.image_size": (8, 4096),
    "vision.patch_size": (1, 512),
    "vision.in_chans": (1, 16),
    "vision.width": (8, 8192),
    "vision.depth": (1, 128),
    "vision.heads": (1, 256),
    "text.vocab_size": (8, 1_000_000),
    "text.hidden_size": (8, 8192),
    "text.num_layers": (1, 128),
    "text.num_heads": (1, 256),
    "text.intermediate_size": (8, 65536),
    "text.max_position_embeddings": (8, 65536),
    "text.max_length": (2, 65536),
    "contrastive.embed_dim": (2, 8192),
}
"""Bounds of the architecture sizes a ``config.json`` may ask for (a hostile or corrupt file
must not allocate terabytes or divide by zero)."""


def check_config_sizes(config: MMCLIPConfig, where: str = "config") -> None:
    """Raise ``ValueError`` naming the key when a size is outside :data:`SIZE_BOUNDS`."""
    for key, (low, high) in SIZE_BOUNDS.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{where}: {key} = {value!r} is outside [{low}, {high}]")
    v = config.vision
    if v.image_size % v.patch_size or v.width % v.heads:
        raise ValueError(
            f"{where}: vision.image_size must be a multiple of patch_size and width of heads "
            f"(got {v.image_size}/{v.patch_size}, {v.width}/{v.heads})"
        )


def write_model_directory(
    directory: str | Path, config: MMCLIPConfig, module: nn.Module, tokenizer: Any = None
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer files of a model.

    The weights and the config go to temporary files renamed into place. The saved config
    has ``text.pretrained = None``: loading never reads the original text checkpoint.

    Returns:
        The directory.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(config)
    config.text.pretrained = None
    data = {"model_type": "mmclip", "format_version": FORMAT_VERSION, **config.to_dict()}
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_output(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "model_type": "mmclip"})
    atomic_write_text(directory / CONFIG_NAME, json.dumps(data, indent=2, sort_keys=True) + "\n")
    if tokenizer is not None:
        with atomic_output_dir(directory) as tmp:
            tokenizer.save_pretrained(str(tmp))
    logger.info("saved %s to %s", config.name, directory)
    return directory


def _read_config(cfg_path: Path) -> MMCLIPConfig:
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{cfg_path} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{cfg_path} must hold a JSON object")
    if data.pop("model_type", "mmclip") != "mmclip":
        raise ValueError(f"{cfg_path} is not an mmclip config")
    version = data.pop("format_version", 1)
    if version not in READABLE_VERSIONS:
        reason = (
            "it was written by an older mmclip, whose heads held the towers "
            "(attmim.encoder.*, entmlm.encoder.*); this one owns them at the top "
            "(visual.*, text.*) and adds the local term"
            if version < min(READABLE_VERSIONS)
            else "it was written by a newer mmclip"
        )
        raise CheckpointMismatchError(
            f"{cfg_path} has format_version {version}; this mmclip reads format_version "
            f"{' and '.join(map(str, READABLE_VERSIONS))}: {reason}. Re-train, or load it "
            "with the mmclip that wrote it."
        )
    try:
        config = MMCLIPConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{cfg_path}: {error}") from None
    check_config_sizes(config, str(cfg_path))
    config.text.pretrained = None
    return config


def read_model_directory(directory: str | Path) -> tuple[MMCLIPConfig, Any, dict[str, Tensor]]:
    """The config, the tokenizer (or None) and the CPU state dict of a saved model.

    Raises:
        FileNotFoundError: the directory lacks ``config.json`` or ``model.safetensors``.
        CheckpointMismatchError: another ``format_version``.
        ValueError: an unreadable, corrupt or out-of-bounds file, named in the message.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (cfg_path, weights):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (not an mmclip model directory?)")
    config = _read_config(cfg_path)
    tokenizer = None
    if (directory / "tokenizer.json").is_file() or (directory / "tokenizer_config.json").is_file():
        try:
            tokenizer = load_tokenizer(directory)
        except Exception as error:  # tokenizers / transformers raise many kinds
            raise ValueError(
                f"the tokenizer files in {directory} are unreadable "
                f"({type(error).__name__}: {str(error).splitlines()[0][:200]})"
            ) from None
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as error:  # safetensors: truncated header / data
        raise ValueError(
            f"{weights} is unreadable (truncated or corrupt: {type(error).__name__})"
        ) from None
    return config, tokenizer, state


def check_state_matches(
    expected: dict[str, Tensor], state: dict[str, Tensor], source: str, model_name: str
) -> None:
    """Raise :class:`CheckpointMismatchError` listing missing, unexpected and mis-shaped keys."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return

    def listing(title: str, items: list[str]) -> str:
        more = f" … and {len(items) - 20} more" if len(items) > 20 else ""
        return f"\n  {title} ({len(items)}): " + ", ".join(items[:20]) + more

    msg = f"{source} does not match the model built from its config ({model_name}):"
    if missing:
        msg += listing("missing keys", missing)
    if unexpected:
        msg += listing("unexpected keys", unexpected)
    if shapes:
        msg += listing("shape mismatches", shapes)
    raise CheckpointMismatchError(msg)


class PretrainedModelIO(nn.Module):
    """``save_pretrained``, ``from_pretrained`` and ``load_checkpoint_state``: the base of
    :class:`~mmclip.models.MMCLIPModel` that reads and writes model directories. A subclass
    has ``config`` and ``tokenizer`` and takes ``(config, tokenizer=, default_tokenizer=)``."""

    config: MMCLIPConfig
    tokenizer: Any
    weights_source: str | None = None
    """Where the weights came from (a file, ``load_state_dict``, a training run); None for
    the random initialisation, which the inference methods warn about once."""

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors`` and the tokenizer files.

        Files go to temporary names renamed into place; the saved config has
        ``text.pretrained = None`` (loading never reads the original text checkpoint).
        See :mod:`mmclip.models.pretrained`.

        Returns:
            The directory.
        """
        return write_model_directory(directory, self.config, self, self.tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: torch.device | str = "cpu",
        overrides: Any = None,
        **fields: Any,
    ) -> Any:
        """Load a saved model (strictly; returned in eval mode).

        Args:
            directory: a directory written by :meth:`save_pretrained`, a run directory (its
                ``model/``), or ``"name:tag"`` of a model registered in the local model
                directory (``$MMCLIP_HOME``, see :mod:`mmclip.models.home`), e.g.
                ``"mmclip-tiny:demo"`` after ``mmclip demo``.
            device: where to put it.
            overrides, fields: config changes applied before the weights load, as
                :func:`~mmclip.models.registry.apply_overrides` takes them (dotted keys;
                section dicts); the tensors must still fit.

        Raises:
            FileNotFoundError: no such directory or registered model (the message names the
                registry and what it holds), or a directory without ``config.json`` or
                ``model.safetensors``.
            CheckpointMismatchError: missing, unexpected or differently shaped tensors.
            ValueError: a corrupt or out-of-bounds file, named in the message.
        """
        from .home import resolve_model_dir

        directory = resolve_model_dir(directory)
        config, tokenizer, state = read_model_directory(directory)
        if overrides or fields:
            from .registry import apply_overrides

            config = apply_overrides(config, overrides, **fields)
        model = cls(config, tokenizer=tokenizer, default_tokenizer=False)  # type: ignore[call-arg]
        model.load_checkpoint_state(state, source=str(Path(directory) / WEIGHTS_NAME))
        return model.to(device).eval()

    def load_checkpoint_state(self, state: dict[str, Tensor], source: str = "checkpoint") -> None:
        """``load_state_dict`` that names every mismatched key and shape before loading.

        Raises:
            CheckpointMismatchError: listing missing, unexpected and mis-shaped tensors.
        """
        state = upgrade_state_keys(state)
        check_state_matches(self.state_dict(), state, source, self.config.name)
        self.load_state_dict(state, strict=True)
        self.weights_source = source

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict``; the model then counts as loaded (no untrained
        warning, see :attr:`weights_source`)."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if self.weights_source is None:
            self.weights_source = "load_state_dict"
        return result
