"""EntMLM: entity-masked language modelling conditioned on the unmasked image (DESIGN §1.1 step 8).

The MLM output layer is **tied** to the text encoder's word embeddings by default
(``tie_word_embeddings=True``): it adds no ``V × H`` matrix, follows BERT, and works
with pretrained encoders such as MiniLM that ship without an MLM head. The tie is
implemented in ``forward`` (``F.linear`` on the embedding matrix), so the state dict
holds no shared tensors. Untied, the head owns its own ``Linear(H, V)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import EntitySpanMask
from .config import EntMLMConfig
from .fusion import TransformerBlock, init_weights
from .text import TextEncoder

__all__ = ["EntMLM", "MLMHead", "MLMOutput", "default_special_tokens_mask"]

IGNORE_INDEX = -100


@dataclass
class MLMOutput:
    """Output of :class:`EntMLM`.

    Attributes:
        loss: scalar mean cross-entropy over the masked tokens (0 when none).
        logits (Tensor[N, V]): predictions at the N masked positions (row-major order).
        labels (Tensor[B, L] int64): original ids at masked positions, -100 elsewhere.
        masked_ids (Tensor[B, L] int64): the encoder input after masking.
        num_masked: N.
        accuracy: scalar fraction of masked tokens predicted exactly (no grad).
    """

    loss: Tensor
    logits: Tensor
    labels: Tensor
    masked_ids: Tensor
    num_masked: int
    accuracy: Tensor


def default_special_tokens_mask(attention_mask: Tensor) -> Tensor:
    """``[CLS] … [SEP]`` convention: the first and the last real token of each row.

    Args:
        attention_mask (Tensor[B, L]): 1 = real token.

    Returns:
        Tensor[B, L] bool, True at special or padding positions.
    """
    attended = attention_mask.bool()
    special = ~attended
    lengths = attended.long().sum(dim=1)
    rows = torch.arange(attended.shape[0], device=attended.device)
    has = lengths > 0
    special[rows[has], 0] = True
    special[rows[has], (lengths[has] - 1)] = True
    return special


class MLMHead(nn.Module):
    """EntMLM's head on tensors: the entity masking, the image-conditioned decoder, the loss.

    It holds no tower: the caller encodes the masked text and hands the states (and the
    word-embedding matrix of a tied output layer) in. :class:`EntMLM` is the standalone
    block (head + its own text encoder).

    Args:
        hidden: H, the text encoder's width.
        vocab_size: V.
        mask_token_id: id of [MASK].
        config: knobs (:class:`~mmclip.models.EntMLMConfig`).
        image_dim: width of the image tokens for cross-attention; None = text only.
    """

    def __init__(
        self,
        hidden: int,
        vocab_size: int,
        mask_token_id: int,
        config: EntMLMConfig,
        image_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = int(vocab_size)
        self.mask_token_id = int(mask_token_id)
        self.masker = EntitySpanMask(
            self.mask_token_id,
            self.vocab_size,
            config.entity_prob,
            config.target_ratio,
            config.min_ratio,
            config.max_ratio,
        )
        heads = config.decoder_heads
        if hidden % heads:
            raise ValueError(f"decoder_heads={heads} does not divide the text width {hidden}")
        context = image_dim if (image_dim is not None and config.decoder_cross_attention) else None
        self.blocks = nn.ModuleList(
            TransformerBlock(hidden, heads, 4.0, context_dim=context, eps=1e-12)
            for _ in range(config.decoder_depth)
        )
        self.transform = nn.Sequential(
            nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=1e-12)
        )
        self.output: nn.Linear | None = None
        if config.tie_word_embeddings:
            self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.output = nn.Linear(hidden, vocab_size)
        init_weights(self.blocks)
        init_weights(self.transform)
        if self.output is not None:
            init_weights(self.output)

    @property
    def cross_attends(self) -> bool:
        """Whether the decoder reads image tokens."""
        return bool(self.blocks) and self.blocks[0].cross is not None

    def mask(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        special_tokens_mask: Tensor | None = None,
        span_offsets: Tensor | None = None,
        spans: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Apply :class:`mmclip.ops.EntitySpanMask` (the op with this head's settings).

        Missing ``special_tokens_mask`` follows :func:`default_special_tokens_mask`;
        missing spans mean no entity (random token masking only).

        Returns:
            masked_ids (Tensor[B, L]), labels (Tensor[B, L], -100 elsewhere).
        """
        batch = input_ids.shape[0]
        device = input_ids.device
        if special_tokens_mask is None:
            special_tokens_mask = default_special_tokens_mask(attention_mask)
        if span_offsets is None or spans is None:
            span_offsets = torch.zeros(batch + 1, dtype=torch.int64, device=device)
            spans = torch.zeros(0, 2, dtype=torch.int64, device=device)
        return self.masker(
            input_ids, attention_mask, special_tokens_mask, span_offsets, spans, generator
        )

    def head(self, states: Tensor, word_embeddings: Tensor | None = None) -> Tensor:
        """states (Tensor[N, H]) → logits (Tensor[N, V]); a tied head needs the word
        embeddings (Tensor[V, H])."""
        x = self.transform(states)
        if self.output is not None:
            return self.output(x)
        if word_embeddings is None:
            raise ValueError("a tied MLM head needs the text encoder's word embeddings")
        return F.linear(x, word_embeddings.to(x.dtype), self.output_bias.to(x.dtype))

    def predict(
        self,
        encoded: Tensor,
        attention_mask: Tensor,
        masked_ids: Tensor,
        labels: Tensor,
        image_states: Tensor | None = None,
        image_mask: Tensor | None = None,
        word_embeddings: Tensor | None = None,
    ) -> MLMOutput:
        """Decode the masked text's states with the image and score the masked tokens.

        Args:
            encoded (Tensor[B, L, H]): the text encoder's states of ``masked_ids``.
            attention_mask (Tensor[B, L]); masked_ids, labels (Tensor[B, L]): :meth:`mask`.
            image_states (Tensor[B, P, D_img] | None): unmasked image tokens (detached when
                ``detach_image``); None = text only.
            image_mask (Tensor[B, P] bool | None): image tokens to attend to.
            word_embeddings (Tensor[V, H] | None): the tied output layer's matrix.

        Returns:
            :class:`MLMOutput`.
        """
        x = encoded
        key_mask = attention_mask.bool()
        context = None
        if image_states is not None:
            context = image_states.detach() if self.config.detach_image else image_states
        for block in self.blocks:
            x = block(x, key_mask=key_mask, context=context, context_mask=image_mask)
        selected = labels != IGNORE_INDEX
        targets = labels[selected]
        logits = self.head(x[selected], word_embeddings)
        num = int(targets.numel())
        if num:
            loss = F.cross_entropy(logits.float(), targets)
            accuracy = (logits.detach().argmax(dim=-1) == targets).float().mean()
        else:
            loss = logits.sum() * 0.0 + x.sum() * 0.0
            accuracy = torch.zeros((), device=x.device)
        return MLMOutput(
            loss=loss,
            logits=logits,
            labels=labels,
            masked_ids=masked_ids,
            num_masked=num,
            accuracy=accuracy,
        )


class EntMLM(MLMHead):
    """Entity-masked language modelling around its own :class:`TextEncoder`.

    Usable on its own::

        mlm = EntMLM(text_encoder, image_dim=192)
        out = mlm(input_ids, attention_mask, special_tokens_mask, span_offsets, spans,
                  image_states=v)      # or image_states=None for text-only data

    Args:
        encoder: the text encoder (``self.encoder``, a sub-module).
        config: knobs (:class:`~mmclip.models.EntMLMConfig`); keyword ``overrides``
            replace single fields, e.g. ``EntMLM(enc, entity_prob=0.0)``.
        image_dim: width of the image tokens for cross-attention; None = text only.
        mask_token_id: id of [MASK]; default ``encoder.config.mask_token_id``.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        config: EntMLMConfig | None = None,
        *,
        image_dim: int | None = None,
        mask_token_id: int | None = None,
        **overrides: object,
    ) -> None:
        config = dataclasses.replace(config or EntMLMConfig(), **overrides)  # type: ignore[arg-type]
        super().__init__(
            encoder.hidden_size,
            encoder.vocab_size,
            encoder.config.mask_token_id if mask_token_id is None else mask_token_id,
            config,
            image_dim,
        )
        self.encoder = encoder

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        special_tokens_mask: Tensor | None = None,
        span_offsets: Tensor | None = None,
        spans: Tensor | None = None,
        image_states: Tensor | None = None,
        image_mask: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> MLMOutput:
        """Mask the report, encode it, decode with the image, predict the masked tokens.

        Args:
            input_ids (Tensor[B, L] int64), attention_mask (Tensor[B, L]): the report.
            special_tokens_mask (Tensor[B, L] | None): 1 = [CLS]/[SEP]/padding.
            span_offsets (Tensor[B + 1] int64 | None), spans (Tensor[S, 2] int64 | None):
                entity token spans (CSR).
            image_states (Tensor[B, P, D_img] | None): unmasked image tokens (detached
                when ``detach_image``); None = text only (no cross-attention).
            image_mask (Tensor[B, P] bool | None): image tokens to attend to.
            generator: random source of the masking.

        Returns:
            :class:`MLMOutput`.
        """
        self.encoder.check_inputs(input_ids, attention_mask)
        if image_states is not None and (
            image_states.ndim != 3 or image_states.shape[0] != input_ids.shape[0]
        ):
            raise ValueError(
                f"image_states must have shape ({input_ids.shape[0]}, P, D); "
                f"got {tuple(image_states.shape)}"
            )
        masked_ids, labels = self.mask(
            input_ids, attention_mask, special_tokens_mask, span_offsets, spans, generator
        )
        encoded = self.encoder(masked_ids, attention_mask).tokens
        return self.predict(
            encoded,
            attention_mask,
            masked_ids,
            labels,
            image_states,
            image_mask,
            self.encoder.word_embeddings.weight,
        )
