"""Evaluate the radiology labeler on the Open-i (Indiana University) chest X-ray reports.

Gold standard: NegBio's Open-i labels (14 ChestX-ray14 findings + ``normal``; 1 = present,
0 = absent or not mentioned) for reports of the NLM Open-i Indiana University collection.

Usage::

    python -m mmclip.text.evaluate_labeler [--data DIR] [--uncertain positive|negative]
        [--json out.json] [--markdown out.md]

``DIR`` holds ``iu-reports/reports.jsonl`` and ``iu-reports/openi_gold_labels.csv`` (default:
``$MMCLIP_SHARED_DATA`` or ``../shared/data`` next to the repository root).

A finding counts as predicted positive when the labeler says positive (1); uncertain (-1) counts
as negative by default (``--uncertain negative``: the gold standard codes hedged findings such as
"may represent atelectasis" as absent), or as positive with ``--uncertain positive``. Micro
averages pool the findings with at least one gold-positive report; macro averages the F1 of
findings with at least ``--min-support`` (default 10) gold-positive reports. ``normal`` is
reported on its own row and left out of both averages.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from mmclip.io import atomic_write_json, atomic_write_text
from mmclip.text.labeler import NO_FINDING, RadiologyLabeler
from mmclip.text.lexicon import CHESTXRAY14_FINDINGS

__all__ = [
    "EvaluationResult",
    "FindingScore",
    "default_data_dir",
    "evaluate",
    "load_gold_labels",
    "load_iu_reports",
    "main",
    "to_markdown",
]

REPORT_FIELDS = ("indication", "comparison", "findings", "impression")


@dataclass(frozen=True, slots=True)
class FindingScore:
    """Precision / recall / F1 of one finding."""

    finding: str
    support: int
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class EvaluationResult:
    """Scores per finding plus micro and macro averages."""

    scores: tuple[FindingScore, ...]
    normal: FindingScore
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    macro_findings: tuple[str, ...]
    n_reports: int
    uncertain_positive: bool

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        rows = [
            {**asdict(s), "precision": s.precision, "recall": s.recall, "f1": s.f1}
            for s in (*self.scores, self.normal)
        ]
        return {
            "n_reports": self.n_reports,
            "uncertain_positive": self.uncertain_positive,
            "micro": {
                "precision": self.micro_precision,
                "recall": self.micro_recall,
                "f1": self.micro_f1,
            },
            "macro": {
                "precision": self.macro_precision,
                "recall": self.macro_recall,
                "f1": self.macro_f1,
                "findings": list(self.macro_findings),
            },
            "findings": rows,
        }


def default_data_dir() -> Path:
    """``$MMCLIP_SHARED_DATA`` or ``../shared/data`` relative to the repository root."""
    env = os.environ.get("MMCLIP_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _iu_dir(data_dir: Path) -> Path:
    return data_dir / "iu-reports" if (data_dir / "iu-reports").is_dir() else data_dir


def load_iu_reports(data_dir: str | Path) -> dict[str, dict[str, str]]:
    """``{"CXR<id>": {section: text}}`` from ``iu-reports/reports.jsonl``."""
    path = _iu_dir(Path(data_dir)) / "reports.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"IU reports not found: {path}")
    reports: dict[str, dict[str, str]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                reports[f"CXR{record['id']}"] = {k: record.get(k) or "" for k in REPORT_FIELDS}
    return reports


def load_gold_labels(data_dir: str | Path) -> dict[str, dict[str, int]]:
    """``{"CXR<id>": {label: 0 | 1}}`` from ``iu-reports/openi_gold_labels.csv``."""
    path = _iu_dir(Path(data_dir)) / "openi_gold_labels.csv"
    if not path.is_file():
        raise FileNotFoundError(f"Open-i gold labels not found: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            row["filename"]: {k: int(v) for k, v in row.items() if k != "filename"}
            for row in csv.DictReader(handle)
        }


def _score(name: str, gold: Sequence[int], pred: Sequence[int]) -> FindingScore:
    tp = sum(1 for g, p in zip(gold, pred, strict=True) if g and p)
    fp = sum(1 for g, p in zip(gold, pred, strict=True) if p and not g)
    fn = sum(1 for g, p in zip(gold, pred, strict=True) if g and not p)
    return FindingScore(name, sum(gold), tp, fp, fn)


def evaluate(
    data_dir: str | Path | None = None,
    *,
    uncertain_positive: bool = False,
    min_support: int = 10,
    labeler: RadiologyLabeler | None = None,
    predictions: Mapping[str, Mapping[str, int | None]] | None = None,
) -> EvaluationResult:
    """Score the labeler (or given ``predictions``) against the Open-i gold labels."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    gold = load_gold_labels(data_dir)
    if predictions is None:
        reports = load_iu_reports(data_dir)
        missing = sorted(set(gold) - set(reports))
        if missing:
            raise ValueError(f"{len(missing)} gold reports have no text, e.g. {missing[:3]}")
        labeler = labeler or RadiologyLabeler("chestxray14")
        predictions = {key: labeler.label(reports[key]) for key in gold}
    positive = {1, -1} if uncertain_positive else {1}
    keys = sorted(gold)
    scores = []
    for finding in CHESTXRAY14_FINDINGS:
        g = [gold[k][finding] for k in keys]
        p = [int(predictions[k].get(finding) in positive) for k in keys]
        scores.append(_score(finding, g, p))
    normal = _score(
        "normal",
        [gold[k]["normal"] for k in keys],
        [int(predictions[k].get(NO_FINDING) == 1) for k in keys],
    )
    pooled = [s for s in scores if s.support > 0]
    tp = sum(s.tp for s in pooled)
    fp = sum(s.fp for s in pooled)
    fn = sum(s.fn for s in pooled)
    micro = FindingScore("micro", sum(s.support for s in pooled), tp, fp, fn)
    macro_rows = [s for s in scores if s.support >= min_support]
    n = max(len(macro_rows), 1)
    return EvaluationResult(
        scores=tuple(scores),
        normal=normal,
        micro_precision=micro.precision,
        micro_recall=micro.recall,
        micro_f1=micro.f1,
        macro_precision=sum(s.precision for s in macro_rows) / n,
        macro_recall=sum(s.recall for s in macro_rows) / n,
        macro_f1=sum(s.f1 for s in macro_rows) / n,
        macro_findings=tuple(s.finding for s in macro_rows),
        n_reports=len(keys),
        uncertain_positive=uncertain_positive,
    )


def to_markdown(result: EvaluationResult) -> str:
    """The result as a Markdown table."""
    lines = [
        "| finding | support | TP | FP | FN | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in (*result.scores, result.normal):
        lines.append(
            f"| {s.finding} | {s.support} | {s.tp} | {s.fp} | {s.fn} | {s.precision:.3f} | "
            f"{s.recall:.3f} | {s.f1:.3f} |"
        )
    lines.append(
        f"| **micro** (findings with ≥ 1 positive) | | | | | {result.micro_precision:.3f} | "
        f"{result.micro_recall:.3f} | **{result.micro_f1:.3f}** |"
    )
    lines.append(
        f"| **macro** ({len(result.macro_findings)} findings with ≥ 10 positives) | | | | | "
        f"{result.macro_precision:.3f} | {result.macro_recall:.3f} | **{result.macro_f1:.3f}** |"
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data directory")
    parser.add_argument(
        "--uncertain",
        choices=("positive", "negative"),
        default="negative",
        help="count uncertain labels as negative (default) or positive",
    )
    parser.add_argument("--min-support", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the Markdown table")
    args = parser.parse_args(argv)
    try:
        result = evaluate(
            args.data, uncertain_positive=args.uncertain == "positive", min_support=args.min_support
        )
    except FileNotFoundError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    table = to_markdown(result)
    sys.stdout.write(
        f"Open-i (IU) gold standard: {result.n_reports} reports; uncertain counted as "
        f"{args.uncertain}\n{table}\n"
    )
    if args.json:
        atomic_write_json(args.json, result.to_dict())
    if args.markdown:
        atomic_write_text(args.markdown, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
