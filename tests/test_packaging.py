"""Packaging and repository hygiene: what a CPU install pulls, what git ignores."""

from __future__ import annotations

from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent


def _extras() -> dict[str, list[str]]:
    with open(REPO / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["optional-dependencies"]


def test_the_test_extra_does_not_install_dali_and_the_gpu_extra_does() -> None:
    extras = _extras()
    assert not any("dali" in requirement for requirement in extras["test"])  # CPU machines
    assert any(r.startswith("nvidia-dali") for r in extras["gpu"])
    assert extras["dali"] == extras["gpu"]  # the older name still installs it


def test_the_ci_command_installs_the_test_extra() -> None:
    assert '-e ".[test]"' in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_default_outputs_are_ignored_by_git() -> None:
    lines = (REPO / ".gitignore").read_text(encoding="utf-8").split()
    for folder in ("mmclip-demo", "runs", "results"):  # demo, pretrain, evaluation defaults
        assert f"/{folder}/" in lines, folder


def test_the_build_accepts_a_torch_whose_recorded_version_lacks_the_local_part() -> None:
    """The device image records torch 2.11.0 for the running 2.11.0+cu130 (one build)."""
    import ast

    source = (REPO / "setup.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "same_torch")
    namespace: dict = {}
    exec(compile(ast.Module([func], []), "setup.py", "exec"), namespace)
    same_torch = namespace["same_torch"]
    assert same_torch("2.11.0", "2.11.0+cu130") and same_torch("2.13.0+cpu", "2.13.0")
    assert not same_torch("2.13.0+cpu", "2.13.0+cu130")
    assert not same_torch("2.11.0", "2.13.0")
