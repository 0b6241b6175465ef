"""Guided vs uniform AttMIM, paired by seed, on transfer measures: one command reruns it.

Each arm is the recipe (``--config``, default configs/public-cxr.yaml) with **Kermany out of
pre-training** (its source at ratio 0), so that Kermany zero-shot is a transfer; the arms
differ only in the masking (``guided``: the recipe; ``uniform``: ``attmim.tau_final=inf``),
with the same seeds, data order and budget. Each run is then evaluated on:

- Kermany (paediatric pneumonia, official test split): zero-shot AUROC (a transfer: no
  Kermany image or label was seen) and the linear probe at 1 % of the labels;
- JSRT nodules (adult, held-out 40 % split, never in pre-training): nodule-vs-normal zero-shot
  AUROC and linear probe (100 % of the 60 % training split);
- JSRT localisation with each image's finding text (:mod:`mmclip.eval.localization`):
  pointing game and concentration, beside the text-free baselines measured in the same run;
- the image tower's gradient shares at the end of training (6 real batches).

The table gives each arm's mean ± sd over seeds and the seed-paired difference guided −
uniform with its 95 % t-interval over seeds::

    python examples/decisive_table.py                         # seeds 0 1 2, both arms
    python examples/decisive_table.py --seeds 0 --parallel 2  # a quick look
    python examples/decisive_table.py --with-kermany          # also the recipe with Kermany in

Runs are resumable (a run with ``summary.json`` is not redone). ``--parallel N`` trains N runs
at once (on a GPU). Writes ``decisive.md`` and ``decisive.json`` into ``--out``. Run from the
repository root so that ``../shared/data`` resolves.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from mmclip.eval.ablation import t_interval
from mmclip.io import atomic_write_json, atomic_write_text

logger = logging.getLogger("decisive_table")

ARMS: dict[str, str] = {
    "guided": "text-guided masking (the recipe)",
    "uniform": "uniform masking (`attmim.tau_final=inf`)",
}

COLUMNS: tuple[tuple[str, str], ...] = (
    ("kermany_zs_pneumonia", "Kermany zero-shot pneumonia (transfer)"),
    ("kermany_zs_normal", "Kermany zero-shot 'No Finding' (transfer)"),
    ("kermany_probe_mmclip_0.01", "Kermany probe 1 %"),
    ("jsrt_zs_nodule", "JSRT zero-shot nodule"),
    ("jsrt_probe", "JSRT probe nodule"),
    ("jsrt_pointing_game", "JSRT pointing game"),
    ("jsrt_pointing_game_best_text_free", "JSRT pointing game, best text-free rule"),
    ("jsrt_pointing_game_wrong-text", "JSRT pointing game, wrong text"),
    ("jsrt_concentration", "JSRT concentration"),
    ("jsrt_concentration_best_text_free", "JSRT concentration, best text-free rule"),
    ("jsrt_lesion_hit", "JSRT guided-mask lesion-hit"),
    ("jsrt_lesion_hit_uniform", "JSRT lesion-hit, uniform mask (100 draws)"),
    ("covid_zs", "COVID-19 zero-shot"),
    ("masked_pass_share", "masked-pass gradient share"),
)


def source_index(config: dict, adapter: str) -> int | None:
    """Index of the first data source of ``adapter`` in a parsed recipe, or None."""
    for i, source in enumerate(config.get("data", {}).get("sources", [])):
        if source.get("source") == adapter:
            return i
    return None


def arm_overrides(arm: str, config: dict, kermany_in: bool) -> list[str]:
    """The ``--set`` overrides of an arm (Kermany out unless ``kermany_in``)."""
    sets = [] if arm == "guided" else ["model.overrides.attmim.tau_final=inf"]
    kermany = source_index(config, "kermany")
    if not kermany_in and kermany is not None:
        sets.append(f"data.sources.{kermany}.ratio=0")
    return sets


def paired_interval(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean of ``a - b`` (paired by seed) with its 95 % t-interval over the seeds."""
    return t_interval([x - y for x, y in zip(a, b, strict=True)])


def evaluate_run(run_dir: Path, data: Path, bootstrap: int, config_path: str) -> dict[str, float]:
    """Evaluate one trained run: Kermany / COVID, JSRT zero-shot, probe and localisation."""
    import torch

    from mmclip.data.sources import load_source
    from mmclip.eval import evaluate_public_cxr
    from mmclip.eval.suite import SuiteOptions, run_suite
    from mmclip.models import MMCLIPModel

    model = MMCLIPModel.from_pretrained(run_dir / "model")
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    evaluation = evaluate_public_cxr(
        model, data, run_dir / "eval", baselines=[], n_resamples=bootstrap
    )
    summary = dict(evaluation.summary)
    jsrt_root = data / "jsrt-nodules"
    if jsrt_root.is_dir():
        records = load_source("jsrt", jsrt_root)
        train = [r for r in records if r.split == "train"]
        test = [r for r in records if r.split == "test"]
        options = SuiteOptions(
            retrieval=False, masks=False, n_resamples=bootstrap, fractions=(1.0,), baselines=()
        )
        jsrt = run_suite(
            model,
            train,
            test,
            ("Nodule",),
            run_dir / "eval" / "jsrt",
            options,
            title="JSRT nodules (held-out 40 % split)",
        ).results
        summary["jsrt_zs_nodule"] = float(jsrt["zero_shot"]["findings"]["Nodule"]["auroc"])
        probe = jsrt.get("linear_probe", {}).get("fractions", {})
        if probe:
            summary["jsrt_probe"] = float(next(iter(probe.values()))["mean_auroc"][0])
        from mmclip.eval.localization import best_text_free, evaluate_localization

        loc = evaluate_localization(model, test, train, n_resamples=bootstrap)
        atomic_write_json(run_dir / "eval" / "jsrt-localization.json", loc.to_dict())
        atomic_write_text(run_dir / "eval" / "jsrt-localization.md", loc.markdown() + "\n")
        methods = loc.to_dict()["methods"]
        for measure in ("pointing_game", "concentration", "lesion_hit"):
            for method, values in methods.items():
                key = "jsrt_" + measure if method == "model" else f"jsrt_{measure}_{method}"
                summary[key] = float(values[measure])
            summary[f"jsrt_{measure}_best_text_free"] = best_text_free(methods, measure)
    share_json = run_dir / "gradient-share.json"
    cmd = [
        sys.executable,
        "examples/gradient_share.py",
        "--config",
        config_path,
        "--model",
        str(run_dir / "model"),
        "--json",
        str(share_json),
        "--batches",
        "6",
    ]
    cmd += _run_sets(run_dir)
    subprocess.run(cmd, check=True)
    summary["masked_pass_share"] = json.loads(share_json.read_text())["masked_pass_share"]
    return summary


def _run_sets(run_dir: Path) -> list[str]:
    sets = (
        json.loads((run_dir / "sets.json").read_text()) if (run_dir / "sets.json").is_file() else []
    )
    return ["--set", *sets] if sets else []


def pretrain_command(
    args: argparse.Namespace, run_dir: Path, seed: int, sets: list[str]
) -> list[str]:
    """The ``mmclip pretrain`` command of one run (resumes when checkpoints exist)."""
    cmd = [sys.executable, "-m", "mmclip", "-q", "pretrain", "--config", args.config]
    cmd += ["--out", str(run_dir), "--seed", str(seed)]
    if (run_dir / "checkpoints").is_dir():
        cmd.append("--resume")
    for item in sets:
        cmd += ["--set", item]
    return cmd


def run_all(args: argparse.Namespace, runs: list[tuple[str, int, list[str]]]) -> None:
    """Pre-train, then evaluate, every run without a summary; ``args.parallel`` at a time."""
    pending = []
    for arm, seed, sets in runs:
        run_dir = Path(args.out) / f"{arm}-seed{seed}"
        if (run_dir / "summary.json").is_file():
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "sets.json", [*sets, *args.set])
        pending.append((run_dir, seed, [*sets, *args.set]))
    for stage in ("pretrain", "evaluate"):
        queue = list(pending)
        active: list[tuple[Path, subprocess.Popen]] = []
        while queue or active:
            while queue and len(active) < args.parallel:
                run_dir, seed, sets = queue.pop(0)
                if stage == "pretrain":
                    if (run_dir / "model" / "config.json").is_file():
                        continue
                    cmd = pretrain_command(args, run_dir, seed, sets)
                else:
                    cmd = [
                        sys.executable,
                        __file__,
                        "--evaluate-run",
                        str(run_dir),
                        "--data",
                        args.data,
                        "--bootstrap",
                        str(args.bootstrap),
                        "--config",
                        args.config,
                    ]
                log = open(run_dir / f"{stage}.log", "ab")
                logger.info("%s %s", stage, run_dir.name)
                active.append((run_dir, subprocess.Popen(cmd, stdout=log, stderr=log)))
                log.close()
            time.sleep(2)
            for item in list(active):
                run_dir, proc = item
                if proc.poll() is not None:
                    active.remove(item)
                    if proc.returncode:
                        raise SystemExit(f"{stage} of {run_dir} failed: see {run_dir}/{stage}.log")
                    logger.info("%s %s done", stage, run_dir.name)


def write_table(args: argparse.Namespace, arms: list[str]) -> Path:
    """``decisive.md`` / ``decisive.json`` from the runs' summaries."""
    values: dict[str, dict[str, list[float]]] = {}
    for arm in arms:
        values[arm] = {key: [] for key, _ in COLUMNS}
        for seed in args.seeds:
            path = Path(args.out) / f"{arm}-seed{seed}" / "summary.json"
            summary = json.loads(path.read_text()) if path.is_file() else {}
            for key, _ in COLUMNS:
                values[arm][key].append(float(summary.get(key, math.nan)))
    lines = [
        f"Seeds {args.seeds}; Kermany out of pre-training; `python examples/decisive_table.py "
        f"--config {args.config}` (overrides: {args.set or 'none'}).",
        "",
        "| measure | "
        + " | ".join(f"{a} (mean ± sd)" for a in arms)
        + " | guided − uniform [95 % t-interval over seeds] |",
        "|---|" + "---:|" * (len(arms) + 1),
    ]
    diffs: dict[str, list[float]] = {}
    for key, label in COLUMNS:
        cells = []
        for arm in arms:
            v = np.asarray(values[arm][key])
            v = v[np.isfinite(v)]
            cells.append(
                f"{v.mean():.3f} ± {v.std(ddof=1) if v.size > 1 else 0:.3f}" if v.size else "–"
            )
        diff = "–"
        if "guided" in values and "uniform" in values:
            mean, low, high = paired_interval(values["guided"][key], values["uniform"][key])
            diffs[key] = [mean, low, high]
            if math.isfinite(mean):
                diff = f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {diff} |")
    out = Path(args.out)
    atomic_write_text(out / "decisive.md", "\n".join(lines) + "\n")
    atomic_write_json(
        out / "decisive.json",
        {"values": values, "paired_differences": diffs, "seeds": args.seeds, "config": args.config},
    )
    return out / "decisive.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/public-cxr.yaml", help="the recipe")
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--out", default="runs/decisive", help="output folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument(
        "--with-kermany",
        action="store_true",
        help="also the recipe with Kermany in pre-training (guided, first seed)",
    )
    parser.add_argument("--parallel", type=int, default=1, help="runs at once")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--table-only", action="store_true", help="only write the table from the runs' summaries"
    )
    parser.add_argument("--evaluate-run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.evaluate_run is not None:
        summary = evaluate_run(args.evaluate_run, Path(args.data), args.bootstrap, args.config)
        atomic_write_json(args.evaluate_run / "summary.json", summary)
        return 0
    os.environ.setdefault(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // max(args.parallel, 1)))
    )
    config = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    runs = [
        (arm, seed, arm_overrides(arm, config, False)) for arm in args.arms for seed in args.seeds
    ]
    if args.with_kermany:
        runs.append(("kermany-in", args.seeds[0], arm_overrides("guided", config, True)))
    if not args.table_only:
        run_all(args, runs)
    arms = [*args.arms, *(["kermany-in"] if args.with_kermany else [])]
    logger.info("table: %s", write_table(args, arms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
