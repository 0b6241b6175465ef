"""The project's radiology lexicon: concepts, their surface terms and assertion triggers.

The lexicon is a readable JSON file (``mmclip/text/data/lexicon.json``). Each *concept* has a
canonical ``name``, a ``type`` (see :data:`ENTITY_TYPES`), literal ``terms`` (matched
case-insensitively; a space in a term also matches a hyphen or any run of whitespace; regular
plurals are added automatically), optional regular-expression ``patterns`` (non-capturing groups
only; a space matches any run of whitespace), optional ``labels`` mapping a label schema
(``"chexpert"`` or ``"chestxray14"``) to the labels the concept feeds, and an optional default
``assertion`` (e.g. ``"uncertain"`` for borderline findings).

``triggers`` lists NegEx-style phrases by kind (see :data:`TRIGGER_KINDS`): pre-/post-negation
and pre-/post-uncertainty triggers ("possible", "may represent", "cannot be excluded");
pre-/post-likely triggers are high-confidence hedges ("probable", "most likely", "is favored")
whose assertion the recognizer chooses (``present`` by default); ``relation_uncertainty``
triggers ("suggestive of", "to suggest") are uncertainty pre-triggers that a negation before
them overrides ("no opacity to suggest pneumonia" negates pneumonia); ``pseudo`` triggers look
like triggers but are not ("no change"); ``termination`` phrases end a trigger's scope ("but",
"however", "which").

Users extend the lexicon with their own file of the same shape::

    lexicon = Lexicon.load(extra="my_terms.json")

Concepts with an existing name get their terms, patterns and labels merged; new names are added.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mmclip.findings import CHESTXRAY14_FINDINGS, CHEXPERT_FINDINGS

__all__ = [
    "ASSERTIONS",
    "CHESTXRAY14_FINDINGS",
    "CHEXPERT_FINDINGS",
    "ENTITY_TYPES",
    "LABEL_SCHEMAS",
    "TRIGGER_KINDS",
    "Concept",
    "Lexicon",
    "load_lexicon",
    "normalize_term",
]

logger = logging.getLogger(__name__)


#: Label schemas a concept's ``labels`` may name, with the labels each allows.
LABEL_SCHEMAS: dict[str, tuple[str, ...]] = {
    "chexpert": CHEXPERT_FINDINGS,
    "chestxray14": CHESTXRAY14_FINDINGS,
}

#: Concept types. ``finding`` and ``device`` mentions get an assertion; ``ignore`` concepts
#: swallow look-alike phrases and are never reported.
ENTITY_TYPES: tuple[str, ...] = ("finding", "device", "anatomy", "laterality", "normal", "ignore")

#: Assertion values of a mention.
ASSERTIONS: tuple[str, ...] = ("present", "absent", "uncertain")

#: Trigger kinds of the NegEx-style assertion rules.
TRIGGER_KINDS: tuple[str, ...] = (
    "pre_negation",
    "post_negation",
    "pre_uncertainty",
    "post_uncertainty",
    "pre_likely",
    "post_likely",
    "relation_uncertainty",
    "pseudo",
    "termination",
)

_DEFAULT_PATH = "data/lexicon.json"
_SPACE_OR_HYPHEN = re.compile(r"[\s\-\u2010-\u2015]+")


def normalize_term(term: str) -> str:
    """Lower-case a term, turn hyphens into spaces and collapse whitespace."""
    return _SPACE_OR_HYPHEN.sub(" ", term.lower()).strip()


@dataclass(frozen=True, slots=True)
class Concept:
    """One lexicon concept: a canonical name with its surface forms."""

    name: str
    type: str
    terms: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    assertion: str | None = None

    def labels_for(self, schema: str) -> tuple[str, ...]:
        """Labels this concept feeds in ``schema`` (empty when none)."""
        return self.labels.get(schema, ())


def _fail(source: str, where: str, problem: str) -> ValueError:
    return ValueError(f"lexicon {source}: {where}: {problem}")


def _str_list(value: Any, source: str, where: str) -> list[str]:
    if not isinstance(value, list):
        raise _fail(source, where, f"expected a list of strings, got {type(value).__name__}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise _fail(source, where, f"expected non-empty strings, got {item!r}")
    return value


def _parse_concept(raw: Any, source: str, index: int) -> Concept:
    if not isinstance(raw, dict):
        raise _fail(source, f"concept #{index}", f"expected an object, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail(source, f"concept #{index}", f"'name' must be a non-empty string, got {name!r}")
    where = f"concept {name!r}"
    unknown = set(raw) - {"name", "type", "terms", "patterns", "labels", "assertion"}
    if unknown:
        raise _fail(source, where, f"unknown keys {sorted(unknown)}")
    ctype = raw.get("type", "finding")
    if ctype not in ENTITY_TYPES:
        raise _fail(source, where, f"'type' must be one of {ENTITY_TYPES}, got {ctype!r}")
    terms = [normalize_term(t) for t in _str_list(raw.get("terms", []), source, f"{where} terms")]
    patterns = _str_list(raw.get("patterns", []), source, f"{where} patterns")
    for pattern in patterns:
        try:
            compiled = re.compile(_pattern_source(pattern))
        except re.error as exc:
            raise _fail(source, where, f"bad pattern {pattern!r}: {exc}") from None
        if compiled.groups:
            raise _fail(source, where, f"pattern {pattern!r} has capturing groups; use (?:...)")
        if compiled.match(""):
            raise _fail(source, where, f"pattern {pattern!r} matches the empty string")
    if not terms and not patterns:
        raise _fail(source, where, "needs at least one term or pattern")
    labels_raw = raw.get("labels", {})
    if not isinstance(labels_raw, dict):
        raise _fail(source, where, "'labels' must be an object {schema: [labels]}")
    labels: dict[str, tuple[str, ...]] = {}
    for schema, names in labels_raw.items():
        if schema not in LABEL_SCHEMAS:
            raise _fail(
                source, where, f"unknown label schema {schema!r}; use {sorted(LABEL_SCHEMAS)}"
            )
        for label in _str_list(names, source, f"{where} labels[{schema!r}]"):
            if label not in LABEL_SCHEMAS[schema]:
                raise _fail(source, where, f"{label!r} is not a {schema} label")
        labels[schema] = tuple(names)
    assertion = raw.get("assertion")
    if assertion is not None and assertion not in ASSERTIONS:
        raise _fail(source, where, f"'assertion' must be one of {ASSERTIONS}, got {assertion!r}")
    return Concept(name, ctype, tuple(terms), tuple(patterns), labels, assertion)


def _pattern_source(pattern: str) -> str:
    """A lexicon pattern as regex source: a literal space matches any run of whitespace."""
    return pattern.replace(" ", r"\s+")


@dataclass(frozen=True)
class Lexicon:
    """A set of concepts and assertion triggers (immutable; build it with :meth:`load`)."""

    concepts: tuple[Concept, ...]
    triggers: Mapping[str, tuple[str, ...]]
    source: str = "<memory>"

    def __post_init__(self) -> None:
        names = [c.name for c in self.concepts]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"lexicon {self.source}: duplicate concept names {dupes}")

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> Lexicon:
        """Build and validate a lexicon from parsed JSON data."""
        if not isinstance(data, dict):
            raise ValueError(f"lexicon {source}: top level must be an object")
        concepts_raw = data.get("concepts", [])
        if not isinstance(concepts_raw, list):
            raise ValueError(f"lexicon {source}: 'concepts' must be a list")
        concepts = tuple(_parse_concept(c, source, i) for i, c in enumerate(concepts_raw))
        triggers_raw = data.get("triggers", {})
        if not isinstance(triggers_raw, dict):
            raise ValueError(f"lexicon {source}: 'triggers' must be an object")
        triggers: dict[str, tuple[str, ...]] = {}
        for kind, phrases in triggers_raw.items():
            if kind not in TRIGGER_KINDS:
                raise ValueError(
                    f"lexicon {source}: unknown trigger kind {kind!r}; use {TRIGGER_KINDS}"
                )
            items = _str_list(phrases, source, f"triggers[{kind!r}]")
            triggers[kind] = tuple(normalize_term(p) for p in items)
        return cls(concepts, triggers, source)

    @classmethod
    def load(cls, path: str | Path | None = None, *, extra: str | Path | None = None) -> Lexicon:
        """Load the packaged lexicon (or ``path``), then merge the user file ``extra``."""
        if path is None:
            text = resources.files(__package__).joinpath(_DEFAULT_PATH).read_text("utf-8")
            lexicon = cls.from_dict(_parse_json(text, "mmclip:lexicon.json"), "mmclip:lexicon.json")
        else:
            lexicon = cls.from_file(path)
        if extra is not None:
            lexicon = lexicon.merge(cls.from_file(extra))
        return lexicon

    @classmethod
    def from_file(cls, path: str | Path) -> Lexicon:
        """Read and validate one lexicon JSON file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"lexicon file not found: {path}")
        return cls.from_dict(_parse_json(path.read_text("utf-8"), str(path)), str(path))

    def merge(self, other: Lexicon) -> Lexicon:
        """A new lexicon with ``other``'s concepts and triggers added to this one's."""
        merged: dict[str, Concept] = {c.name: c for c in self.concepts}
        for concept in other.concepts:
            old = merged.get(concept.name)
            if old is None:
                merged[concept.name] = concept
                continue
            if old.type != concept.type:
                raise ValueError(
                    f"lexicon {other.source}: concept {concept.name!r} has type "
                    f"{concept.type!r} but the base lexicon says {old.type!r}"
                )
            labels = {k: tuple(v) for k, v in old.labels.items()}
            for schema, names in concept.labels.items():
                labels[schema] = tuple(dict.fromkeys(labels.get(schema, ()) + tuple(names)))
            merged[concept.name] = Concept(
                old.name,
                old.type,
                tuple(dict.fromkeys(old.terms + concept.terms)),
                tuple(dict.fromkeys(old.patterns + concept.patterns)),
                labels,
                concept.assertion or old.assertion,
            )
        triggers = {k: tuple(v) for k, v in self.triggers.items()}
        for kind, phrases in other.triggers.items():
            triggers[kind] = tuple(dict.fromkeys(triggers.get(kind, ()) + tuple(phrases)))
        return Lexicon(tuple(merged.values()), triggers, f"{self.source}+{other.source}")

    def concept(self, name: str) -> Concept:
        """The concept called ``name`` (KeyError when absent)."""
        for concept in self.concepts:
            if concept.name == name:
                return concept
        raise KeyError(f"no concept named {name!r} in lexicon {self.source}")

    def concepts_for_label(self, schema: str, label: str) -> list[Concept]:
        """Concepts that feed ``label`` of ``schema``."""
        return [c for c in self.concepts if label in c.labels_for(schema)]


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"lexicon {source}: not valid JSON: {exc}") from None


@functools.cache
def _default_lexicon() -> Lexicon:
    return Lexicon.load()


def load_lexicon(extra: str | Path | None = None) -> Lexicon:
    """The packaged lexicon (cached), optionally extended with the user file ``extra``."""
    if extra is None:
        return _default_lexicon()
    return _default_lexicon().merge(Lexicon.from_file(extra))
