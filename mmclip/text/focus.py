"""Where a report points in the image: the spans AttMIM's guidance and the local term read.

A report names findings that are there ("left apical pneumothorax"), findings that might be
("possible right upper lung nodule") and findings that are *not* there ("no pleural
effusion"). Only the first two say where to look. :func:`focus_spans` returns the character
spans of

- finding and device mentions asserted ``present`` or ``uncertain``;
- laterality and anatomy words (``left``, ``apical``, ``upper lobe``) in a sentence that holds
  such a mention (they say where it is);

and leaves out negated mentions, their qualifiers, normal-study phrases ("the lungs are
clear") and every other word. A report without a positive finding has no focus span: the
guidance then falls back to uniform masking for it (DESIGN §1.1 step 3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mmclip.text.ner import EntityMention, extract_entities, report_text

__all__ = ["FOCUS_ASSERTIONS", "focus_mentions", "focus_spans"]

FOCUS_ASSERTIONS: frozenset[str] = frozenset({"present", "uncertain"})
"""Assertions of the finding / device mentions that steer the guidance."""

_POINTED_TYPES = frozenset({"finding", "device"})
_QUALIFIER_TYPES = frozenset({"laterality", "anatomy"})
_SENTENCE_END = re.compile(r"[.;:!?\n]")


def _sentence_ids(text: str, mentions: list[EntityMention]) -> list[int]:
    """Index of the sentence (split at ``. ; : ! ?`` and new lines) of each mention."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    out = []
    for mention in mentions:
        out.append(sum(1 for e in ends if e <= mention.start))
    return out


def focus_mentions(
    report: str | Mapping[str, str], mentions: list[EntityMention] | None = None
) -> list[EntityMention]:
    """The entity mentions of ``report`` that say where to look (see the module docstring).

    Args:
        report: the report text (or its sections).
        mentions: ``extract_entities(report)`` when the caller already has them.
    """
    text = report_text(report)
    if mentions is None:
        mentions = extract_entities(text)
    sentence = _sentence_ids(text, mentions)
    pointed = {
        s
        for s, m in zip(sentence, mentions, strict=True)
        if m.type in _POINTED_TYPES and m.assertion in FOCUS_ASSERTIONS
    }
    return [
        m
        for s, m in zip(sentence, mentions, strict=True)
        if (m.type in _POINTED_TYPES and m.assertion in FOCUS_ASSERTIONS)
        or (m.type in _QUALIFIER_TYPES and s in pointed)
    ]


def focus_spans(report: str | Mapping[str, str]) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of :func:`focus_mentions`, in text order."""
    return [(m.start, m.end) for m in focus_mentions(report)]
