"""Radiology NER + labeler throughput (reports per second, one CPU core).

Runs over the 3,955 IU (Open-i) reports when ``../shared/data/iu-reports`` is present, otherwise
over synthetic report text of similar length. The goal is >= 5,000 reports/s; the measured rate
is stored in ``extra_info["reports_per_s"]``. Run with ``pytest bench/test_text.py``.
"""

from __future__ import annotations

import random

import numpy as np

from mmclip.text import RadiologyLabeler, align_batch, report_text
from mmclip.text.evaluate_labeler import default_data_dir, load_iu_reports

_SENTENCES = [
    "The heart is normal in size.",
    "Heart size is mildly enlarged.",
    "No pneumothorax or pleural effusion.",
    "There is no focal airspace consolidation.",
    "Small right pleural effusion.",
    "Possible left lower lobe pneumonia.",
    "XXXX opacity in the right upper lobe may represent atelectasis.",
    "Calcified granuloma in the left upper lobe.",
    "Degenerative changes of the thoracic spine.",
    "Left PICC line tip in the SVC.",
    "No acute cardiopulmonary abnormality.",
    "Lungs are clear.",
    "Mild pulmonary edema cannot be excluded.",
]


def _reports() -> tuple[list[str], str]:
    data = default_data_dir()
    if (data / "iu-reports" / "reports.jsonl").is_file():
        return [report_text(r) for r in load_iu_reports(data).values()], "iu-reports"
    rng = random.Random(0)
    texts = [
        "FINDINGS: "
        + " ".join(rng.choices(_SENTENCES, k=5))
        + "\nIMPRESSION: "
        + " ".join(rng.choices(_SENTENCES, k=2))
        for _ in range(4000)
    ]
    return texts, "synthetic"


def test_ner_labeler_throughput(benchmark) -> None:
    texts, source = _reports()
    labeler = RadiologyLabeler("chestxray14")

    def run() -> int:
        return sum(1 for t in texts if labeler.label(t)["No Finding"] == 1)

    normal = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    rate = len(texts) / benchmark.stats.stats.median
    benchmark.group = "text"
    benchmark.extra_info.update(source=source, reports=len(texts), reports_per_s=round(rate))
    assert 0 < normal < len(texts)


def test_align_batch_throughput(benchmark) -> None:
    rng = np.random.default_rng(0)
    batch, length = 256, 128
    widths = rng.integers(1, 8, size=(batch, length - 2))
    ends = np.cumsum(widths + 1, axis=1)
    offsets = np.zeros((batch, length, 2), dtype=np.int64)
    offsets[:, 1:-1, 1] = ends
    offsets[:, 1:-1, 0] = ends - widths
    spans = []
    for b in range(batch):
        starts = np.sort(rng.choice(int(ends[b, -1]) - 20, size=8, replace=False))
        spans.append(np.stack([starts, starts + rng.integers(3, 20, size=8)], axis=1))
    benchmark.group = "text"
    span_offsets, out = benchmark(align_batch, offsets, spans)
    assert span_offsets[-1] == len(out)
