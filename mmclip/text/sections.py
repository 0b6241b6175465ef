"""Report sections (indication, comparison, technique, findings, impression) and sentences."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "LABEL_IGNORED_SECTIONS",
    "SECTION_NAMES",
    "Section",
    "format_report",
    "sentence_bounds",
    "split_sections",
]

#: Canonical section names, in report order. ``body`` is text before any header.
SECTION_NAMES: tuple[str, ...] = (
    "body",
    "indication",
    "comparison",
    "technique",
    "findings",
    "impression",
)

#: Sections whose mentions never feed labels (they describe the request, not the image).
LABEL_IGNORED_SECTIONS: frozenset[str] = frozenset({"indication", "comparison", "technique"})

_HEADER_ALIASES: dict[str, str] = {
    "indication": "indication",
    "indications": "indication",
    "history": "indication",
    "clinical history": "indication",
    "clinical information": "indication",
    "clinical indication": "indication",
    "reason for exam": "indication",
    "reason for examination": "indication",
    "reason for study": "indication",
    "comparison": "comparison",
    "comparisons": "comparison",
    "technique": "technique",
    "examination": "technique",
    "exam": "technique",
    "findings": "findings",
    "finding": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
}

_HEADER_RE = re.compile(
    r"(?im)^[ \t]*("
    + "|".join(
        sorted(
            (re.escape(k).replace(r"\ ", r"[ \t]+") for k in _HEADER_ALIASES), key=len, reverse=True
        )
    )
    + r")[ \t]*:"
)

# A sentence ends after . ! ? ; followed by whitespace or the end, or at a line break.
_SENTENCE_END_RE = re.compile(r"[.!?;]+(?=\s|$)|\n")


@dataclass(frozen=True, slots=True)
class Section:
    """A section of a report: canonical ``name`` and its character range (body only)."""

    name: str
    start: int
    end: int


def split_sections(text: str) -> list[Section]:
    """Split report text at header lines such as ``FINDINGS:`` (case-insensitive).

    Text before the first header is the ``body`` section. Header words themselves are excluded
    from the section ranges. Empty sections are dropped.
    """
    sections: list[Section] = []
    name, start = "body", 0
    for match in _HEADER_RE.finditer(text):
        if match.start() > start or name != "body":
            sections.append(Section(name, start, match.start()))
        name = _HEADER_ALIASES[" ".join(match.group(1).lower().split())]
        start = match.end()
    sections.append(Section(name, start, len(text)))
    return [s for s in sections if text[s.start : s.end].strip()]


def sentence_bounds(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character ranges of the sentences of ``text[start:end]`` (punctuation kept)."""
    end = len(text) if end is None else end
    bounds: list[tuple[int, int]] = []
    pos = start
    for match in _SENTENCE_END_RE.finditer(text, start, end):
        if match.end() > pos:
            bounds.append((pos, match.end()))
        pos = match.end()
    if pos < end:
        bounds.append((pos, end))
    return bounds


def format_report(sections: Mapping[str, object]) -> str:
    """Join section texts into one report with ``NAME:`` header lines.

    Keys that are not section names (e.g. ``id``, ``images`` of a JSON record) are ignored;
    aliases such as ``history`` or ``conclusion`` are accepted. Empty sections are left out.
    """
    parts: list[tuple[int, str, str]] = []
    for key, value in sections.items():
        canonical = _HEADER_ALIASES.get(str(key).lower().strip())
        if canonical is None and key != "body":
            continue
        canonical = canonical or "body"
        if value is None:
            continue
        if not isinstance(value, str):
            raise TypeError(f"section {key!r} must be a string, got {type(value).__name__}")
        if value.strip():
            parts.append((SECTION_NAMES.index(canonical), canonical, value.strip()))
    parts.sort(key=lambda p: p[0])
    return "\n".join(
        text if name == "body" else f"{name.upper()}: {text}" for _, name, text in parts
    )
