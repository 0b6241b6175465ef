"""The model core stays readable: short functions, the objective apart from the towers."""

from __future__ import annotations

import ast
from pathlib import Path

import mmclip.models

MODELS = Path(mmclip.models.__file__).parent


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (f"{path.name}:{node.name}", node.end_lineno - node.lineno + 1)  # type: ignore[operator]
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def test_no_function_of_the_model_core_is_longer_than_80_lines() -> None:
    long = [(name, n) for path in MODELS.glob("*.py") for name, n in _functions(path) if n > 80]
    assert not long, long


def test_the_step_reads_in_at_most_60_lines() -> None:
    lengths = dict(_functions(MODELS / "objective.py")) | dict(_functions(MODELS / "mmclip.py"))
    assert lengths["objective.py:forward"] <= 60
    assert lengths["mmclip.py:forward"] <= 60


def test_heads_are_built_from_sizes_not_towers() -> None:
    source = (MODELS / "objective.py").read_text(encoding="utf-8")
    assert "object.__setattr__" not in source
    assert not (MODELS / "borrow.py").exists()
    for path in MODELS.glob("*.py"):
        assert "scale_source" not in path.read_text(encoding="utf-8"), path.name
