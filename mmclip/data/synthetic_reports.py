"""Templated radiology reports of the synthetic X-rays (:mod:`mmclip.data.synthetic`).

Each drawn finding is described with its laterality and zone ("Patchy consolidation in the
right lower zone."), a faint one is hedged (label ``-1``), and a random selection of the
absent findings is negated, sometimes two in one sentence ("No pneumothorax or pleural
effusion."). The phrases are ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mmclip.data.records import NO_FINDING

__all__ = ["templated_report"]


_POSITIVE: dict[str, tuple[str, ...]] = {
    "consolidation": (
        "There is focal consolidation in the {lobe}.",
        "{Lobe} airspace consolidation, consistent with pneumonia.",
        "Patchy airspace opacity in the {side} {zone} lung compatible with consolidation.",
    ),
    "effusion": (
        "There is a {size} {side} pleural effusion.",
        "{Size} {side} pleural effusion with blunting of the {side} costophrenic angle.",
        "Blunting of the {side} costophrenic angle consistent with a {size} pleural effusion.",
    ),
    "cardiomegaly": (
        "The heart is enlarged.",
        "Cardiomegaly.",
        "Moderate enlargement of the cardiac silhouette, consistent with cardiomegaly.",
    ),
    "pneumothorax": (
        "There is a {side} apical pneumothorax.",
        "Small {side} pneumothorax.",
        "A {side} pneumothorax is present along the lateral chest wall.",
    ),
    "nodule": (
        "There is a {mm} mm nodule in the {side} {zone} lung.",
        "{Side} {zone} lung nodule measuring {mm} mm.",
        "A {mm} mm pulmonary nodule projects over the {side} {zone} lung zone.",
    ),
}
_UNCERTAIN: dict[str, tuple[str, ...]] = {
    "consolidation": (
        "Possible subtle consolidation in the {lobe}.",
        "Faint {side} {zone} opacity; early consolidation cannot be excluded.",
    ),
    "effusion": (
        "Possible trace {side} pleural effusion.",
        "A small {side} pleural effusion cannot be excluded.",
    ),
    "pneumothorax": (
        "Possible tiny {side} apical pneumothorax.",
        "A small {side} pneumothorax cannot be excluded.",
    ),
    "nodule": (
        "Possible {side} {zone} lung nodule.",
        "Questionable nodule in the {side} {zone} lung.",
    ),
}
_NEGATIVE: dict[str, tuple[str, ...]] = {
    "consolidation": ("No focal consolidation.", "There is no focal airspace consolidation."),
    "effusion": ("No pleural effusion.", "There is no pleural effusion."),
    "cardiomegaly": (
        "The heart size is normal.",
        "Heart size is within normal limits.",
        "No cardiomegaly.",
    ),
    "pneumothorax": ("No pneumothorax.", "There is no pneumothorax."),
    "nodule": ("No pulmonary nodule.", "No suspicious pulmonary nodules."),
}
_NEG_PAIR: dict[frozenset[str], tuple[str, ...]] = {
    frozenset({"pneumothorax", "effusion"}): (
        "No pneumothorax or pleural effusion.",
        "There is no pleural effusion or pneumothorax.",
        "No evidence of pneumothorax or effusion.",
    ),
    frozenset({"consolidation", "effusion"}): (
        "No focal consolidation or pleural effusion.",
        "No consolidation or effusion.",
    ),
}
_IMPRESSION_NORMAL = (
    "No acute cardiopulmonary process.",
    "Normal chest radiograph.",
    "No acute cardiopulmonary abnormality.",
)
_IMPRESSION_POSITIVE = {
    "consolidation": "{Lobe} consolidation, likely pneumonia.",
    "effusion": "{Size} {side} pleural effusion.",
    "cardiomegaly": "Cardiomegaly.",
    "pneumothorax": "{Side} pneumothorax.",
    "nodule": "{Side} {zone} lung nodule; recommend follow-up CT.",
}


def _fill(template: str, info: dict[str, object]) -> str:
    side = str(info.get("side", ""))
    zone = str(info.get("zone", ""))
    size = str(info.get("size", "small"))
    lobe = "left lingula" if (side, zone) == ("left", "middle") else f"{side} {zone} lobe"
    return template.format(
        lobe=lobe,
        Lobe=lobe.capitalize(),
        side=side,
        Side=side.capitalize(),
        zone=zone,
        size=size,
        Size=size.capitalize(),
        mm=info.get("mm", ""),
    )


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def templated_report(
    rng: np.random.Generator,
    findings: dict[str, dict[str, object]],
    drawable: Sequence[str],
    label_names: Mapping[str, str],
) -> tuple[str, dict[str, int]]:
    """A templated report of the drawn ``findings`` and the labels it implies.

    Args:
        rng: the sample's generator (phrases, order, which absent findings are negated).
        findings: finding → ``{"side", "zone", "uncertain", ...}`` of what was drawn.
        drawable: every finding the generator can draw (the absent ones may be negated).
        label_names: the CheXpert label name of each finding.

    Returns:
        ``(report, labels)``: "FINDINGS: … IMPRESSION: …" and label → 1 / 0 / -1.
    """
    sentences: list[str] = []
    labels: dict[str, int] = {}
    order = list(findings)
    rng.shuffle(order)
    for name in order:
        info = findings[name]
        if info["uncertain"]:
            sentences.append(_fill(_pick(rng, _UNCERTAIN[name]), info))
            labels[label_names[name]] = -1
        else:
            text = _fill(_pick(rng, _POSITIVE[name]), info)
            sentences.append(text)
            labels[label_names[name]] = 1
            if name == "consolidation":  # the impression calls it pneumonia
                labels["Pneumonia"] = 1
    absent = [n for n in drawable if n not in findings]
    rng.shuffle(absent)
    # Negate a random subset of absent findings, pairing two of them in one sentence sometimes.
    negated = absent[: int(rng.integers(len(absent) + 1))] if absent else []
    remaining = set(negated)
    for pair, options in _NEG_PAIR.items():
        if pair <= remaining and rng.random() < 0.6:
            sentences.append(_pick(rng, options))
            remaining -= pair
    for name in negated:
        if name in remaining:
            sentences.append(_pick(rng, _NEGATIVE[name]))
    for name in negated:
        labels[label_names[name]] = 0
    if not findings and rng.random() < 0.5:
        sentences.append("The lungs are clear.")
    positives = [n for n in order if not findings[n]["uncertain"]]
    if positives:
        impression = " ".join(_fill(_IMPRESSION_POSITIVE[n], findings[n]) for n in positives)
    else:
        impression = _pick(rng, _IMPRESSION_NORMAL)
        if not findings:
            labels[NO_FINDING] = 1
    if not sentences:
        sentences.append("The cardiomediastinal silhouette is within normal limits.")
    report = "FINDINGS: " + " ".join(sentences) + "\nIMPRESSION: " + impression
    return report, labels
