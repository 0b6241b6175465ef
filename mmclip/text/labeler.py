"""Report-level finding labels from entity mentions (CheXpert convention).

Each finding of a label schema gets ``1`` (positive), ``0`` (negative), ``-1`` (uncertain) or
``None`` (not mentioned). Mentions are aggregated as the CheXpert labeler does: a positive
mention beats an uncertain one, which beats a negative one. Mentions in the indication,
comparison and technique sections are ignored.

``"No Finding"`` is ``1`` when no abnormality is positive or uncertain, else ``None``. For the
``chexpert`` schema only the 13 CheXpert pathologies count (support devices do not, as in
CheXpert); for ``chestxray14`` every abnormal finding of the lexicon counts, including those
outside the 14 labels (granuloma, scarring, degenerative change, ...), and support devices.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

from mmclip.text.lexicon import LABEL_SCHEMAS, Lexicon
from mmclip.text.ner import EntityMention, RadiologyNER
from mmclip.text.sections import LABEL_IGNORED_SECTIONS

__all__ = [
    "LabelValue",
    "RadiologyLabeler",
    "findings_for_schema",
    "label_report",
    "label_reports",
]

#: 1 positive, 0 negative, -1 uncertain, None not mentioned.
LabelValue = int | None

_ASSERTION_VALUE = {"present": 1, "uncertain": -1, "absent": 0}
# Aggregation rank: positive > uncertain > negative > not mentioned.
_RANK = {1: 3, -1: 2, 0: 1, None: 0}
NO_FINDING = "No Finding"


def findings_for_schema(schema: str) -> tuple[str, ...]:
    """Output keys of the labeler for ``schema`` (always starting with ``"No Finding"``)."""
    if schema not in LABEL_SCHEMAS:
        raise ValueError(f"unknown label schema {schema!r}; use one of {sorted(LABEL_SCHEMAS)}")
    labels = LABEL_SCHEMAS[schema]
    return labels if NO_FINDING in labels else (NO_FINDING, *labels)


class RadiologyLabeler:
    """Labels reports for one schema (``"chexpert"`` or ``"chestxray14"``)."""

    def __init__(
        self,
        schema: str = "chexpert",
        *,
        lexicon: Lexicon | None = None,
        ner: RadiologyNER | None = None,
        ignore_sections: Iterable[str] = LABEL_IGNORED_SECTIONS,
    ) -> None:
        self.schema = schema
        self.findings = findings_for_schema(schema)
        self.ner = ner if ner is not None else RadiologyNER(lexicon)
        self.ignore_sections = frozenset(ignore_sections)
        strict = schema == "chexpert"
        self._labels: dict[str, tuple[str, ...]] = {}
        self._abnormal: set[str] = set()
        for concept in self.ner.lexicon.concepts:
            labels = tuple(lab for lab in concept.labels_for(schema) if lab != NO_FINDING)
            self._labels[concept.name] = labels
            if strict:
                if any(lab != "Support Devices" for lab in labels):
                    self._abnormal.add(concept.name)
            elif concept.type in ("finding", "device"):
                self._abnormal.add(concept.name)

    def __call__(self, report: str | Mapping[str, str]) -> dict[str, LabelValue]:
        return self.label(report)

    def labels_of(self, concept: str) -> tuple[str, ...]:
        """Labels of this schema that mentions of ``concept`` feed."""
        return self._labels.get(concept, ())

    def label(self, report: str | Mapping[str, str]) -> dict[str, LabelValue]:
        """Labels of one report: ``{finding: 1 | 0 | -1 | None}``."""
        return self.label_mentions(self.ner.extract(report))

    def label_mentions(self, mentions: Sequence[EntityMention]) -> dict[str, LabelValue]:
        """Aggregate already extracted mentions into report labels."""
        result: dict[str, LabelValue] = dict.fromkeys(self.findings)
        abnormal = False
        for mention in mentions:
            if mention.section in self.ignore_sections:
                continue
            value = _ASSERTION_VALUE.get(mention.assertion)
            if value is None or mention.type not in ("finding", "device"):
                continue
            if value != 0 and mention.concept in self._abnormal:
                abnormal = True
            for label in self._labels.get(mention.concept, ()):
                if _RANK[value] > _RANK[result[label]]:
                    result[label] = value
        result[NO_FINDING] = None if abnormal else 1
        return result

    def label_batch(
        self, reports: Iterable[str | Mapping[str, str]]
    ) -> list[dict[str, LabelValue]]:
        """Labels of many reports."""
        return [self.label(r) for r in reports]


@functools.cache
def _default_labeler(schema: str) -> RadiologyLabeler:
    return RadiologyLabeler(schema)


def label_report(
    report: str | Mapping[str, str], schema: str = "chexpert"
) -> dict[str, LabelValue]:
    """Labels of one report with the packaged lexicon (see :class:`RadiologyLabeler`)."""
    findings_for_schema(schema)
    return _default_labeler(schema).label(report)


def label_reports(
    reports: Iterable[str | Mapping[str, str]], schema: str = "chexpert"
) -> list[dict[str, LabelValue]]:
    """Labels of many reports with the packaged lexicon."""
    findings_for_schema(schema)
    return _default_labeler(schema).label_batch(reports)
