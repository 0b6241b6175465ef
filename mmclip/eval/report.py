"""Results as JSON and as Markdown tables."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmclip.io import atomic_write_text

from .masks import LesionOverlap
from .probe import FewLabelResult
from .retrieval import RetrievalResult
from .zeroshot import ZeroShotResult

__all__ = [
    "baseline_table",
    "fewlabel_table",
    "lesion_table",
    "retrieval_table",
    "write_json",
    "write_markdown",
    "zero_shot_table",
]


def _f(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _ci(ci: tuple[float, float] | list[float | None]) -> str:
    lo, hi = ci
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return ""
    return f" [{lo:.3f}, {hi:.3f}]"


def zero_shot_table(result: ZeroShotResult) -> str:
    """Finding | n | positives | AUROC [95 % CI] | ACC | F1, plus the macro mean."""
    lines = [
        "| finding | n | positives | AUROC [95% CI] | ACC | F1 |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name, m in result.findings.items():
        lines.append(
            f"| {name} | {m.n} | {m.n_positive} | {_f(m.auroc)}{_ci(m.auroc_ci)} | "
            f"{_f(m.accuracy)} | {_f(m.f1)} |"
        )
    lines.append(f"| **mean** | | | **{_f(result.mean_auroc)}** | | |")
    if result.multiclass_accuracy is not None:
        lines.append(f"\nTop-1 accuracy (multi-class): {_f(result.multiclass_accuracy)}")
    return "\n".join(lines)


def fewlabel_table(result: FewLabelResult) -> str:
    """Label fraction | training images | mean AUROC ± std | per finding."""
    header = "| labels | train images | mean AUROC | " + " | ".join(result.findings) + " |"
    lines = [header, "|---|---:|---|" + "---|" * len(result.findings)]
    for fraction, row in result.fractions.items():
        mean, std = row["mean_auroc"]
        n = row["n_train"][0] if row["n_train"] else 0
        cells = [
            f"{_f(m)} ± {_f(s)}" if not math.isnan(m) else "–"
            for m, s in (row["findings"][f] for f in result.findings)
        ]
        lines.append(
            f"| {100 * fraction:g}% | {n} | {_f(mean)} ± {_f(std)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def baseline_table(probes: Mapping[str, FewLabelResult]) -> str:
    """Method | mean AUROC ± std at each label fraction."""
    fractions = list(next(iter(probes.values())).fractions)
    lines = [
        "| features | " + " | ".join(f"{100 * f:g}% labels" for f in fractions) + " |",
        "|---|" + "---|" * len(fractions),
    ]
    for name, probe in probes.items():
        cells = []
        for fraction in fractions:
            mean, std = probe.fractions[fraction]["mean_auroc"]
            cells.append(f"{_f(mean)} ± {_f(std)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def retrieval_table(result: RetrievalResult) -> str:
    """Direction | R@1 | R@5 | R@10."""
    ks = list(result.image_to_text)
    lines = [
        "| direction | " + " | ".join(f"R@{k}" for k in ks) + " |",
        "|---|" + "---:|" * len(ks),
        "| image → text | " + " | ".join(_f(result.image_to_text[k]) for k in ks) + " |",
        "| text → image | " + " | ".join(_f(result.text_to_image[k]) for k in ks) + " |",
    ]
    return "\n".join(lines) + f"\n\n{result.n} pairs; chance R@1 = {_f(1 / max(1, result.n))}."


def _with_interval(overlap: LesionOverlap, name: str, digits: int = 3) -> str:
    value = getattr(overlap, name)
    lo, hi = overlap.intervals.get(name, (math.nan, math.nan))
    if math.isnan(lo):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def lesion_table(overlap: LesionOverlap) -> str:
    """Attention concentration, pointing game and lesion-hit of guided vs uniform masks."""
    rows = [
        "| images | n | attention concentration | pointing game | lesion-hit, guided mask "
        "| lesion-hit, uniform mask |",
        "|---|---:|---|---|---|---|",
    ]
    groups = [("all with lesions", overlap), *overlap.per_finding.items()]
    for name, part in groups:
        rows.append(
            f"| {name} | {part.n_images} | {_with_interval(part, 'concentration', 2)}× "
            f"| {_with_interval(part, 'pointing_game', 2)} | {_with_interval(part, 'guided')} "
            f"| {_with_interval(part, 'random')} |"
        )
    rows += [
        "",
        f"{100 * overlap.mask_ratio:.0f}% of patches masked; 95% bootstrap intervals over "
        "images. Concentration = share of the text→patch attention on lesion patches "
        f"({_f(overlap.guidance_on_lesions)}) ÷ their area share ({_f(overlap.lesion_area)}); "
        "1× is no information. Pointing game = the most-attended patch is a lesion patch. "
        "Lesion-hit = share of the lesion patches masked. Rows below the first: images whose "
        "only finding is the one named (`several`: more than one finding).",
    ]
    return "\n".join(rows)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None if math.isnan(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "to_dict"):
        return _json_safe(value.to_dict())
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(results: Mapping[str, Any], path: str | Path) -> Path:
    """Write results (objects with ``to_dict`` are converted; NaN → null)."""
    return atomic_write_text(Path(path), json.dumps(_json_safe(results), indent=2) + "\n")


def write_markdown(sections: Mapping[str, str], path: str | Path, title: str) -> Path:
    """Write ``# title`` and one ``## heading`` + body per section."""
    parts = [f"# {title}", ""]
    for heading, body in sections.items():
        parts += [f"## {heading}", "", body.strip(), ""]
    return atomic_write_text(Path(path), "\n".join(parts))
