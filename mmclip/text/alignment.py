"""Character spans → token spans, for any fast tokenizer (``return_offsets_mapping=True``).

The batch result is in CSR form, as :func:`mmclip.ops.entity_span_mask` consumes it:

* ``span_offsets``: int64 ``[B + 1]``; the spans of sample ``b`` are
  ``spans[span_offsets[b]:span_offsets[b + 1]]``;
* ``spans``: int64 ``[S, 2]``: token ``start`` and ``end`` (exclusive) per span.

Guarantees: token spans never include special tokens (offset ``(0, 0)`` or any empty offset),
lie inside the sequence, are sorted by start and never overlap within a sample. Character spans
past the end of a truncated sequence are dropped; spans cut by truncation are clipped. A token is
covered by a character span when their character ranges intersect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["align_batch", "align_spans", "encode_with_spans"]


def _as_offsets(offsets: Any) -> np.ndarray:
    """One sample's offsets as an int64 array ``[T, 2]``."""
    array = np.asarray(offsets, dtype=np.int64)
    if array.size == 0:
        return array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"offsets must have shape [T, 2], got {tuple(array.shape)}")
    return array


def _as_char_spans(spans: Any) -> np.ndarray:
    """One sample's character spans as an int64 array ``[S, 2]``, validated."""
    array = np.asarray(spans, dtype=np.int64)
    if array.size == 0:
        return array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"character spans must have shape [S, 2], got {tuple(array.shape)}")
    if (array[:, 0] < 0).any():
        raise ValueError("character spans must have start >= 0")
    if (array[:, 1] <= array[:, 0]).any():
        raise ValueError("character spans must have start < end")
    return array


def align_spans(offsets: Any, char_spans: Any) -> np.ndarray:
    """Token spans ``[S', 2]`` (start, end-exclusive) of one sample's character spans."""
    _, spans = align_batch([offsets], [char_spans])
    return spans


def align_batch(
    encodings_offsets: Any,
    char_spans_per_sample: Sequence[Any],
    *,
    return_index: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align character spans of a batch to token spans (vectorised, no per-token loop).

    ``encodings_offsets`` is the ``offset_mapping`` of a batch: an array ``[B, T, 2]`` (padding
    has offset ``(0, 0)``), a list of ``[T_b, 2]`` arrays, a torch tensor, or a ``BatchEncoding``
    holding ``offset_mapping``. ``char_spans_per_sample`` holds one sequence of ``(start, end)``
    character spans per sample.

    Returns ``(span_offsets [B+1], spans [S, 2])``, plus, with ``return_index``, ``index [S]``:
    for each output span the position of its character span in its sample's input list.
    """
    if hasattr(encodings_offsets, "keys") and "offset_mapping" in encodings_offsets:
        encodings_offsets = encodings_offsets["offset_mapping"]
    if hasattr(encodings_offsets, "detach"):
        encodings_offsets = encodings_offsets.detach().cpu().numpy()
    samples = [_as_offsets(o) for o in encodings_offsets]
    if len(samples) != len(char_spans_per_sample):
        raise ValueError(
            f"got offsets for {len(samples)} samples but character spans for "
            f"{len(char_spans_per_sample)}"
        )
    batch = len(samples)
    char_list = [_as_char_spans(s) for s in char_spans_per_sample]
    n_chars = np.array([c.shape[0] for c in char_list], dtype=np.int64)
    empty = (np.zeros(batch + 1, dtype=np.int64), np.zeros((0, 2), dtype=np.int64))
    if n_chars.sum() == 0:
        return (*empty, np.zeros(0, dtype=np.int64)) if return_index else empty

    lengths = np.array([s.shape[0] for s in samples], dtype=np.int64)
    all_offsets = np.concatenate(samples) if lengths.sum() else np.zeros((0, 2), np.int64)
    token_sample = np.repeat(np.arange(batch, dtype=np.int64), lengths)
    token_pos = np.arange(all_offsets.shape[0], dtype=np.int64) - np.repeat(
        np.cumsum(lengths) - lengths, lengths
    )
    valid = all_offsets[:, 1] > all_offsets[:, 0]
    starts, ends = all_offsets[valid, 0], all_offsets[valid, 1]
    v_sample, v_pos = token_sample[valid], token_pos[valid]

    spans_all = np.concatenate(char_list)
    span_sample = np.repeat(np.arange(batch, dtype=np.int64), n_chars)
    span_index = np.arange(spans_all.shape[0], dtype=np.int64) - np.repeat(
        np.cumsum(n_chars) - n_chars, n_chars
    )
    # One global sort key: sample b lives in [b * stride, (b + 1) * stride).
    top = max(int(spans_all.max()), int(ends.max()) if ends.size else 0) + 1
    stride = np.int64(top + 1)
    g_starts = v_sample * stride + starts
    g_ends = v_sample * stride + ends
    if ends.size and ((np.diff(g_starts) < 0).any() or (np.diff(g_ends) < 0).any()):
        raise ValueError(
            "token offsets must be non-decreasing within a sample (one text per sample; "
            "encode pairs separately)"
        )
    order = np.lexsort((spans_all[:, 1], spans_all[:, 0], span_sample))
    spans_all, span_sample, span_index = spans_all[order], span_sample[order], span_index[order]
    c_starts = span_sample * stride + spans_all[:, 0]
    c_ends = span_sample * stride + spans_all[:, 1]
    # First valid token ending after the span start; one past the last valid token starting
    # before the span end. Both stay inside the span's own sample thanks to the stride.
    first = np.searchsorted(g_ends, c_starts, side="right")
    last = np.searchsorted(g_starts, c_ends, side="left")
    first = np.maximum(first, np.searchsorted(v_sample, span_sample, side="left"))
    last = np.minimum(last, np.searchsorted(v_sample, span_sample, side="right"))
    keep = first < last
    first, last = first[keep], last[keep]
    span_sample, span_index = span_sample[keep], span_index[keep]
    tok_start = v_pos[first]
    tok_end = v_pos[last - 1] + 1
    # Remove overlaps: clip each start to the running maximum end of earlier spans of the sample.
    if tok_start.size:
        max_len = int(lengths.max()) + 1
        g_end = span_sample * max_len + tok_end
        prev = np.maximum.accumulate(g_end)
        prev = np.concatenate(([-1], prev[:-1]))
        prev_local = prev - span_sample * max_len
        same = np.concatenate(([False], span_sample[1:] == span_sample[:-1]))
        tok_start = np.where(same & (prev_local > tok_start), prev_local, tok_start)
        ok = tok_start < tok_end
        tok_start, tok_end = tok_start[ok], tok_end[ok]
        span_sample, span_index = span_sample[ok], span_index[ok]
    spans = np.stack([tok_start, tok_end], axis=1).astype(np.int64)
    counts = np.bincount(span_sample, minlength=batch)
    span_offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    if return_index:
        return span_offsets, spans, span_index.astype(np.int64)
    return span_offsets, spans


def encode_with_spans(
    tokenizer: Any,
    texts: Sequence[str],
    char_spans_per_sample: Sequence[Any],
    **encode_kwargs: Any,
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Tokenize ``texts`` with a fast tokenizer and align their character spans.

    Returns ``(encoding, span_offsets, spans)``; ``encoding`` is what the tokenizer returned,
    without ``offset_mapping``.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("encode_with_spans needs a fast tokenizer (offsets mapping)")
    encoding = tokenizer(list(texts), return_offsets_mapping=True, **encode_kwargs)
    offsets = encoding.pop("offset_mapping")
    span_offsets, spans = align_batch(offsets, char_spans_per_sample)
    return encoding, span_offsets, spans
