"""bench/recorded.json (what `pytest bench` compares against) matches docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_recorded_median_is_a_figure_of_its_section_in_benchmarks_md() -> None:
    docs = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    recorded = json.loads((REPO / "bench" / "recorded.json").read_text(encoding="utf-8"))
    assert recorded
    for name, entry in recorded.items():
        heading = f"## {entry['section']}"
        assert heading in docs, f"{name}: section {entry['section']!r} not in benchmarks.md"
        section = docs.split(heading, 1)[1].split("\n## ", 1)[0]
        value = entry["median_ms"]
        figure = f"{value:,.3f}".rstrip("0").rstrip(".") if value < 1 else f"{value:,g}"
        assert f"{figure} ms" in section, f"{name}: {figure} ms is not in {entry['section']!r}"
