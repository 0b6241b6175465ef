"""Disease-kind prompts: sentences describing findings, for image-only and text-only data.

* :func:`build_prompt` turns a label dict (1 / 0 / -1 / None) into a short report-like prompt,
  choosing templates with a seeded random generator;
* :func:`zero_shot_prompts` gives prompt ensembles (``positive`` / ``negative``) for zero-shot
  classification of one finding;
* :func:`report_prompt` labels a report with the radiology labeler and builds its prompt.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from mmclip.text.labeler import NO_FINDING, LabelValue, RadiologyLabeler
from mmclip.text.ner import EntityMention

__all__ = [
    "FINDING_PHRASES",
    "NEGATIVE_TEMPLATES",
    "NORMAL_PROMPTS",
    "POSITIVE_TEMPLATES",
    "UNCERTAIN_TEMPLATES",
    "build_prompt",
    "report_prompt",
    "zero_shot_prompts",
]

#: Surface phrases per finding (CheXpert and ChestX-ray14 names); the first is the default.
FINDING_PHRASES: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": (
        "enlarged cardiomediastinum",
        "widened mediastinum",
        "mediastinal widening",
    ),
    "Cardiomegaly": ("cardiomegaly", "enlarged heart", "cardiac enlargement"),
    "Lung Opacity": ("lung opacity", "airspace opacity", "pulmonary opacity"),
    "Lung Lesion": ("lung lesion", "pulmonary lesion", "pulmonary nodule or mass"),
    "Edema": ("pulmonary edema", "edema", "interstitial edema"),
    "Consolidation": ("consolidation", "airspace consolidation", "lobar consolidation"),
    "Pneumonia": ("pneumonia", "infectious pneumonia", "airspace pneumonia"),
    "Atelectasis": ("atelectasis", "subsegmental atelectasis", "volume loss with atelectasis"),
    "Pneumothorax": ("pneumothorax", "collapsed lung with pneumothorax", "pleural air"),
    "Pleural Effusion": ("pleural effusion", "pleural fluid", "effusion"),
    "Pleural Other": ("pleural thickening", "pleural abnormality", "pleural plaque"),
    "Fracture": ("fracture", "rib fracture", "bone fracture"),
    "Support Devices": ("support devices", "lines and tubes", "a medical device"),
    "Effusion": ("pleural effusion", "pleural fluid", "effusion"),
    "Infiltration": ("infiltrate", "pulmonary infiltrate", "infiltration"),
    "Mass": ("mass", "lung mass", "pulmonary mass"),
    "Nodule": ("nodule", "pulmonary nodule", "lung nodule"),
    "Emphysema": ("emphysema", "emphysematous change", "pulmonary emphysema"),
    "Fibrosis": ("fibrosis", "pulmonary fibrosis", "fibrotic change"),
    "Pleural_Thickening": ("pleural thickening", "thickened pleura", "pleural thickening"),
    "Hernia": ("hiatal hernia", "hernia", "diaphragmatic hernia"),
    # COVID-19 collections (covidx, covid-collection)
    "COVID-19": (
        "COVID-19 pneumonia",
        "viral pneumonia from COVID-19",
        "multifocal opacities typical of COVID-19",
    ),
    "ARDS": (
        "acute respiratory distress syndrome",
        "ARDS",
        "diffuse bilateral airspace opacities of ARDS",
    ),
}

#: Templates for a present finding; ``{phrase}`` is a finding phrase (with laterality).
POSITIVE_TEMPLATES: tuple[str, ...] = (
    "Findings consistent with {phrase}.",
    "There is {phrase}.",
    "{Phrase} is present.",
    "Evidence of {phrase}.",
    "{Phrase}.",
    "The radiograph shows {phrase}.",
)

#: Templates for an absent finding.
NEGATIVE_TEMPLATES: tuple[str, ...] = (
    "No {phrase}.",
    "No evidence of {phrase}.",
    "There is no {phrase}.",
    "{Phrase} is not seen.",
    "Without {phrase}.",
)

#: Templates for an uncertain finding.
UNCERTAIN_TEMPLATES: tuple[str, ...] = (
    "Possible {phrase}.",
    "{Phrase} cannot be excluded.",
    "Findings may represent {phrase}.",
    "Questionable {phrase}.",
)

#: Prompts of a study with no finding.
NORMAL_PROMPTS: tuple[str, ...] = (
    "No acute cardiopulmonary abnormality.",
    "The lungs are clear. Heart size is normal.",
    "Normal chest radiograph.",
    "No active disease.",
    "No acute cardiopulmonary process.",
    "Heart and lungs are within normal limits.",
)

_SIDES = {"right": "right", "left": "left", "bilateral": "bilateral"}


def _phrase(finding: str, rng: random.Random | None, laterality: str | None) -> str:
    phrases = FINDING_PHRASES.get(finding)
    if phrases is None:
        raise ValueError(
            f"no prompt phrases for finding {finding!r}; known: {sorted(FINDING_PHRASES)}"
        )
    phrase = phrases[0] if rng is None else rng.choice(phrases)
    if laterality is not None:
        side = _SIDES.get(laterality)
        if side is None:
            raise ValueError(f"laterality must be one of {sorted(_SIDES)}, got {laterality!r}")
        phrase = f"{side} {phrase}"
    return phrase


def _fill(template: str, phrase: str) -> str:
    return template.format(phrase=phrase, Phrase=phrase[:1].upper() + phrase[1:])


def build_prompt(
    labels: Mapping[str, LabelValue | float],
    *,
    seed: int | random.Random | None = 0,
    laterality: Mapping[str, str] | None = None,
    include_negatives: int = 0,
) -> str:
    """A disease-kind prompt for one label dict.

    Positive findings come first, then uncertain ones, then up to ``include_negatives``
    negative ones; with no positive or uncertain finding the prompt is a normal-study sentence.
    ``NaN`` and ``None`` mean not mentioned. ``laterality`` maps a finding to ``right`` /
    ``left`` / ``bilateral``. The same ``seed`` always gives the same prompt.
    """
    if not isinstance(labels, Mapping):
        raise TypeError(
            f"labels must be a mapping of finding to value, got {type(labels).__name__}"
        )
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    laterality = laterality or {}
    positive, uncertain, negative = [], [], []
    for finding, value in labels.items():
        if finding == NO_FINDING or value is None or value != value:  # NaN check
            continue
        if value == 1:
            positive.append(finding)
        elif value == -1:
            uncertain.append(finding)
        elif value == 0:
            negative.append(finding)
        else:
            raise ValueError(f"label of {finding!r} must be 1, 0, -1 or None, got {value!r}")
    if not positive and not uncertain:
        sentences = [rng.choice(NORMAL_PROMPTS)]
    else:
        sentences = [
            _fill(rng.choice(POSITIVE_TEMPLATES), _phrase(f, rng, laterality.get(f)))
            for f in positive
        ]
        sentences += [
            _fill(rng.choice(UNCERTAIN_TEMPLATES), _phrase(f, rng, laterality.get(f)))
            for f in uncertain
        ]
    chosen_negatives = rng.sample(negative, min(include_negatives, len(negative)))
    sentences += [
        _fill(rng.choice(NEGATIVE_TEMPLATES), _phrase(f, rng, None)) for f in chosen_negatives
    ]
    return " ".join(sentences)


def zero_shot_prompts(finding: str) -> dict[str, list[str]]:
    """Prompt ensembles for zero-shot classification of ``finding``.

    ``{"positive": [...], "negative": [...]}``: every positive template with every phrase, and
    every negative template with every phrase (plus the normal-study prompts for negatives).
    ``"No Finding"`` is normal vs abnormal: the normal-study prompts against the positive
    prompts of every finding.
    """
    if finding == NO_FINDING:
        # Normal vs abnormal (as CheXzero): the normal-study prompts against every finding's
        # default phrase in every positive template.
        abnormal = [
            _fill(t, phrases[0])
            for name, phrases in FINDING_PHRASES.items()
            if name != NO_FINDING
            for t in POSITIVE_TEMPLATES
        ]
        return {"positive": list(NORMAL_PROMPTS), "negative": list(dict.fromkeys(abnormal))}
    phrases = FINDING_PHRASES.get(finding)
    if phrases is None:
        raise ValueError(
            f"no prompt phrases for finding {finding!r}; known: "
            f"{sorted([*FINDING_PHRASES, NO_FINDING])}"
        )
    unique = tuple(dict.fromkeys(phrases))
    positive = [_fill(t, p) for p in unique for t in POSITIVE_TEMPLATES]
    negative = [_fill(t, p) for p in unique for t in NEGATIVE_TEMPLATES]
    return {"positive": positive, "negative": negative + list(NORMAL_PROMPTS)}


def report_prompt(
    report: str | Mapping[str, str],
    *,
    seed: int | random.Random | None = 0,
    labeler: RadiologyLabeler | None = None,
    include_negatives: int = 0,
) -> str:
    """The disease-kind prompt of a report, through the labeler (used for text-only data)."""
    labeler = labeler or _default_labeler()
    mentions = labeler.ner.extract(report)
    labels = labeler.label_mentions(mentions)
    sides = _lateralities(mentions, labeler)
    return build_prompt(labels, seed=seed, laterality=sides, include_negatives=include_negatives)


def _lateralities(mentions: list[EntityMention], labeler: RadiologyLabeler) -> dict[str, str]:
    """The laterality of each label, when all its positive mentions agree on one."""
    seen: dict[str, set[str | None]] = {}
    for mention in mentions:
        if mention.section in labeler.ignore_sections or mention.assertion == "absent":
            continue
        for label in labeler.labels_of(mention.concept):
            seen.setdefault(label, set()).add(mention.laterality)
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1 and None not in v}


_LABELER: RadiologyLabeler | None = None


def _default_labeler() -> RadiologyLabeler:
    global _LABELER
    if _LABELER is None:
        _LABELER = RadiologyLabeler("chexpert")
    return _LABELER
