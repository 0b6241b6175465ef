"""The trainer on CPU: resume equals the uninterrupted run, a kill mid-save leaves a valid
``latest``, 2 Gloo processes equal 1 process, JSONL metrics and the saved config."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mmclip.data import synthetic
from mmclip.train import Trainer, load_config
from mmclip.train import checkpoint as ckpt
from mmclip.train.config import ConfigError
from mmclip.train.data import load_records, train_tokenizer
from mmclip.train.distributed import init_distributed

TINY = [
    "model.overrides.vision.image_size=32",
    "model.overrides.vision.width=32",
    "model.overrides.vision.depth=1",
    "model.overrides.vision.heads=2",
    "model.overrides.text.hidden_size=32",
    "model.overrides.text.num_layers=1",
    "model.overrides.text.num_heads=2",
    "model.overrides.text.intermediate_size=64",
    "model.overrides.text.max_length=48",
    "model.overrides.text.dropout=0.0",
    "model.overrides.contrastive.embed_dim=16",
    "model.overrides.attmim.decoder_width=16",
    "model.overrides.attmim.decoder_heads=2",
    "model.overrides.attmim.guide_warmup_steps=2",
    "model.overrides.attmim.tau_anneal_steps=2",
    "model.overrides.entmlm.decoder_heads=2",
    "batch_size=8",
    "log_every=1",
    "tensorboard=false",
    "device=cpu",
    "schedule.warmup_steps=2",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.write_dataset(root, n=60, size=48, seed=0)
    # One tokenizer for every run: WordPiece training in `tokenizers` breaks frequency ties
    # in hash order, so two trainings on the same text may differ (a run reuses its own).
    records = load_records("synthetic", root, "train")
    train_tokenizer([records], 300, save_dir=root / "tokenizer")
    return root


def make_config(data_dir: Path, out: Path, *extra: str, paired_only: bool = False):
    sources = [{"name": "reports", "source": "synthetic", "root": str(data_dir), "ratio": 0.5}]
    if paired_only:
        sources[0]["ratio"] = 1.0
    else:
        sources.append(
            {
                "name": "prompts",
                "source": "synthetic",
                "root": str(data_dir),
                "ratio": 0.5,
                "drop_reports": True,
            }
        )
    overrides = [*TINY, f"model.tokenizer={data_dir / 'tokenizer'}", f"out_dir={out}", *extra]
    return load_config(None, overrides, base={"data": {"sources": sources}})


def single():
    return init_distributed("cpu")


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resume_reproduces_the_uninterrupted_run(data_dir, tmp_path):
    full = make_config(data_dir, tmp_path / "full", "steps=6", "save_every=3")
    reference = Trainer(full, dist_info=single(), tty=False).fit()
    assert sorted(reference.losses) == [1, 2, 3, 4, 5, 6]

    part = make_config(data_dir, tmp_path / "part", "steps=6", "save_every=3")
    first = Trainer(part, dist_info=single(), tty=False).fit(stop_after=3)
    assert first.step == 3 and first.model_dir is None
    assert ckpt.latest_checkpoint(tmp_path / "part").name == "step-000003"
    resumed = Trainer(part, resume=True, dist_info=single(), tty=False).fit()
    assert resumed.step == 6
    for step in (4, 5, 6):
        assert resumed.losses[step] == pytest.approx(reference.losses[step], rel=1e-6), step
    # every metric of the resumed steps, not just the loss
    ref_rows = {r["step"]: r for r in read_metrics(tmp_path / "full")}
    got_rows = {r["step"]: r for r in read_metrics(tmp_path / "part")}
    for step in (4, 5, 6):
        for key in ("clip", "mim", "mlm", "lr"):
            assert got_rows[step][key] == pytest.approx(ref_rows[step][key], rel=1e-6), key


def test_a_new_run_refuses_an_output_folder_that_holds_one(data_dir, tmp_path):
    config = make_config(data_dir, tmp_path / "run", "steps=1")
    Trainer(config, dist_info=single(), tty=False).fit()
    with pytest.raises(ckpt.CheckpointError, match="--resume"):
        Trainer(config, dist_info=single(), tty=False)


def test_step_folders_without_latest_are_a_run_that_is_refused_then_resumed(data_dir, tmp_path):
    out = tmp_path / "run"
    config = make_config(data_dir, out, "steps=4", "save_every=2")
    Trainer(config, dist_info=single(), tty=False).fit(stop_after=2)
    (out / "checkpoints" / "latest").unlink()
    config_before = (out / "config.yaml").read_bytes()
    with pytest.raises(ckpt.CheckpointError, match=r"already holds a run \(step-000002"):
        Trainer(config, dist_info=single(), tty=False)
    assert (out / "checkpoints" / "step-000002").is_dir()  # nothing pruned or replaced
    assert (out / "config.yaml").read_bytes() == config_before
    resumed = Trainer(config, resume=True, dist_info=single(), tty=False).fit()
    assert resumed.step == 4


def test_resume_names_what_changed_and_refuses_what_breaks_an_exact_resume(
    data_dir, tmp_path, caplog
):
    out = tmp_path / "run"
    Trainer(
        make_config(data_dir, out, "steps=4", "save_every=2"), dist_info=single(), tty=False
    ).fit(stop_after=2)
    changed = make_config(data_dir, out, "steps=4", "save_every=2", "batch_size=4")
    with pytest.raises(ConfigError, match=r"batch_size: 8 -> 4.*--force-resume"):
        Trainer(changed, resume=True, dist_info=single(), tty=False)
    knob = make_config(
        data_dir, out, "steps=4", "save_every=2", "model.overrides.attmim.mask_ratio=0.6"
    )
    with pytest.raises(ConfigError, match=r"model\.overrides\.attmim\.mask_ratio"):
        Trainer(knob, resume=True, dist_info=single(), tty=False)
    forced = Trainer(changed, resume=True, dist_info=single(), tty=False, force_resume=True)
    assert forced.step == 2
    with caplog.at_level("WARNING"):
        longer = make_config(data_dir, out, "steps=5", "save_every=2")
        Trainer(longer, resume=True, dist_info=single(), tty=False)
    assert "resume: steps changed from 4 to 5" in caplog.text
    shorter = make_config(data_dir, out, "steps=1", "save_every=2")
    with pytest.raises(ConfigError, match="at step 2, past steps=1"):
        Trainer(shorter, resume=True, dist_info=single(), tty=False)


def test_a_truncated_trainer_state_falls_back_to_the_previous_checkpoint(data_dir, tmp_path):
    out = tmp_path / "run"
    config = make_config(data_dir, out, "steps=4", "save_every=1")
    Trainer(config, dist_info=single(), tty=False).fit(stop_after=3)
    newest = ckpt.latest_checkpoint(out)
    state = newest / ckpt.TRAINER_STATE
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(ckpt.UnreadableCheckpointError, match=r"trainer\.pt is unreadable"):
        ckpt.load_checkpoint(newest)  # named explicitly: no fallback
    loaded = ckpt.load_checkpoint(out)
    assert loaded.step == 2 and loaded.path.name == "step-000002"


def test_a_kill_while_saving_leaves_latest_on_the_previous_complete_checkpoint(
    data_dir, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    config = make_config(data_dir, out, "steps=4", "save_every=2")
    trainer = Trainer(config, dist_info=single(), tty=False)
    real_publish = ckpt.publish_checkpoint
    import mmclip.train.trainer as trainer_module

    def killed(out_dir, step, world_size, keep=2):
        if step == 4:
            raise KeyboardInterrupt("killed while saving")
        return real_publish(out_dir, step, world_size, keep)

    monkeypatch.setattr(trainer_module, "publish_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    latest = ckpt.latest_checkpoint(out)
    assert latest is not None and latest.name == "step-000002"
    loaded = ckpt.load_checkpoint(latest)
    assert loaded.step == 2
    monkeypatch.setattr(trainer_module, "publish_checkpoint", real_publish)
    resumed = Trainer(config, resume=True, dist_info=single(), tty=False).fit()
    assert resumed.step == 4 and ckpt.latest_checkpoint(out).name == "step-000004"
    leftovers = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_metrics_are_jsonl_and_the_resolved_config_is_saved(data_dir, tmp_path):
    out = tmp_path / "run"
    config = make_config(data_dir, out, "steps=3", "optim.lr=0.0003")
    Trainer(config, dist_info=single(), tty=False).fit()
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        for key in ("loss", "clip", "mim", "mlm", "lr", "grad_norm", "pairs_per_s"):
            assert key in row, key
        assert row["loss"] > 0
    saved = load_config(out / "config.yaml")
    assert saved.optim.lr == pytest.approx(3e-4) and saved.steps == 3
    assert (out / "model" / "model.safetensors").is_file()


# ---------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, data_dir: str, out: str, result: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    from mmclip.train import cleanup_distributed

    config = make_config(Path(data_dir), Path(out), *DDP_ARGS, paired_only=True)
    info = init_distributed("cpu")
    trainer = Trainer(config, dist_info=info, tty=False)
    fit = trainer.fit()
    if rank == 0:
        state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        torch.save({"losses": fit.losses, "state": state}, result)
    cleanup_distributed()


# Deterministic given the global batch: no augmentation, no dropout, paired data only and
# the random-mask terms off, so the ranks' different mask streams do not enter. The local
# term is per rank by design (its negatives are the rank's own batch), so it is off too.
DDP_ARGS = (
    "steps=3",
    "save_every=100",
    "data.augment=false",
    "model.overrides.loss_weights.mim=0",
    "model.overrides.loss_weights.mlm=0",
    "model.overrides.loss_weights.local=0",
)


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(data_dir, tmp_path):
    result = tmp_path / "ddp.pt"
    mp.start_processes(
        _ddp_worker,
        args=(2, _free_port(), str(data_dir), str(tmp_path / "ddp"), str(result)),
        nprocs=2,
        start_method="spawn",
    )
    got = torch.load(result)
    config = make_config(data_dir, tmp_path / "one", *DDP_ARGS, paired_only=True)
    trainer = Trainer(config, dist_info=single(), tty=False)
    one = trainer.fit()
    for step, loss in one.losses.items():
        assert got["losses"][step] == pytest.approx(loss, rel=1e-5, abs=1e-6), step
    reference = trainer.model.state_dict()
    for name, value in got["state"].items():
        torch.testing.assert_close(value, reference[name], rtol=1e-4, atol=1e-5, msg=name)


def test_skipped_samples_are_reported_when_a_run_ends_inside_an_epoch(data_dir, tmp_path, caplog):
    import shutil

    broken = tmp_path / "data"
    shutil.copytree(data_dir, broken)
    images = sorted((broken / "images").glob("*.jpg"))[:30]
    for image in images:
        image.write_bytes(b"not an image")
    config = make_config(broken, tmp_path / "run", "steps=2", "data.on_error=skip")
    with caplog.at_level("WARNING"):
        Trainer(config, dist_info=single(), tty=False).fit()
    assert "skipped a sample" not in caplog.text  # skipping was asked for: no line per sample
    totals = [r for r in caplog.records if "end of run at step 2: skipped" in r.getMessage()]
    assert len(totals) == 1 and "undecodable image" in totals[0].getMessage()  # one summary


# ---------------------------------------------------------------------- user-facing run control
def test_overwrite_replaces_a_run_instead_of_refusing_it(data_dir, tmp_path):
    out = tmp_path / "run"
    Trainer(make_config(data_dir, out, "steps=2"), dist_info=single(), tty=False).fit()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ckpt.CheckpointError, match=f"{out} already holds a run.*--overwrite"):
        Trainer(make_config(data_dir, out, "steps=1"), dist_info=single(), tty=False)
    result = Trainer(
        make_config(data_dir, out, "steps=1"), dist_info=single(), tty=False, overwrite=True
    ).fit()
    assert result.step == 1
    assert [p.name for p in ckpt.step_checkpoints(out)] == ["step-000001"]  # the old run's gone
    assert [r["step"] for r in read_metrics(out)] == [1]  # metrics not appended to the old ones
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"  # not a run's file: kept


def test_ctrl_c_finishes_the_step_saves_a_checkpoint_and_the_run_resumes(
    data_dir, tmp_path, monkeypatch
):
    import signal

    config = make_config(data_dir, tmp_path / "run", "steps=6", "save_every=100")
    trainer = Trainer(config, dist_info=single(), tty=False)
    real_step = trainer._train_step

    def step_with_ctrl_c(step, batches):
        if step == 2:  # Ctrl-C in the middle of the third step
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(step, batches)

    monkeypatch.setattr(trainer, "_train_step", step_with_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert ckpt.latest_checkpoint(tmp_path / "run").name == "step-000003"  # the step finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    resumed = Trainer(config, resume=True, dist_info=single(), tty=False).fit()
    assert resumed.step == 6 and sorted(resumed.losses) == [4, 5, 6]


def test_a_run_shorter_than_the_guidance_warm_up_says_it_is_never_guided(
    data_dir, tmp_path, caplog
):
    guided = "model.overrides.attmim.guide_warmup_steps"
    with caplog.at_level("WARNING", logger="mmclip.train.trainer"):
        Trainer(make_config(data_dir, tmp_path / "a", "steps=2", f"{guided}=2"), dist_info=single())
    (line,) = [r.getMessage() for r in caplog.records if "never text-guided" in r.getMessage()]
    assert "steps=2 <= attmim.guide_warmup_steps=2" in line and guided in line
    caplog.clear()
    with caplog.at_level("WARNING", logger="mmclip.train.trainer"):
        Trainer(make_config(data_dir, tmp_path / "b", "steps=3", f"{guided}=2"), dist_info=single())
        uniform = "model.overrides.attmim.tau_final=inf"  # uniform masking asked for
        Trainer(make_config(data_dir, tmp_path / "c", "steps=1", uniform), dist_info=single())
    assert "never text-guided" not in caplog.text
