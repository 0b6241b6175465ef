"""Tables and plots of an ablation: variants × measures, several seeds each.

Used by the ablation runners under ``examples/`` (``attmim_ablation.py`` on the synthetic
X-rays, ``component_ablation.py`` on the public real ones). A table is
``{variant: {measure: [value per seed]}}``, every variant's lists in the same seed order;
cells are written as mean ± sample sd.

With a ``reference`` variant, a second table gives each variant's difference from it *paired
by seed*: the same seed fixes the initialisation and the data order, so the paired difference
removes the seed-to-seed spread that the two separate means still carry.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmclip.io import atomic_save_figure, atomic_write_json, atomic_write_text

__all__ = [
    "AblationTable",
    "add_runner_arguments",
    "mean_sd",
    "paired_differences",
    "t_interval",
    "write_ablation",
]

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


T_975: dict[int, float] = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
}
"""Student's t quantile 0.975 by degrees of freedom (1.96 beyond)."""


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean of the finite values with its 95 % Student-t interval (``nan`` bounds below two).

    For seed-paired differences this is the interval of the mean difference over seeds.
    """
    mean, sd = mean_sd(values)
    n = sum(1 for v in values if not math.isnan(v))
    if n < 2 or math.isnan(sd):
        return mean, math.nan, math.nan
    half = T_975.get(n - 1, 1.96) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_differences(table: AblationTable, reference: str) -> AblationTable:
    """Each variant's value minus ``reference``'s, seed by seed.

    Args:
        table: variant → measure → values, all variants in the same seed order.
        reference: the variant to subtract (usually ``"full"``).

    Returns:
        variant → measure → differences, for every variant but ``reference``. A seed missing
        (NaN) on either side gives NaN, which :func:`mean_sd` leaves out.

    Raises:
        KeyError: ``reference`` is not a variant of ``table``.
    """
    if reference not in table:
        raise KeyError(f"reference variant {reference!r} is not in the table: {list(table)}")
    base = table[reference]
    out: AblationTable = {}
    for variant, measures in table.items():
        if variant == reference:
            continue
        out[variant] = {}
        for key, values in measures.items():
            ref = base.get(key, [])
            differences = [v - r for v, r in zip(values, ref, strict=False)]
            out[variant][key] = differences + [math.nan] * (len(values) - len(differences))
    return out


def _cell(values: Sequence[float], signed: bool = False) -> str:
    mean, sd = mean_sd(values)
    if math.isnan(mean):
        return "–"
    number = f"{mean:+.3f}" if signed else f"{mean:.3f}"
    if math.isnan(sd):
        return f"{number} (1 seed)"
    if signed:  # a seed-paired difference: its 95 % interval over seeds
        _, low, high = t_interval(values)
        return f"{number} ± {sd:.3f} [{low:+.3f}, {high:+.3f}]"
    return f"{number} ± {sd:.3f}"


def _table_lines(
    table: AblationTable,
    columns: Sequence[tuple[str, str]],
    descriptions: Mapping[str, str],
    signed: bool,
) -> list[str]:
    lines = [
        "| variant | " + " | ".join(title for _, title in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for variant, measures in table.items():
        cells = [_cell(measures.get(key, []), signed) for key, _ in columns]
        name = f"{variant}: {descriptions[variant]}" if variant in descriptions else variant
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _markdown(
    table: AblationTable,
    columns: Sequence[tuple[str, str]],
    descriptions: Mapping[str, str],
    footer: str,
    reference: str | None,
) -> str:
    lines = _table_lines(table, columns, descriptions, signed=False)
    if reference is not None and len(table) > 1:
        lines += [
            "",
            f"Difference from `{reference}`, paired by seed (mean ± sd of the per-seed "
            "differences [95 % t-interval over seeds]):",
            "",
            *_table_lines(paired_differences(table, reference), columns, {}, signed=True),
        ]
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
    atomic_save_figure(fig, path)
    plt.close(fig)


def write_ablation(
    out_dir: str | Path,
    table: AblationTable,
    columns: Sequence[tuple[str, str]],
    descriptions: Mapping[str, str],
    title: str,
    footer: str = "",
    reference: str | None = None,
) -> dict[str, Path]:
    """Write ``ablation.json``, ``ablation.md`` (mean ± sd per cell) and ``ablation.png``.

    Args:
        out_dir: the output folder (created).
        table: variant → measure → values, one per seed.
        columns: ``(measure key, column title)`` in table order.
        descriptions: variant → what it changes (the table's first column).
        title: the plot's title.
        footer: a line under the markdown table (seeds, command).
        reference: a variant of ``table``; when given, ``ablation.md`` also holds each other
            variant's difference from it, paired by seed (:func:`paired_differences`).

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
    atomic_write_json(paths["json"], table)
    atomic_write_text(paths["markdown"], _markdown(table, columns, descriptions, footer, reference))
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
