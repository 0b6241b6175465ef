"""WordPiece tokenizers for report text: train one with ``tokenizers`` or load a local one.

Never touches the network: :func:`load_tokenizer` reads a local directory (or a ``vocab.txt``)
with ``local_files_only=True``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from tokenizers.trainers import WordPieceTrainer

from mmclip.io import atomic_output_dir

if TYPE_CHECKING:  # transformers is imported lazily: it is slow to import
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "DEFAULT_VOCAB",
    "SPECIAL_TOKENS",
    "default_tokenizer",
    "load_tokenizer",
    "train_wordpiece_tokenizer",
]

logger = logging.getLogger(__name__)

#: The packaged default vocabulary: CXR-BERT's WordPiece vocabulary (MIT; see
#: ``mmclip/text/data/CXR-BERT-VOCAB-LICENSE.txt``), 30,522 lower-cased tokens.
DEFAULT_VOCAB = Path(__file__).resolve().parent / "data" / "cxr-bert-vocab.txt"

#: Special tokens, in vocabulary order (ids 0..4).
SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _texts(texts: Iterable[str]) -> Iterator[str]:
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"training text #{index} must be a str, got {type(text).__name__}")
        if text:
            yield text


def train_wordpiece_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = True,
    model_max_length: int = 512,
    save_dir: str | Path | None = None,
) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece tokenizer on report text.

    BERT normaliser and pre-tokeniser, ``##`` continuation prefix, special tokens
    :data:`SPECIAL_TOKENS`, ``[CLS] text [SEP]`` post-processing. With ``save_dir`` the tokenizer
    is saved there (``save_pretrained``), ready for :func:`load_tokenizer`.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size must be > {len(SPECIAL_TOKENS)}, got {vocab_size}")
    tokenizer = _bert_pipeline(
        Tokenizer(WordPiece(unk_token="[UNK]", continuing_subword_prefix="##")), lowercase
    )
    trainer = WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tokenizer.train_from_iterator(_texts(texts), trainer=trainer)
    fast = _wrap(tokenizer, lowercase, model_max_length)
    logger.info("trained a WordPiece vocabulary of %d tokens", fast.vocab_size)
    if save_dir is not None:
        with atomic_output_dir(save_dir) as tmp:
            fast.save_pretrained(str(tmp))
    return fast


def _bert_pipeline(tokenizer: Tokenizer, lowercase: bool) -> Tokenizer:
    """Give ``tokenizer`` the BERT normaliser, pre-tokeniser and WordPiece decoder."""
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def _wrap(tokenizer: Tokenizer, lowercase: bool, model_max_length: int) -> PreTrainedTokenizerFast:
    """Add ``[CLS] ... [SEP]`` post-processing and wrap as a ``PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    for token in SPECIAL_TOKENS:
        if tokenizer.token_to_id(token) is None:
            raise ValueError(f"the vocabulary has no {token} token")
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
        do_lower_case=lowercase,
    )


def _from_vocab_file(path: Path, model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """A lower-casing BERT WordPiece tokenizer from a ``vocab.txt`` (one token per line)."""
    tokens = path.read_text(encoding="utf-8").splitlines()
    vocab: dict[str, int] = {}
    for token in tokens:
        token = token.strip()
        if token and token not in vocab:
            vocab[token] = len(vocab)
    model = WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##")
    return _wrap(_bert_pipeline(Tokenizer(model), True), True, model_max_length)


def _is_mmclip_dir(path: Path) -> bool:
    """Whether ``path`` holds a saved MMCLIPModel (config.json of model_type ``mmclip``)."""
    config = path / "config.json"
    if not (path / "tokenizer.json").is_file() or not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "mmclip"
    except (OSError, ValueError, AttributeError):
        return False


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load a local fast tokenizer from a directory, or a BERT one from a ``vocab.txt`` file.

    Only local files are read (``local_files_only=True``); a missing path raises
    ``FileNotFoundError`` and a slow-only tokenizer raises ``TypeError``.
    """
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"tokenizer path not found: {path}")
    if path.is_file():
        if path.suffix != ".txt":
            raise ValueError(f"expected a tokenizer directory or a vocab .txt file, got {path}")
        return _from_vocab_file(path)
    if _is_mmclip_dir(path):
        # A saved MMCLIPModel: its config.json is not a transformers config; transformers
        # reads it anyway and warns about the model type, which is noise here.
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                str(path), local_files_only=True, use_fast=True
            )
        finally:
            hf_logging.set_verbosity(level)
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"the tokenizer in {path} is not a fast tokenizer (no offsets mapping)")
    return tokenizer


def default_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """The packaged radiology tokenizer (CXR-BERT's vocabulary, lower-casing WordPiece).

    What :class:`~mmclip.models.MMCLIPModel` and :func:`~mmclip.models.create_model` attach
    when no tokenizer is given, so that a fresh install encodes text offline.
    """
    return _from_vocab_file(DEFAULT_VOCAB, model_max_length)
