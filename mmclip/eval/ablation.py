"""Tables and plots of an ablation: variants × measures, several seeds each.

Used by the ablation runners under ``examples/`` (``attmim_ablation.py`` on the synthetic
X-rays, ``component_ablation.py`` on the public real ones). A table is
``{variant: {measure: [value per seed]}}``; cells are written as mean ± sample sd.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["AblationTable", "add_runner_arguments", "mean_sd", "write_ablation"]

AblationTable = dict[str, dict[str, list[float]]]
"""variant → measure → one value per seed."""


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values.

    Returns:
        ``(mean, nan)`` for one finite value (a spread needs two seeds); ``(nan, nan)``
        when no value is finite.
    """
    finite = [v for v in values if not math.isnan(v)]
    n = len(finite)
    if n == 0:
        return math.nan, math.nan
    mean = sum(finite) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 else math.nan
    return mean, sd


def _markdown(
    table: AblationTable,
    columns: Sequence[tuple[str, str]],
    descriptions: Mapping[str, str],
    footer: str,
) -> str:
    lines = [
        "| variant | " + " | ".join(title for _, title in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for variant, measures in table.items():
        cells = []
        for key, _ in columns:
            mean, sd = mean_sd(measures.get(key, []))
            if math.isnan(mean):
                cells.append("–")
            elif math.isnan(sd):
                cells.append(f"{mean:.3f} (1 seed)")
            else:
                cells.append(f"{mean:.3f} ± {sd:.3f}")
        name = f"{variant}: {descriptions[variant]}" if variant in descriptions else variant
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + footer + "\n"


def _plot(table: AblationTable, columns: Sequence[tuple[str, str]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3.4), dpi=110)
    axes = [axes] if len(columns) == 1 else list(axes)
    names = list(table)
    for ax, (key, column_title) in zip(axes, columns, strict=True):
        stats = [mean_sd(table[v].get(key, [])) for v in names]
        spreads = [0.0 if math.isnan(s) else s for _, s in stats]  # no bar for one seed
        ax.bar(range(len(names)), [m for m, _ in stats], yerr=spreads, capsize=3)
        for i, v in enumerate(names):
            values = table[v].get(key, [])
            ax.scatter([i] * len(values), values, color="k", s=8, zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=7)
        ax.set_title(column_title, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_ablation(
    out_dir: str | Path,
    table: AblationTable,
    columns: Sequence[tuple[str, str]],
    descriptions: Mapping[str, str],
    title: str,
    footer: str = "",
) -> dict[str, Path]:
    """Write ``ablation.json``, ``ablation.md`` (mean ± sd per cell) and ``ablation.png``.

    Args:
        out_dir: the output folder (created).
        table: variant → measure → values, one per seed.
        columns: ``(measure key, column title)`` in table order.
        descriptions: variant → what it changes (the table's first column).
        title: the plot's title.
        footer: a line under the markdown table (seeds, command).

    Returns:
        ``{"json": …, "markdown": …, "plot": …}`` paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "ablation.json",
        "markdown": out / "ablation.md",
        "plot": out / "ablation.png",
    }
    paths["json"].write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(_markdown(table, columns, descriptions, footer), encoding="utf-8")
    _plot(table, columns, title, paths["plot"])
    return paths


def add_runner_arguments(
    parser: argparse.ArgumentParser, variants: Sequence[str], out: str, quick: str
) -> None:
    """The options every ablation runner shares: ``--out``, ``--seeds``, ``--variants``,
    ``--set`` (``quick``: an example override for a short look, e.g. ``steps=300``)."""
    parser.add_argument("--out", default=out, help="output folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--variants", nargs="+", default=list(variants), choices=list(variants), metavar="NAME"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"an extra override for every run (e.g. {quick} for a quick look)",
    )
