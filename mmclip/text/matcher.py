"""Compiled phrase matchers: one trie-shaped regular expression per phrase set.

A set of literal phrases is compiled into a single character-trie regex, so one left-to-right scan
finds every phrase; at each start the longest phrase wins, and matches never overlap. A space in
a phrase matches any run of whitespace or a hyphen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

from mmclip.text.lexicon import _pattern_source, normalize_term

__all__ = ["PhraseMatcher", "casefold_same_length", "plural_forms", "trie_regex"]

T = TypeVar("T")

_SEPARATOR = r"(?:\s*[\-\u2010-\u2015]\s*|\s+)"
_NORMALIZE_MATCH = re.compile(r"[\s\-\u2010-\u2015]+")
_END = ""


def plural_forms(term: str) -> list[str]:
    """The term with its regular plural forms (``-s``, ``-es``, ``-y`` → ``-ies``)."""
    forms = [term]
    if term[-1:].isalpha():
        forms += [term + "s", term + "es"]
        if term.endswith("y") and len(term) > 2 and term[-2] not in "aeiou":
            forms.append(term[:-1] + "ies")
    return forms


def trie_regex(phrases: Iterable[str]) -> str:
    """Regex source matching any of ``phrases``, longest first at each start position."""
    root: dict[str, dict] = {}
    for phrase in phrases:
        node = root
        for char in phrase:
            node = node.setdefault(char, {})
        node[_END] = {}

    def emit(node: dict[str, dict]) -> str:
        ends_here = _END in node
        branches: list[str] = []
        leaf_chars: list[str] = []
        for char in sorted(k for k in node if k != _END):
            child = node[char]
            if list(child) == [_END] and char != " ":
                leaf_chars.append(char)
            else:
                head = _SEPARATOR if char == " " else re.escape(char)
                branches.append(head + emit(child))
        if leaf_chars:
            if len(leaf_chars) == 1:
                branches.append(re.escape(leaf_chars[0]))
            else:
                branches.append("[" + "".join(re.escape(c) for c in leaf_chars) + "]")
        if not branches:
            return ""
        if ends_here:
            return "(?:" + "|".join(branches) + ")?"
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return emit(root)


def casefold_same_length(text: str) -> str:
    """``text.lower()``, keeping characters whose lower case form has another length."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class PhraseMatcher(Generic[T]):
    """Find non-overlapping phrase matches (literal phrases and regex patterns) in text.

    ``phrases`` maps a normalised phrase to a value; ``patterns`` is a sequence of
    ``(regex, value)`` tried before the literal phrases at each position.
    """

    def __init__(
        self,
        phrases: Mapping[str, T],
        patterns: Iterable[tuple[str, T]] = (),
    ) -> None:
        self._values: dict[str, T] = dict(phrases)
        self._pattern_values: list[T] = []
        alternatives: list[str] = []
        for index, (pattern, value) in enumerate(patterns):
            alternatives.append(f"(?P<p{index}>{_pattern_source(pattern)})")
            self._pattern_values.append(value)
        if self._values:
            alternatives.append(f"(?P<lit>{trie_regex(self._values)})")
        if not alternatives:
            alternatives.append(r"(?!x)x")
        self.regex = re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")

    def finditer(self, lowered: str, start: int = 0, end: int | None = None):
        """Yield ``(start, end, value)`` for each match in already lower-cased text."""
        values = self._values
        pattern_values = self._pattern_values
        end = len(lowered) if end is None else end
        for match in self.regex.finditer(lowered, start, end):
            group = match.lastgroup
            if group == "lit":
                key = _NORMALIZE_MATCH.sub(" ", match.group())
                yield match.start(), match.end(), values[key]
            else:
                yield match.start(), match.end(), pattern_values[int(group[1:])]  # type: ignore[index]

    @staticmethod
    def normalize(phrase: str) -> str:
        """Normalise a phrase the way matches are looked up."""
        return normalize_term(phrase)
