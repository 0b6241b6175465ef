"""Shared fixtures of the data tests: a tiny synthetic dataset and a tiny tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmclip.data import XrayRecord, load_manifest, synthetic

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """``$MMCLIP_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("MMCLIP_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthetic.write_dataset(root, n=40, size=96, seed=3)
    return root


@pytest.fixture(scope="session")
def synth_records(synth_root: Path) -> list[XrayRecord]:
    return load_manifest(synth_root / "manifest.jsonl")


@pytest.fixture(scope="session")
def tokenizer(synth_records: list[XrayRecord]):
    from mmclip.text import train_wordpiece_tokenizer
    from mmclip.text.prompts import NEGATIVE_TEMPLATES, NORMAL_PROMPTS, POSITIVE_TEMPLATES

    texts = [r.report for r in synth_records if r.report]
    texts += list(POSITIVE_TEMPLATES) + list(NEGATIVE_TEMPLATES) + list(NORMAL_PROMPTS)
    return train_wordpiece_tokenizer(texts, vocab_size=400, min_frequency=1)
