"""Rule-based named-entity recognition for chest X-ray reports with NegEx-style assertions.

Pipeline for one report:

1. the report (a string, or a mapping of section texts) is split into sections and sentences;
2. one trie-shaped regex finds lexicon mentions (longest match at each start, no overlaps);
3. one trie-shaped regex finds assertion triggers (negation, uncertainty, pseudo, termination);
4. each finding / device mention takes the assertion of the nearest trigger in scope: a
   pre-trigger before it (at most ``max_pre_words`` words away) or a post-trigger after it (at
   most ``max_post_words`` words away), in the same sentence, with no termination trigger
   (``but``, ``however``, ``which``, ...) in between. A list under one trigger ("no evidence of
   pneumothorax or effusion") is therefore negated as a whole. High-confidence hedges
   ("probable", "most likely") give ``likely_assertion`` (``present`` by default; pass
   ``"uncertain"`` for the CheXpert convention).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping
from dataclasses import dataclass

from mmclip.text.lexicon import Concept, Lexicon, load_lexicon
from mmclip.text.matcher import PhraseMatcher, casefold_same_length, plural_forms
from mmclip.text.sections import format_report, sentence_bounds, split_sections

__all__ = ["EntityMention", "RadiologyNER", "extract_entities", "report_text"]

_NEG, _UNC, _WEAK, _LIKELY, _PSEUDO, _TERM = 0, 1, 2, 3, 4, 5
_KIND_INFO: dict[str, tuple[int, bool, bool]] = {
    "pre_negation": (_NEG, True, False),
    "post_negation": (_NEG, False, True),
    "pre_uncertainty": (_UNC, True, False),
    "post_uncertainty": (_UNC, False, True),
    "pre_likely": (_LIKELY, True, False),
    "post_likely": (_LIKELY, False, True),
    "relation_uncertainty": (_WEAK, True, False),
    "pseudo": (_PSEUDO, False, False),
    "termination": (_TERM, False, False),
}
_ASSERTED_TYPES = frozenset({"finding", "device"})
_POLARITY_NAMES = (
    "negation",
    "uncertainty",
    "relation uncertainty",
    "likely",
    "pseudo",
    "termination",
)


@dataclass(frozen=True, slots=True)
class EntityMention:
    """One entity mention in a report.

    ``start``/``end`` are character offsets into the report text (end exclusive); ``concept``
    is the canonical lexicon concept; ``assertion`` is ``present``, ``absent`` or ``uncertain``
    (always ``present`` for anatomy, laterality and normal-study mentions); ``section`` is the
    canonical section name; ``laterality`` is ``right``/``left``/``bilateral`` when a laterality
    word qualifies the mention.
    """

    start: int
    end: int
    text: str
    type: str
    concept: str
    assertion: str
    section: str
    laterality: str | None = None

    @property
    def canonical(self) -> str:
        """The canonical concept name (alias of ``concept``)."""
        return self.concept

    @property
    def span(self) -> tuple[int, int]:
        """``(start, end)`` character span."""
        return self.start, self.end


def report_text(report: object) -> str:
    """The text of a report given as a string or as a mapping of section texts."""
    if isinstance(report, str):
        return report
    if isinstance(report, Mapping):
        return format_report(report)
    raise TypeError(
        f"a report must be a str or a mapping of section texts, got {type(report).__name__}"
    )


class RadiologyNER:
    """Compiled entity recognizer for one lexicon (build once, call many times)."""

    def __init__(
        self,
        lexicon: Lexicon | None = None,
        *,
        max_pre_words: int = 12,
        max_post_words: int = 5,
        likely_assertion: str = "present",
    ) -> None:
        if likely_assertion not in ("present", "uncertain"):
            raise ValueError(
                f"likely_assertion must be 'present' or 'uncertain', got {likely_assertion!r}"
            )
        self.likely_assertion = likely_assertion
        self.lexicon = lexicon if lexicon is not None else load_lexicon()
        self.max_pre_words = max_pre_words
        self.max_post_words = max_post_words
        phrases: dict[str, Concept] = {}
        patterns: list[tuple[str, Concept]] = []
        for concept in self.lexicon.concepts:
            for term in concept.terms:
                forms = plural_forms(term) if concept.type != "laterality" else [term]
                for form in forms:
                    # An explicit term always beats a generated plural of another term.
                    if form == term or form not in phrases:
                        phrases[form] = concept
            patterns.extend((p, concept) for p in concept.patterns)
        self._mentions: PhraseMatcher[Concept] = PhraseMatcher(phrases, patterns)
        trigger_info: dict[str, list] = {}
        for kind, items in self.lexicon.triggers.items():
            polarity, pre, post = _KIND_INFO[kind]
            for phrase in items:
                info = trigger_info.setdefault(phrase, [polarity, False, False])
                if info[0] != polarity:
                    raise ValueError(
                        f"lexicon {self.lexicon.source}: trigger {phrase!r} is listed both as "
                        f"{_POLARITY_NAMES[info[0]]} and as {_POLARITY_NAMES[polarity]}"
                    )
                info[1] |= pre
                info[2] |= post
        self._triggers: PhraseMatcher[tuple[int, bool, bool]] = PhraseMatcher(
            {k: (v[0], v[1], v[2]) for k, v in trigger_info.items()}
        )

    def __call__(self, report: str | Mapping[str, str]) -> list[EntityMention]:
        return self.extract(report)

    def extract(self, report: str | Mapping[str, str]) -> list[EntityMention]:
        """Entity mentions of ``report``, sorted by start, never overlapping."""
        text = report_text(report)
        if not text:
            return []
        lowered = casefold_same_length(text)
        mentions = list(self._mentions.finditer(lowered))
        if not mentions:
            return []
        triggers = list(self._triggers.finditer(lowered))
        trigger_starts = [t[0] for t in triggers]
        mention_starts = [m[0] for m in mentions]
        out: list[EntityMention] = []
        for section in split_sections(text):
            for s0, s1 in sentence_bounds(text, section.start, section.end):
                i0 = bisect.bisect_left(mention_starts, s0)
                i1 = bisect.bisect_left(mention_starts, s1)
                if i0 == i1:
                    continue
                j0 = bisect.bisect_left(trigger_starts, s0)
                j1 = bisect.bisect_left(trigger_starts, s1)
                self._sentence(text, lowered, mentions[i0:i1], triggers[j0:j1], section.name, out)
        return out

    def _sentence(
        self,
        text: str,
        lowered: str,
        mentions: list[tuple[int, int, Concept]],
        triggers: list[tuple[int, int, tuple[int, bool, bool]]],
        section: str,
        out: list[EntityMention],
    ) -> None:
        terminations = [(s, e) for s, e, info in triggers if info[0] == _TERM]
        scoped = [(s, e, info) for s, e, info in triggers if info[0] <= _LIKELY]
        lateral = [(s, e, c.name) for s, e, c in mentions if c.type == "laterality"]
        for start, end, concept in mentions:
            ctype = concept.type
            if ctype == "ignore":
                continue
            assertion = "present"
            laterality = None
            if ctype in _ASSERTED_TYPES:
                assertion = self._assertion(lowered, start, end, scoped, terminations)
                if assertion == "present" and concept.assertion is not None:
                    assertion = concept.assertion
                if lateral:
                    laterality = _laterality(lowered, start, end, lateral, mentions)
            out.append(
                EntityMention(
                    start, end, text[start:end], ctype, concept.name, assertion, section, laterality
                )
            )

    def _assertion(
        self,
        lowered: str,
        start: int,
        end: int,
        triggers: list[tuple[int, int, tuple[int, bool, bool]]],
        terminations: list[tuple[int, int]],
    ) -> str:
        best_distance = -1
        best_polarity = -1
        best_start = 0
        for t_start, t_end, (polarity, pre, post) in triggers:
            if start <= t_start and t_end <= end:  # a trigger inside the mention span
                distance = 0
            elif pre and t_end <= start:
                if lowered.count(" ", t_end, start) > self.max_pre_words + 1:
                    continue
                if _blocked(terminations, t_end, start):
                    continue
                distance = start - t_end
            elif post and t_start >= end:
                if lowered.count(" ", end, t_start) > self.max_post_words + 1:
                    continue
                if _blocked(terminations, end, t_start):
                    continue
                distance = t_start - end
            else:
                continue
            if best_distance < 0 or distance < best_distance:
                best_distance, best_polarity, best_start = distance, polarity, t_start
        if best_polarity == _WEAK:
            # "no opacity to suggest pneumonia": a negation before the relation wins.
            for _t_start, t_end, (polarity, pre, _post) in triggers:
                if (
                    polarity == _NEG
                    and pre
                    and t_end <= best_start
                    and lowered.count(" ", t_end, start) <= 2 * self.max_pre_words
                    and not _blocked(terminations, t_end, best_start)
                ):
                    return "absent"
            return "uncertain"
        if best_polarity == _NEG:
            return "absent"
        if best_polarity == _UNC:
            return "uncertain"
        if best_polarity == _LIKELY:
            return self.likely_assertion
        return "present"


def _blocked(terminations: list[tuple[int, int]], lo: int, hi: int) -> bool:
    """Whether a termination trigger lies inside ``[lo, hi)``."""
    for t_start, t_end in terminations:
        if t_start >= lo and t_end <= hi:
            return True
    return False


def _laterality(
    lowered: str,
    start: int,
    end: int,
    lateral: list[tuple[int, int, str]],
    mentions: list[tuple[int, int, Concept]],
) -> str | None:
    """The laterality word qualifying the mention at ``[start, end)``, if any."""
    before = None
    for _l_start, l_end, side in lateral:
        if l_end <= start and lowered.count(" ", l_end, start) <= 4:
            before = (l_end, side)
    if before is not None and not any(
        before[0] <= s and e <= start and c.type in _ASSERTED_TYPES for s, e, c in mentions
    ):
        return before[1]
    for l_start, _l_end, side in lateral:
        if l_start >= end and lowered.count(" ", end, l_start) <= 3:
            return side
    return None


@functools.cache
def _default_ner() -> RadiologyNER:
    return RadiologyNER()


def extract_entities(
    report: str | Mapping[str, str], lexicon: Lexicon | None = None
) -> list[EntityMention]:
    """Entity mentions of one report (see :class:`RadiologyNER`)."""
    ner = _default_ner() if lexicon is None else RadiologyNER(lexicon)
    return ner.extract(report)
