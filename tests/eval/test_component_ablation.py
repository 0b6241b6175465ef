"""The component-ablation runner's variants (examples/component_ablation.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from mmclip.train.config import load_config

REPO = Path(__file__).resolve().parents[2]


def _runner():
    spec = importlib.util.spec_from_file_location(
        "component_ablation", REPO / "examples" / "component_ablation.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("recipe_name", ["public-cxr.yaml", "public-cxr-patch.yaml"])
def test_every_variant_resolves_against_the_recipe(recipe_name: str) -> None:
    runner = _runner()
    path = REPO / "configs" / recipe_name
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    for variant in runner.VARIANTS:
        config = load_config(path, runner.variant_overrides(variant, recipe))
        weights = config.model.overrides.get("loss_weights", {})
        ratios = {s.name: s.ratio for s in config.data.sources}
        if variant == "paired-only":
            kinds = {s.name: s.source for s in config.data.sources}
            assert all(ratios[n] == 0 for n, k in kinds.items() if k in ("kermany", "iu-xray"))
            assert any(r > 0 for r in ratios.values())
        elif variant == "contrastive-only":
            assert all(weights[k] == 0 for k in ("local", "mim", "mlm", "tp"))
        elif variant == "uniform":
            assert config.model.overrides["attmim"]["tau_final"] == float("inf")
        elif variant == "full":
            assert runner.variant_overrides(variant, recipe) == []
    with pytest.raises(ValueError, match="unknown variant"):
        runner.variant_overrides("bogus", recipe)
