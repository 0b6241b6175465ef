"""Behaviour tests of the ``mmclip`` command line (``mmclip.cli:main``), run in-process, plus a
few subprocess runs of the installed entry points."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import mmclip
from mmclip.cli import build_parser, main
from mmclip.data import list_sources, synthetic
from mmclip.models import get_model_config, list_models
from mmclip.train.config import ConfigError

REPORTS = [
    "Small left pleural effusion.",
    "No pleural effusion or pneumothorax.",
    "The heart is enlarged. Cardiomegaly.",
    "Findings consistent with right consolidation.",
]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` → (exit code, stdout, stderr); argparse's own exits count too."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *names: str) -> str:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("mmclip: error: ")
    for name in names:
        assert name in line
    return line


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("mmclip: error:")]


def evaluation_argv(command: str, run_dir: Path, root: Path, out: Path, *extra: str) -> list[str]:
    """``command`` on the saved model and every split of ``root``, to ``out`` on the CPU."""
    model = ["--model", str(run_dir), "--root", str(root), "--split", "all"]
    return [command, *model, *extra, "--out", str(out), "--device", "cpu"]


def encode_argv(model: Path, out: Path, *inputs: str) -> list[str]:
    """``mmclip encode`` of ``inputs`` (``--texts …``, ``--images …``) to ``out`` on the CPU."""
    return ["encode", "--model", str(model), *inputs, "--out", str(out), "--device", "cpu"]


def synthetic_argv(out: Path, num_images: int, *extra: str) -> list[str]:
    """``mmclip data prepare synthetic`` of ``num_images`` images into ``out``."""
    argv = ["data", "prepare", "synthetic", "--out", str(out), "--num-images", str(num_images)]
    return [*argv, *extra]


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every (nested) subcommand of ``parser``, as argv prefixes."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from command_paths(sub, (*prefix, name))


COMMANDS = list(command_paths(build_parser()))


# --------------------------------------------------------------------------------------------
# help, version, listing commands
# --------------------------------------------------------------------------------------------


def test_the_parser_has_the_documented_commands() -> None:
    top = {path[0] for path in COMMANDS}
    assert {
        "demo",
        "pretrain",
        "zeroshot",
        "probe",
        "finetune",
        "retrieval",
        "encode",
        "data",
        "models",
    } <= top
    assert ("data", "prepare") in COMMANDS and ("data", "sources") in COMMANDS


def test_main_help_lists_every_command(capsys) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    assert out.startswith("usage: mmclip")
    for name in {path[0] for path in COMMANDS}:
        assert name in out


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: "-".join(p))
def test_help_of_every_subcommand(capsys, path: tuple[str, ...]) -> None:
    code, out, err = run_cli(capsys, *path, "--help")
    assert code == 0, err
    usage = out.splitlines()[0]
    assert usage.startswith(f"usage: mmclip {' '.join(path)}")
    assert "--debug" in out  # the common options are on every command


def test_version(capsys) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out.strip() == f"mmclip {mmclip.__version__}"


def test_models_lists_the_registry(capsys) -> None:
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    configs, trained = out.strip().split("\n\n")  # then the locally registered models
    assert trained.startswith("trained models in ")
    lines = configs.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == list_models()
    assert {"mmclip-tiny", "mmclip-small", "mmclip-base"} <= set(names)
    for line in lines:
        c = get_model_config(line.split()[0])
        assert f"ViT {c.vision.width}×{c.vision.depth} @ {c.vision.image_size}px" in line
        assert f"embed {c.contrastive.embed_dim}" in line


def test_data_sources_lists_the_adapters(capsys) -> None:
    code, out, _ = run_cli(capsys, "data", "sources")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "synthetic"
    for name in list_sources():
        assert name in lines
    assert "covid-notes (= covid-collection)" in lines


def test_pretrain_dry_run_prints_the_resolved_config(capsys, tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    code, out, err = run_cli(
        capsys,
        "pretrain",
        "--dry-run",
        "--steps",
        "7",
        "--batch-size",
        "3",
        "--out",
        str(out_dir),
        "--set",
        "optim.lr=0.002",
    )
    assert code == 0, err
    config = yaml.safe_load(out)
    assert config["steps"] == 7 and config["batch_size"] == 3
    assert config["optim"]["lr"] == pytest.approx(0.002)
    assert config["out_dir"] == str(out_dir)
    assert "dry run" in err and "nothing was trained" in err
    assert not out_dir.exists()


def _actions(command: str) -> dict[str, argparse.Action]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {o: a for a in sub.choices[command]._actions for o in a.option_strings}


def test_a_training_flag_means_the_same_in_every_command_that_trains() -> None:
    from mmclip.cli._train_flags import FINETUNE_FLAGS, FLAG_HELP, finetune_config
    from mmclip.eval.finetune import FinetuneConfig

    commands = {c: _actions(c) for c in ("pretrain", "demo", "finetune")}
    for flag in ("--batch-size", "--lr", "--steps", "--seed", "--epochs"):
        helps = {c: a[flag].help for c, a in commands.items() if flag in a}
        assert all(h.startswith(FLAG_HELP[flag]) for h in helps.values()), helps
    finetune = commands["finetune"]
    for flag, key, _ in FINETUNE_FLAGS:
        assert finetune[flag].default == getattr(FinetuneConfig(), key)
    args = build_parser().parse_args(
        ["finetune", "--model", "m", "--root", "r", "--epochs", "3", "--lr", "0.01"]
    )
    assert finetune_config(args) == FinetuneConfig(epochs=3, lr=0.01)


# --------------------------------------------------------------------------------------------
# user errors: one line on stderr, exit code 2
# --------------------------------------------------------------------------------------------


def test_unknown_model_name(capsys) -> None:
    code, _, err = run_cli(capsys, "pretrain", "--model", "nope", "--dry-run")
    line = assert_one_line_error(code, err, "'nope'", "model.name")
    for name in list_models():
        assert name in line  # says what exists


def test_bad_config_key(capsys) -> None:
    code, _, err = run_cli(capsys, "pretrain", "--set", "nosuchkey=1", "--dry-run")
    assert_one_line_error(code, err, "nosuchkey")
    code, _, err = run_cli(capsys, "pretrain", "--set", "optim.nosuchlr=1", "--dry-run")
    assert_one_line_error(code, err, "nosuchlr")
    code, _, err = run_cli(capsys, "pretrain", "--set", "steps", "--dry-run")
    assert_one_line_error(code, err, "'steps'")


def test_bad_config_value(capsys) -> None:
    code, _, err = run_cli(capsys, "pretrain", "--steps", "0", "--dry-run")
    assert_one_line_error(code, err, "steps")


def test_missing_config_file(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    code, _, err = run_cli(capsys, "pretrain", "--config", str(missing), "--dry-run")
    assert_one_line_error(code, err, str(missing))


def test_demo_with_too_few_images(capsys, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    code, stdout, err = run_cli(capsys, "demo", "--num-images", "10", "--out", str(out))
    assert_one_line_error(code, err, "--num-images")
    assert stdout == ""
    assert not out.exists()  # nothing written before the check


def test_wrong_model_path(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    for command in ("zeroshot", "probe", "retrieval"):
        code, _, err = run_cli(capsys, command, "--model", str(missing), "--root", str(tmp_path))
        assert_one_line_error(code, err, str(missing))
    code, _, err = run_cli(
        capsys, "encode", "--model", str(missing), "--texts", "x", "--out", str(tmp_path / "x.npy")
    )
    assert_one_line_error(code, err, str(missing))


def test_wrong_dataset_path_for_prepare(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "no-data"
    code, _, err = run_cli(capsys, "data", "prepare", "kermany", "--root", str(missing))
    assert_one_line_error(code, err, str(missing))
    code, _, err = run_cli(capsys, "data", "prepare", "kermany")
    assert_one_line_error(code, err, "--root")


def test_unknown_data_source(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "data", "prepare", "nosuchsource", "--root", str(tmp_path))
    line = assert_one_line_error(code, err, "'nosuchsource'")
    for name in list_sources():
        assert name in line


def test_unknown_command_is_an_argparse_error(capsys) -> None:
    code, _, err = run_cli(capsys, "nosuchcommand")
    assert code == 2
    assert "Traceback" not in err
    assert "invalid choice: 'nosuchcommand'" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv", [(), ("data",)], ids=["top", "data"])
def test_missing_subcommand_prints_that_commands_usage(capsys, argv: tuple[str, ...]) -> None:
    """Exit code 2 and the help of the command whose subcommand is missing (on stderr)."""
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith(f"usage: {' '.join(('mmclip', *argv))} ")
    expected = {path[len(argv)] for path in COMMANDS if len(path) == len(argv) + 1}
    assert expected and all(name in err for name in expected)
    assert "usage: mmclip models" not in err


@pytest.mark.parametrize("where", ["top", "command"])
def test_debug_shows_the_exception(capsys, where: str) -> None:
    argv = ["pretrain", "--model", "nope", "--dry-run"]
    argv = ["--debug", *argv] if where == "top" else [*argv, "--debug"]
    with pytest.raises(ConfigError, match="nope"):
        main(argv)


# --------------------------------------------------------------------------------------------
# data prepare synthetic
# --------------------------------------------------------------------------------------------

MANIFEST_FIELDS = {"image", "report", "labels", "patient_id", "view", "split", "mask", "findings"}


def test_data_prepare_synthetic_writes_a_manifest(capsys, tmp_path: Path) -> None:
    out = tmp_path / "syn"
    code, stdout, err = run_cli(capsys, *synthetic_argv(out, 20, "--size", "32", "--seed", "3"))
    assert code == 0, err
    manifest = out / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 20
    patients = set()
    for row in rows:
        assert MANIFEST_FIELDS <= set(row)
        assert (out / row["image"]).is_file() and (out / row["mask"]).is_file()
        assert not Path(row["image"]).is_absolute()  # relative to the dataset root
        assert row["split"] in ("train", "val", "test")
        assert isinstance(row["report"], str) and row["report"]
        assert all(v in (-1, 0, 1) for v in row["labels"].values())
        assert set(row["findings"]) <= set(synthetic.SYNTHETIC_FINDINGS)
        patients.add(row["patient_id"])
    assert len(patients) == 20  # one patient per sample
    assert f"20 records → {manifest}" in stdout

    from PIL import Image

    with Image.open(out / rows[0]["image"]) as image:
        assert image.size == (32, 32)

    # seeded: the same seed writes the same manifest, another seed a different one
    for seed, same in (("3", True), ("4", False)):
        other = tmp_path / f"syn-{seed}"
        assert run_cli(capsys, *synthetic_argv(other, 20, "--size", "32", "--seed", seed))[0] == 0
        same_text = (other / "manifest.jsonl").read_text() == manifest.read_text()
        assert same_text is same


def test_data_prepare_synthetic_rejects_bad_sizes(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, *synthetic_argv(tmp_path / "s", 5, "--size", "8"))
    assert_one_line_error(code, err, "size")


# --------------------------------------------------------------------------------------------
# encode (and an evaluation command) with a tiny saved model
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory whose ``model/`` holds an untrained mmclip-tiny with a small tokenizer."""
    from mmclip.models import build_wordpiece_tokenizer

    torch.manual_seed(0)
    tokenizer = build_wordpiece_tokenizer(REPORTS * 5, vocab_size=200)
    model = mmclip.create_model("mmclip-tiny", tokenizer=tokenizer)
    root = tmp_path_factory.mktemp("cli-run")
    model.save_pretrained(root / "model")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-data")
    synthetic.write_dataset(root, n=12, size=48, seed=1)
    return root


@pytest.fixture(scope="module")
def loaded(run_dir: Path):
    from mmclip.models import MMCLIPModel

    return MMCLIPModel.from_pretrained(run_dir / "model")


def test_encode_images_and_texts(capsys, tmp_path, run_dir, dataset, loaded) -> None:
    image = sorted((dataset / "images").iterdir())[0]
    out = tmp_path / "sub" / "emb.npz"
    texts = REPORTS[:2]
    inputs = ["--images", str(image), "--texts", *texts]
    code, stdout, err = run_cli(capsys, *encode_argv(run_dir, out, *inputs))
    assert code == 0, err
    assert str(out) in stdout
    with np.load(out) as data:
        assert set(data.files) == {"image_embeds", "text_embeds"}
        img, txt = data["image_embeds"], data["text_embeds"]
    e = loaded.config.contrastive.embed_dim
    assert img.shape == (1, e) and txt.shape == (2, e)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, rtol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(img, loaded.encode_image([str(image)]).numpy(), atol=1e-5)
        np.testing.assert_allclose(txt, loaded.encode_text(texts).numpy(), atol=1e-5)


def test_encode_one_array_to_npy(capsys, tmp_path, run_dir, loaded) -> None:
    out = tmp_path / "txt.npy"
    code, _, err = run_cli(capsys, *encode_argv(run_dir / "model", out, "--texts", REPORTS[2]))
    assert code == 0, err
    arr = np.load(out)
    with torch.no_grad():
        np.testing.assert_allclose(arr, loaded.encode_text([REPORTS[2]]).numpy(), atol=1e-5)


def test_encode_a_dataset(capsys, tmp_path, run_dir, dataset) -> None:
    out = tmp_path / "all.npz"
    argv = evaluation_argv("encode", run_dir, dataset, out, "--backend", "pil")
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    rows = (dataset / "manifest.jsonl").read_text().splitlines()
    with np.load(out) as data:
        assert data["image_embeds"].shape[0] == len(rows)
        paths = [Path(p) for p in data["image_paths"]]
    expected = [dataset / json.loads(r)["image"] for r in rows]
    assert sorted(p.resolve() for p in paths) == sorted(p.resolve() for p in expected)


def test_encode_user_errors(capsys, tmp_path, run_dir) -> None:
    model = str(run_dir)
    code, _, err = run_cli(capsys, "encode", "--model", model, "--out", str(tmp_path / "x.npy"))
    assert_one_line_error(code, err, "--images")

    cases = [
        (["--texts", "a b", "--out", str(tmp_path / "x.txt")], ["'x.txt'", ".npy"]),
        (
            [
                "--texts",
                "a",
                "--images",
                str(tmp_path / "none.png"),
                "--out",
                str(tmp_path / "x.npz"),
            ],
            [str(tmp_path / "none.png")],
        ),
        (
            [
                "--texts",
                REPORTS[0],
                "--images",
                str(_png(tmp_path)),
                "--out",
                str(tmp_path / "x.npy"),
            ],
            [".npz"],
        ),
        (
            ["--root", str(tmp_path / "no-data"), "--out", str(tmp_path / "x.npz")],
            [str(tmp_path / "no-data")],
        ),
    ]
    for extra, names in cases:
        code, _, err = run_cli(capsys, "encode", "--model", model, "--device", "cpu", *extra)
        assert code == 2, err
        assert "Traceback" not in err
        (line,) = error_lines(err)
        for name in names:
            assert name in line
    assert not list(tmp_path.glob("x.*"))


def _png(directory: Path) -> Path:
    from PIL import Image

    path = directory / "grey.png"
    Image.fromarray(np.full((40, 40), 128, np.uint8)).save(path)
    return path


def test_wrong_dataset_path_for_an_evaluation(capsys, tmp_path, run_dir) -> None:
    missing = tmp_path / "no-data"
    for command in ("zeroshot", "retrieval"):
        argv = evaluation_argv(command, run_dir, missing, tmp_path / "res")
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "Traceback" not in err
        (line,) = error_lines(err)
        assert str(missing) in line


def test_unknown_finding(capsys, tmp_path, run_dir, dataset) -> None:
    findings = ["--findings", "Cardiomegaly", "Nosuchfinding"]
    argv = evaluation_argv("zeroshot", run_dir, dataset, tmp_path / "res", *findings)
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "Traceback" not in err
    (line,) = error_lines(err)
    assert "'Nosuchfinding'" in line and "'Cardiomegaly'" not in line
    assert "Cardiomegaly" in line  # listed among the known findings


def test_zeroshot_end_to_end(capsys, tmp_path, run_dir, dataset) -> None:
    out = tmp_path / "zs"
    extra = ["--bootstrap", "10", "--backend", "pil"]
    code, stdout, err = run_cli(capsys, *evaluation_argv("zeroshot", run_dir, dataset, out, *extra))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    zs = results["zero_shot"]
    assert zs["n"] == 12
    assert set(zs["findings"]) == {
        "Consolidation",
        "Pleural Effusion",
        "Cardiomegaly",
        "Pneumothorax",
        "Lung Lesion",
    }
    for metrics in zs["findings"].values():
        assert metrics["n"] <= 12
        if metrics["auroc"] is not None:
            assert 0.0 <= metrics["auroc"] <= 1.0
    assert str(out / "results.json") in stdout


# --------------------------------------------------------------------------------------------
# entry points in a subprocess
# --------------------------------------------------------------------------------------------


def _subprocess(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)


def test_python_m_mmclip_help() -> None:
    proc = _subprocess(sys.executable, "-m", "mmclip", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: mmclip")


def test_console_script_user_error() -> None:
    script = Path(sys.executable).with_name("mmclip")
    if not script.is_file():
        pytest.skip("the mmclip console script is not installed next to the interpreter")
    proc = _subprocess(str(script), "pretrain", "--model", "nope", "--dry-run")
    assert_one_line_error(proc.returncode, proc.stderr, "'nope'")
    assert proc.stdout == ""


def test_error_after_loading_a_model_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-data"
    proc = _subprocess(
        sys.executable,
        "-m",
        "mmclip",
        "zeroshot",
        "--model",
        str(run_dir),
        "--root",
        str(missing),
        "--device",
        "cpu",
    )
    assert_one_line_error(proc.returncode, proc.stderr, str(missing))


def test_encode_refuses_images_and_a_dataset_together(capsys, tmp_path, run_dir, dataset) -> None:
    image = sorted((dataset / "images").iterdir())[0]
    args = ["encode", "--model", str(run_dir), "--images", str(image), "--root", str(dataset)]
    code, _, err = run_cli(capsys, *args, "--out", str(tmp_path / "e.npz"))
    assert_one_line_error(code, err, "--images", "--root", "not both")
    code, _, err = run_cli(capsys, "encode", "--model", str(run_dir), "--texts", "a", "--out",
                           str(tmp_path / "e.txt"))  # fmt: skip
    assert_one_line_error(code, err, ".npy or .npz")
    assert not (tmp_path / "e.npz").exists()


def test_zeroshot_multiclass_writes_json_markdown_and_roc(capsys, tmp_path, run_dir, dataset):
    out = tmp_path / "zs-mc"
    extra = ["--mode", "multiclass", "--bootstrap", "10", "--backend", "pil"]
    code, _, err = run_cli(capsys, *evaluation_argv("zeroshot", run_dir, dataset, out, *extra))
    assert code == 0, err
    zs = json.loads((out / "results.json").read_text())["zero_shot"]
    assert zs["mode"] == "multiclass" and 0.0 <= zs["multiclass_accuracy"] <= 1.0
    markdown = (out / "results.md").read_text()
    assert "multi-class" in markdown and "top-1 accuracy" in markdown
    assert (out / "roc_zeroshot.png").stat().st_size > 0


def test_no_finding_is_a_zero_shot_and_probe_target(capsys, tmp_path, run_dir, dataset) -> None:
    """`No Finding` (normal vs abnormal) needs no finding phrases; the probe needs none at all."""
    for command in ("zeroshot", "probe"):
        out = tmp_path / command
        extra = ["--train-split", "all"] if command == "probe" else []
        extra += ["--findings", "No Finding"]
        code, _, err = run_cli(capsys, *evaluation_argv(command, run_dir, dataset, out, *extra))
        assert code == 0, err
        results = json.loads((out / "results.json").read_text())
        if command == "zeroshot":
            scored = results["zero_shot"]["findings"]["No Finding"]
            assert 0 < scored["n_positive"] < scored["n"]  # normal vs abnormal, both present
            assert scored["auroc"] is not None
        else:
            assert results["linear_probe"]["findings"] == ["No Finding"]


def test_the_probe_accepts_a_label_without_prompt_phrases(capsys, tmp_path, run_dir) -> None:

    root = tmp_path / "data"
    synthetic.write_dataset(root, n=16, size=48, seed=2)
    manifest = root / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for i, row in enumerate(rows):
        row.setdefault("labels", {})["Rare Thing"] = i % 2
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rare = ["--findings", "Rare Thing"]
    probe = evaluation_argv("probe", run_dir, root, tmp_path / "probe", "--train-split", "all")
    code, _, err = run_cli(capsys, *probe, *rare)
    assert code == 0, err
    zeroshot = evaluation_argv("zeroshot", run_dir, root, tmp_path / "zs")
    code, _, err = run_cli(capsys, *zeroshot, *rare)
    assert code == 2 and "zero-shot needs them" in err


def test_probe_with_baselines_puts_them_in_the_same_table(capsys, tmp_path, run_dir, dataset):
    out = tmp_path / "probe"
    extra = ["--train-split", "all", "--findings", "No Finding", "--fractions", "1", "--seeds", "0"]
    extra += ["--baselines", "random-init", "pixel-pca"]
    code, _, err = run_cli(capsys, *evaluation_argv("probe", run_dir, dataset, out, *extra))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert set(results["linear_probe_baselines"]) == {"random-init", "pixel-pca"}
    table = (out / "results.md").read_text()
    assert "| mmclip (this model) |" in table and "| pixel-pca |" in table


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_threads_below_one_or_not_a_number_is_a_usage_error(capsys, value: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "--threads", value])
    assert exit_info.value.code == 2
    assert "argument --threads: must be" in capsys.readouterr().err


def test_data_prepare_synthetic_refuses_a_folder_with_files_unless_forced(capsys, tmp_path) -> None:
    out = tmp_path / "synthetic"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    code, _, err = run_cli(capsys, *synthetic_argv(out, 4))
    assert_one_line_error(code, err, f"{out} already exists; pass --overwrite")
    assert (out / "keep.txt").read_text(encoding="utf-8") == "mine"
    for flag in ("--overwrite", "--force"):  # --force: the older name, kept
        code, _, err = run_cli(capsys, *synthetic_argv(out, 4, flag))
        assert code == 0, err


def test_data_prepare_with_an_unknown_option_is_one_line(capsys, tmp_path) -> None:
    code, _, err = run_cli(
        capsys, "data", "prepare", "kermany", "--root", str(tmp_path), "--option", "bogus=1"
    )
    assert code == 2 and "has no option(s) ['bogus']" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------
# overwrite policy: every command that writes refuses to replace results unless --overwrite
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["zeroshot", "probe", "finetune", "retrieval"])
def test_evaluations_refuse_to_replace_results(capsys, tmp_path, run_dir, dataset, command):
    out = tmp_path / "res"
    out.mkdir()
    (out / "results.json").write_text("{}", encoding="utf-8")
    code, _, err = run_cli(capsys, *evaluation_argv(command, run_dir, dataset, out))
    assert_one_line_error(code, err, f"{out / 'results.json'} already exists", "--overwrite")
    assert (out / "results.json").read_text(encoding="utf-8") == "{}"


def test_zeroshot_replaces_results_with_overwrite(capsys, tmp_path, run_dir, dataset) -> None:
    out = tmp_path / "res"
    pil = ["--bootstrap", "5", "--backend", "pil"]
    argv = evaluation_argv("zeroshot", run_dir, dataset, out, *pil)
    assert run_cli(capsys, *argv)[0] == 0
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, str(out / "results.json"), "--overwrite")
    code, _, err = run_cli(capsys, *argv, "--overwrite")
    assert code == 0, err


def test_encode_refuses_to_replace_its_output(capsys, tmp_path, run_dir) -> None:
    out = tmp_path / "t.npy"
    out.write_bytes(b"mine")
    argv = encode_argv(run_dir, out, "--texts", "a")
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, f"{out} already exists; pass --overwrite")
    assert out.read_bytes() == b"mine"
    code, _, err = run_cli(capsys, *argv, "--overwrite")
    assert code == 0, err
    assert np.load(out).shape[0] == 1


def test_data_prepare_an_adapter_refuses_to_replace_its_manifest(capsys, tmp_path) -> None:
    from PIL import Image

    root = tmp_path / "chest"
    for folder, name in (("NORMAL", "IM-0001-0001.jpeg"), ("PNEUMONIA", "person1_virus_1.jpeg")):
        (root / "train" / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "train" / folder / name)
    argv = ["data", "prepare", "kermany", "--root", str(root)]
    assert run_cli(capsys, *argv)[0] == 0
    manifest = root / "mmclip-kermany.jsonl"
    manifest.write_text("mine\n", encoding="utf-8")
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, f"{manifest} already exists; pass --overwrite")
    assert manifest.read_text(encoding="utf-8") == "mine\n"
    code, _, err = run_cli(capsys, *argv, "--overwrite")
    assert code == 0, err
    assert len(manifest.read_text(encoding="utf-8").splitlines()) == 2


def test_demo_refuses_to_replace_a_previous_demo(capsys, tmp_path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "results.md").write_text("mine", encoding="utf-8")
    code, _, err = run_cli(capsys, "demo", "--out", str(out))
    assert_one_line_error(code, err, f"{out / 'results.md'} already exists; pass --overwrite")
    assert (out / "results.md").read_text(encoding="utf-8") == "mine"


def _tiny_pretrain_argv(dataset: Path, out: Path) -> list[str]:
    from tests.train.test_trainer import TINY

    argv = ["pretrain", "--out", str(out), "--steps", "3", "--save-every", "100", "--device", "cpu"]
    for item in (*TINY, f"data.sources=[{{root: {dataset}}}]"):
        argv += ["--set", item]
    return argv


def test_pretrain_ctrl_c_prints_the_last_checkpoint_and_the_resume_command(
    capsys, tmp_path, dataset, monkeypatch
) -> None:
    import signal

    from mmclip.train.trainer import Trainer

    real_step = Trainer._train_step

    def step_with_ctrl_c(self, step, batches):
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, step, batches)

    monkeypatch.setattr(Trainer, "_train_step", step_with_ctrl_c)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *_tiny_pretrain_argv(dataset, out))
    assert code == 130, err
    checkpoint = out / "checkpoints" / "step-000002"
    assert f"mmclip: interrupted; last checkpoint: {checkpoint}" in err
    assert f"mmclip: continue with: mmclip pretrain --out {out} --resume" in err
    monkeypatch.setattr(Trainer, "_train_step", real_step)
    code, stdout, err = run_cli(capsys, "pretrain", "--out", str(out), "--resume")
    assert code == 0, err
    assert "mmclip pretrain: 3 steps" in stdout


def test_pretrain_refuses_a_run_in_out_unless_overwrite(capsys, tmp_path, dataset) -> None:
    out = tmp_path / "run"
    argv = _tiny_pretrain_argv(dataset, out)
    argv[argv.index("--steps") + 1] = "1"
    assert run_cli(capsys, *argv)[0] == 0
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, f"{out} already holds a run", "--overwrite", "--resume")
    code, _, err = run_cli(capsys, *argv, "--overwrite")
    assert code == 0, err


# --------------------------------------------------------------------------------------------
# data root: MMCLIP_DATA / --data-root for relative dataset paths
# --------------------------------------------------------------------------------------------


def test_data_root_flag_and_env_resolve_relative_roots(
    capsys, tmp_path, run_dir, dataset, monkeypatch
) -> None:
    monkeypatch.setenv("MMCLIP_DATA", "")  # restored after the test: --data-root sets it
    monkeypatch.chdir(tmp_path)
    relative = dataset.name  # a folder under dataset.parent, not under the working directory
    argv = ["encode", "--model", str(run_dir), "--root", relative, "--out", "e.npz"]
    code, _, err = run_cli(capsys, *argv, "--device", "cpu", "--backend", "pil")
    line = assert_one_line_error(code, err, f"dataset path {relative!r} does not exist")
    assert str(tmp_path / relative) in line and "MMCLIP_DATA" in line and "--data-root" in line
    code, _, err = run_cli(capsys, *argv, "--data-root", str(dataset.parent), "--backend", "pil")
    assert code == 0, err
    assert os.environ["MMCLIP_DATA"] == str(dataset.parent.resolve())
    zeroshot = ["zeroshot", "--model", str(run_dir), "--root", relative, "--split", "all"]
    zeroshot += ["--bootstrap", "5", "--backend", "pil", "--out", "zs", "--device", "cpu"]
    code, _, err = run_cli(capsys, *zeroshot)  # MMCLIP_DATA alone
    assert code == 0, err


def test_localize_resolves_a_relative_root_like_the_other_commands(
    capsys, tmp_path, run_dir, monkeypatch
) -> None:
    from tests.eval.test_localization import _write_jsrt

    monkeypatch.setenv("MMCLIP_DATA", "")  # restored after the test: --data-root sets it
    jsrt = _write_jsrt(tmp_path / "datasets" / "jsrt", n_nodule=4, n_normal=2, size=64)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    argv = ["localize", "--model", str(run_dir), "--root", "jsrt", "--split", "all"]
    argv += ["--draws", "2", "--bootstrap", "2", "--limit", "2", "--device", "cpu"]
    argv += ["--backend", "pil"]
    code, _, err = run_cli(capsys, *argv, "--out", "a")
    line = assert_one_line_error(code, err, "dataset path 'jsrt' does not exist")
    assert str(tmp_path / "work" / "jsrt") in line and "--data-root" in line
    code, _, err = run_cli(capsys, *argv, "--out", "a", "--data-root", str(jsrt.parent))
    assert code == 0, err
    setup = json.loads(Path("a/localization.json").read_text(encoding="utf-8"))["setup"]
    assert setup["data_root"] == str(jsrt.resolve())
    code, _, err = run_cli(capsys, *argv, "--out", "b")  # MMCLIP_DATA alone (set above)
    assert code == 0, err
    code, _, err = run_cli(capsys, *argv[:4], str(jsrt), *argv[5:], "--out", "c")  # absolute
    assert code == 0, err


def test_pretrain_reports_the_resolved_path_of_a_missing_dataset(
    capsys, tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv("MMCLIP_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(
        capsys, "pretrain", "--set", "data.sources=[{root: ../shared/data/covid-notes}]"
    )
    line = assert_one_line_error(code, err, "dataset path '../shared/data/covid-notes'")
    assert str((tmp_path / "../shared/data/covid-notes").resolve()) in line
    assert "MMCLIP_DATA" in line and "--data-root" in line


def test_under_torchrun_a_warning_of_every_process_is_printed_by_rank_0_only(
    tmp_path, dataset
) -> None:
    """DDP's reducer warned once per process ('find_unused_parameters=True was specified …')."""
    argv = _tiny_pretrain_argv(dataset, tmp_path / "run")
    argv[argv.index("--steps") + 1] = "1"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    torchrun += ["--nproc-per-node", "2", "-m", "mmclip", "-q", *argv, "--threads", "1"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env.pop("TORCH_CPP_LOG_LEVEL", None)
    proc = subprocess.run(torchrun, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    noted = [line for line in proc.stderr.splitlines() if "find_unused_parameters" in line]
    assert len(noted) <= 1 and all(line.startswith("[rank0]") for line in noted), noted


def test_ranks_other_than_0_quiet_torchs_cpp_warnings() -> None:
    code = "import os, mmclip; print(os.environ.get('TORCH_CPP_LOG_LEVEL'))"
    env = {k: v for k, v in os.environ.items() if k != "TORCH_CPP_LOG_LEVEL"}
    for rank, expected in (("1", "ERROR"), ("0", "None")):
        proc = subprocess.run(
            [sys.executable, "-c", code], env={**env, "RANK": rank}, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert proc.stdout.strip() == expected, proc.stderr


def test_encode_a_dicom_file(capsys, tmp_path, run_dir, loaded) -> None:
    """Before: `cannot identify image file`; now the DICOM reaches the model's image loader."""
    from tests.models.test_image_inputs import write_dicom

    pixels = (np.add.outer(np.arange(40), np.arange(36)) * 50).astype(np.uint16)
    dicom = write_dicom(tmp_path / "x.dcm", pixels, bits=12)
    out = tmp_path / "x.npy"
    argv = ["encode", "--model", str(run_dir), "--images", str(dicom), "--out", str(out)]
    code, _, err = run_cli(capsys, *argv, "--device", "cpu")
    assert code == 0, err
    with torch.no_grad():
        expected = loaded.encode_image([str(dicom)]).numpy()
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)
