"""The loss curve plots every loss term of a run's metrics (mmclip.eval.plot_loss_curve)."""

from __future__ import annotations

import json

from mmclip.eval import plots


def test_the_loss_curve_shows_every_term_the_run_logged(tmp_path, monkeypatch) -> None:
    metrics = tmp_path / "metrics.jsonl"
    rows = [
        {"step": s, "loss": 3.0 / s, "clip": 2.0, "local": 0.5, "mim": 0.4, "clip_masked": 2.1}
        for s in (1, 2, 3)
    ]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    seen: dict[str, list[str]] = {}
    save = plots._save

    def capture(plt, fig, path):
        seen["labels"] = fig.axes[0].get_legend_handles_labels()[1]
        return save(plt, fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    out = plots.plot_loss_curve(metrics, tmp_path / "loss.png")
    assert out.stat().st_size > 0
    assert seen["labels"] == ["loss", "clip", "clip_masked", "local", "mim"]  # absent: mlm, tp
