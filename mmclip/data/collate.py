"""Records + decoded images → :class:`~mmclip.batch.MMCLIPBatch`: the text side of a batch.

Text goes through two small interfaces so a model can swap them:

* a :class:`ReportTokenizer` takes texts and returns the tokenised batch with the entity spans in
  CSR form (:class:`TokenizedText`); :class:`RadiologyTextEncoder` is the default (fast
  tokenizer, batched; entities from :func:`mmclip.text.extract_entities`, aligned with
  :func:`mmclip.text.encode_with_spans`);
* a :class:`Prompter` gives the disease-kind prompt of a record and its kind id;
  :class:`DiseaseKindPrompter` is the default (:func:`mmclip.text.build_prompt`, and the
  labeler through :func:`mmclip.text.report_prompt` for reports without labels).

What each sample kind carries (see :class:`~mmclip.batch.SampleKind`):

=============  ======  ============================  ==================  =============
kind           image   text row                      prompt row          prompt_label
=============  ======  ============================  ==================  =============
PAIRED         yes     the report                    —                   from labels
IMAGE_PROMPT   yes     the prompt of its labels      —                   from labels
IMAGE_ONLY     yes     —                             —                   -1
TEXT_ONLY      —       the report                    its prompt          from labels*
=============  ======  ============================  ==================  =============

\\* the record's labels, or the labeler's labels of the report when it has none.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from mmclip.batch import MMCLIPBatch, SampleKind
from mmclip.data.records import NO_FINDING, XrayRecord

__all__ = [
    "DiseaseKindPrompter",
    "Prompter",
    "RadiologyTextEncoder",
    "ReportTokenizer",
    "TokenizedText",
    "build_batch",
    "disease_kind_id",
    "sort_by_kind",
]

ENTITY_TYPES: tuple[str, ...] = ("finding", "device", "anatomy")
"""Entity types whose spans EntMLM masks whole."""


@dataclass
class TokenizedText:
    """A tokenised batch of ``Bt`` texts padded to ``L`` tokens.

    Attributes:
        input_ids, attention_mask, special_tokens_mask (Tensor[Bt, L] int64).
        span_offsets (Tensor[Bt + 1] int64), spans (Tensor[S, 2] int64): entity token spans
            (start, end exclusive) in CSR form (EntMLM masks them whole).
        focus_offsets (Tensor[Bt + 1] int64 | None), focus_spans (Tensor[F, 2] int64 | None):
            token spans of the mentions that say where to look (present / uncertain findings
            and their laterality / anatomy words, :func:`mmclip.text.focus_spans`), in CSR
            form; they steer AttMIM's guidance and the local alignment term.
    """

    input_ids: Tensor
    attention_mask: Tensor
    special_tokens_mask: Tensor
    span_offsets: Tensor
    spans: Tensor
    focus_offsets: Tensor | None = None
    focus_spans: Tensor | None = None


class ReportTokenizer(Protocol):
    """Tokenises texts and finds their entity token spans."""

    def __call__(self, texts: Sequence[str]) -> TokenizedText: ...


class Prompter(Protocol):
    """Disease-kind prompts of records."""

    def prompt(self, record: XrayRecord, seed: int) -> str:
        """The prompt text of ``record`` (its labels, or its report's)."""
        ...

    def labels(self, record: XrayRecord) -> Mapping[str, int]:
        """The labels that define the record's disease kind (may be empty)."""
        ...


def disease_kind_id(labels: Mapping[str, Any]) -> int:
    """Stable id of the disease kind of ``labels`` (1 positive, 0 negative, -1 uncertain).

    * ``-1`` for no labels (unknown kind: only its own pair is a positive);
    * a study with a positive finding: the kind of its set of positive findings (uncertain
      findings beside them do not change it);
    * a study without a positive finding but with uncertain ones (``-1``): the kind of its
      set of *uncertain* findings, apart from every positive kind and from "No Finding" —
      "possible effusion" is not a normal study (its prompt is not the normal-study
      sentence either), so it is never a label-aware positive of the normal studies;
      two studies uncertain about the same findings share a kind;
    * every other label set (all negative, or "No Finding") is the one normal kind.

    The id is a hash, the same on every rank and in every run, so samples of one kind
    are never each other's contrastive negatives, across ranks too.
    """
    known = {k: v for k, v in labels.items() if v is not None and v == v}
    if not known:
        return -1
    findings = {k: v for k, v in known.items() if k != NO_FINDING}
    positive = sorted(k for k, v in findings.items() if v == 1)
    uncertain = sorted(k for k, v in findings.items() if v == -1)
    if positive:
        key = "|".join(positive)
    elif uncertain:
        key = "uncertain:" + "|".join(uncertain)
    else:
        key = NO_FINDING
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=7).digest(), "big")


class RadiologyTextEncoder:
    """The default :class:`ReportTokenizer`: a fast tokenizer plus radiology entity spans.

    Args:
        tokenizer: a ``PreTrainedTokenizerFast`` (e.g. :func:`mmclip.text.load_tokenizer`).
        max_length: texts are truncated to this many tokens (spans cut by it are clipped).
        entity_types: entity types whose spans are returned.
    """

    def __init__(
        self, tokenizer: Any, max_length: int = 128, entity_types: Sequence[str] = ENTITY_TYPES
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("RadiologyTextEncoder needs a fast tokenizer (offsets mapping)")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.entity_types = frozenset(entity_types)

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one encoder per run, texts repeat
    def _char_spans(
        self, text: str
    ) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        """(entity spans, focus spans) of ``text`` in characters."""
        from mmclip.text import extract_entities, focus_mentions

        mentions = extract_entities(text)
        entities = tuple((m.start, m.end) for m in mentions if m.type in self.entity_types)
        focus = tuple((m.start, m.end) for m in focus_mentions(text, mentions))
        return entities, focus

    def __call__(self, texts: Sequence[str]) -> TokenizedText:
        from mmclip.text import align_batch

        char_spans = [self._char_spans(t) for t in texts]
        encoding = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_special_tokens_mask=True,
            return_offsets_mapping=True,
            return_tensors="np",
        )
        offsets = encoding.pop("offset_mapping")
        span_offsets, spans = align_batch(offsets, [c[0] for c in char_spans])
        focus_offsets, focus_spans = align_batch(offsets, [c[1] for c in char_spans])

        def as_long(array: Any) -> Tensor:
            return torch.as_tensor(array, dtype=torch.int64)

        return TokenizedText(
            input_ids=as_long(encoding["input_ids"]),
            attention_mask=as_long(encoding["attention_mask"]),
            special_tokens_mask=as_long(encoding["special_tokens_mask"]),
            span_offsets=as_long(span_offsets),
            spans=as_long(spans).reshape(-1, 2),
            focus_offsets=as_long(focus_offsets),
            focus_spans=as_long(focus_spans).reshape(-1, 2),
        )


@functools.lru_cache(maxsize=65536)
def _report_labels(report: str) -> tuple[tuple[str, int], ...]:
    from mmclip.text import label_report

    return tuple((k, int(v)) for k, v in label_report(report).items() if v is not None)


class DiseaseKindPrompter:
    """The default :class:`Prompter`, on :mod:`mmclip.text`.

    Records with labels get :func:`mmclip.text.build_prompt` of them; a report without labels
    is labelled by the radiology labeler and prompted with :func:`mmclip.text.report_prompt`
    (which keeps the laterality the report states).
    """

    def __init__(self, include_negatives: int = 0) -> None:
        self.include_negatives = include_negatives

    def labels(self, record: XrayRecord) -> Mapping[str, int]:
        if record.labels:
            return record.labels
        if record.report is not None:
            return dict(_report_labels(record.report))
        return {}

    def prompt(self, record: XrayRecord, seed: int) -> str:
        from mmclip.text import build_prompt, report_prompt

        if record.labels or record.report is None:
            return build_prompt(record.labels, seed=seed, include_negatives=self.include_negatives)
        return report_prompt(record.report, seed=seed, include_negatives=self.include_negatives)


def sort_by_kind(records: Sequence[XrayRecord]) -> list[XrayRecord]:
    """``records`` in batch order: stably sorted by :class:`~mmclip.batch.SampleKind`.

    The loader sorts a batch's records before reading its images, so the image rows come out
    in the order :class:`~mmclip.batch.MMCLIPBatch` needs without a copy.
    """
    return sorted(records, key=lambda record: int(record.kind))


def build_batch(
    records: Sequence[XrayRecord],
    images: Tensor | None,
    text_encoder: ReportTokenizer | None,
    prompter: Prompter | None,
    seed: int,
) -> MMCLIPBatch:
    """Assemble one batch, its samples sorted by kind (:func:`sort_by_kind`).

    Args:
        records: the ``B`` samples.
        images: float [Bi, 1, S, S], one row per record with an image, in record order
            (permuted with the records when they are not sorted yet).
        text_encoder: tokeniser for reports and prompts (``None``: a batch without text,
            allowed only when no sample needs one).
        prompter: disease-kind prompts (``None``: IMAGE_PROMPT and TEXT_ONLY prompts are
            not available — an error if such a sample is present).
        seed: seeds the prompt template choice of each sample (``seed + i``, ``i`` its
            position in the sorted batch).
    """
    with_image = [r for r in records if r.kind != SampleKind.TEXT_ONLY]
    if images is not None and images.shape[0] != len(with_image):
        raise ValueError(f"{images.shape[0]} images for {len(with_image)} samples with an image")
    ordered = sort_by_kind(records)
    if images is not None and ordered != list(records):
        row_of = {id(r): i for i, r in enumerate(with_image)}
        order = [row_of[id(r)] for r in ordered if r.kind != SampleKind.TEXT_ONLY]
        images = images[torch.tensor(order, dtype=torch.int64, device=images.device)]
    texts: list[str] = []
    prompts: list[str] = []
    prompt_label = []
    for i, record in enumerate(ordered):
        kind = record.kind
        needs_prompt = kind in (SampleKind.IMAGE_PROMPT, SampleKind.TEXT_ONLY)
        if needs_prompt and prompter is None:
            raise ValueError(f"{record.source}: {kind.name} samples need a prompter")
        if kind == SampleKind.IMAGE_ONLY:
            prompt_label.append(-1)
            continue
        labels = prompter.labels(record) if prompter is not None else record.labels
        prompt_label.append(disease_kind_id(labels))
        if kind == SampleKind.IMAGE_PROMPT:
            assert prompter is not None
            texts.append(prompter.prompt(record, seed + i))
        else:
            assert record.report is not None
            texts.append(record.report)
        if kind == SampleKind.TEXT_ONLY:
            assert prompter is not None
            prompts.append(prompter.prompt(record, seed + i))
    text_fields: dict[str, Tensor | None] = {}
    if texts:
        if text_encoder is None:
            raise ValueError("samples with text need a text encoder (tokenizer)")
        tok = text_encoder(texts)
        text_fields = {
            "input_ids": tok.input_ids,
            "attention_mask": tok.attention_mask,
            "special_tokens_mask": tok.special_tokens_mask,
            "span_offsets": tok.span_offsets,
            "spans": tok.spans,
            "focus_offsets": tok.focus_offsets,
            "focus_spans": tok.focus_spans,
        }
    if prompts:
        assert text_encoder is not None
        ptok = text_encoder(prompts)
        text_fields["prompt_input_ids"] = ptok.input_ids
        text_fields["prompt_attention_mask"] = ptok.attention_mask
    return MMCLIPBatch(
        kind=torch.tensor([int(r.kind) for r in ordered], dtype=torch.int64),
        images=images,
        prompt_label=torch.tensor(prompt_label, dtype=torch.int64),
        **text_fields,  # type: ignore[arg-type]
    )
