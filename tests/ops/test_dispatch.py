"""Per-device backend choice: a device without a compiled kernel runs the reference after one
warning (a build made without a visible GPU has no CUDA kernels), and the value checks of the
wrappers are the same on every device."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mmclip import ops
from mmclip.ops import _dispatch, reference
from mmclip.ops import _validation as v

from .helpers import requires_ops

OPS_DIR = Path(ops.__file__).resolve().parent


def _call_score():
    return ops.cross_modal_attention_score(
        torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.ones(2, 3)
    )


def _call_mask():
    return ops.attention_guided_mask(torch.rand(2, 8), 0.5, 1.0)


def _call_gather():
    return ops.masked_gather(torch.randn(2, 5, 3), torch.tensor([[0, 4], [1, 2]]))


def _call_scatter():
    return ops.masked_scatter(
        torch.randn(2, 2, 3), torch.tensor([[0, 4], [1, 2]]), torch.zeros(3), 5
    )


def _call_entity():
    ids = torch.randint(10, 50, (2, 6))
    attended = torch.ones(2, 6, dtype=torch.bool)
    special = torch.zeros(2, 6, dtype=torch.bool)
    return ops.entity_span_mask(
        ids,
        attended,
        special,
        torch.tensor([0, 1, 1]),
        torch.tensor([[1, 3]]),
        entity_prob=0.6,
        target_ratio=0.3,
        min_ratio=0.15,
        max_ratio=0.5,
        mask_token_id=3,
        vocab_size=50,
    )


CALLS = [
    ("cross_modal_attention_score", _call_score),
    ("attention_guided_mask", _call_mask),
    ("masked_gather", _call_gather),
    ("masked_scatter", _call_scatter),
    ("entity_span_mask", _call_entity),
]


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Forget which (op, device) fallbacks have already warned."""
    monkeypatch.setattr(_dispatch, "_warned", set())


@requires_ops
@pytest.mark.parametrize("name", [name for name, _ in CALLS])
def test_has_kernel_queries_the_dispatcher(name):
    assert _dispatch._has_kernel(name, "cpu")
    assert _dispatch._has_kernel(name, "meta")  # the fake (meta) kernels of register_fake
    cuda = torch._C._dispatch_has_computed_kernel_for_dispatch_key(f"mmclip::{name}", "CUDA")
    assert _dispatch._has_kernel(name, "cuda") == bool(cuda)


def test_has_kernel_is_false_for_unknown_ops_and_devices():
    assert not _dispatch._has_kernel("no_such_operator", "cpu")
    assert not _dispatch._has_kernel("masked_gather", "not_a_device")


@requires_ops
@pytest.mark.parametrize(("name", "call"), CALLS)
def test_device_without_kernel_falls_back_to_the_reference_once_warned(
    name, call, monkeypatch, fresh_warnings
):
    """Before: torch.ops.mmclip.* on a device without kernel raised NotImplementedError."""
    asked = []

    def no_cpu_kernel(op_name: str, device_type: str) -> bool:
        asked.append((op_name, device_type))
        return device_type != "cpu"

    monkeypatch.setattr(_dispatch, "_has_kernel", no_cpu_kernel)
    calls = []
    original = getattr(reference, name)
    monkeypatch.setattr(reference, name, lambda *a: calls.append(1) or original(*a))
    with pytest.warns(RuntimeWarning, match=f"no cpu kernel of {name}") as record:
        call()
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call must not warn again
        call()
    assert calls == [1, 1]
    assert asked[0] == (name, "cpu")


@requires_ops
@pytest.mark.parametrize(("name", "call"), CALLS)
def test_device_with_kernel_runs_it_without_warning(name, call, monkeypatch, fresh_warnings):
    calls = []
    original = getattr(reference, name)
    monkeypatch.setattr(reference, name, lambda *a: calls.append(1) or original(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call()
    assert calls == []


def test_compiled_for_is_false_under_use_reference(monkeypatch, fresh_warnings):
    monkeypatch.setattr(_dispatch, "_has_kernel", lambda *a: pytest.fail("must not be asked"))
    with ops.use_reference(), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not _dispatch.compiled_for("masked_gather", torch.device("cuda"))


def test_one_warning_per_op_and_device(monkeypatch, fresh_warnings):
    monkeypatch.setattr(_dispatch, "using_compiled", lambda: True)
    monkeypatch.setattr(_dispatch, "_has_kernel", lambda op, device: False)
    with pytest.warns(RuntimeWarning) as record:
        for _ in range(3):
            assert not _dispatch.compiled_for("masked_gather", torch.device("cuda"))
            assert not _dispatch.compiled_for("masked_gather", torch.device("cuda", 1))
            assert not _dispatch.compiled_for("masked_scatter", torch.device("cuda"))
            assert not _dispatch.compiled_for("masked_scatter", torch.device("xpu"))
    messages = sorted(str(w.message).split(";")[0] for w in record)
    assert len(messages) == 3, messages
    assert "no cuda kernel of masked_gather" in messages[0]


def test_meta_tensors_run_without_value_checks():
    q = torch.empty(2, 3, 4, device="meta")
    out = ops.cross_modal_attention_score(q, torch.empty(2, 5, 4, device="meta"), q[..., 0])
    assert out.shape == (2, 5) and out.device.type == "meta"
    idx = torch.empty(2, 2, dtype=torch.long, device="meta")
    assert ops.masked_gather(torch.empty(2, 5, 3, device="meta"), idx).shape == (2, 2, 3)


# ---------------------------------------------------------------------------------
# Value checks: the same ValueError on every device and on both backends.


def test_value_checks_cover_every_device_with_data():
    """has_values() gates the value checks: any device with data, not just the CPU."""
    for device_type, expected in (("cpu", True), ("cuda", True), ("xpu", True), ("meta", False)):
        stand_in = SimpleNamespace(device=torch.device(device_type), numel=lambda: 4)
        assert v.has_values(stand_in) is expected  # type: ignore[arg-type]
    assert not v.has_values(torch.zeros(0))


def test_no_wrapper_gates_a_value_check_on_the_cpu():
    """Before: `if idx.device.type != "cpu": return` let CUDA skip what CPU rejected."""
    pattern = re.compile(r"device\.type\s*[!=]=\s*[\"']cpu[\"']")
    offenders = [
        f"{path.name}:{n}"
        for path in sorted(OPS_DIR.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


BACKENDS = [
    pytest.param(True, id="reference"),
    pytest.param(
        False,
        id="compiled",
        marks=pytest.mark.skipif(not ops.has_ops(), reason="compiled mmclip._C not built"),
    ),
]


@pytest.mark.parametrize("use_reference", BACKENDS)
def test_bad_values_are_one_value_error_on_every_path(use_reference, device):
    x = torch.zeros(2, 5, 3, device=device)
    visible = torch.zeros(2, 2, 3, device=device)
    token = torch.zeros(3, device=device)
    q, k = torch.zeros(2, 3, 4, device=device), torch.zeros(2, 5, 4, device=device)
    ids = torch.randint(10, 50, (2, 6), device=device)
    flags = torch.ones(2, 6, dtype=torch.bool, device=device)
    cases = [
        (
            lambda: ops.masked_gather(x, torch.tensor([[0], [7]], device=device)),
            r"idx must index into \[0, 5\); found values in \[0, 7\]",
        ),
        (
            lambda: ops.masked_scatter(
                visible, torch.tensor([[0, 1], [3, 3]], device=device), token, 4
            ),
            "keep_idx must hold distinct indices per row",
        ),
        (
            lambda: ops.masked_scatter(
                visible, torch.tensor([[0, -1], [1, 2]], device=device), token, 4
            ),
            r"keep_idx must index into \[0, 4\)",
        ),
        (
            lambda: ops.cross_modal_attention_score(q, k, -torch.ones(2, 3, device=device)),
            "weight must be >= 0 and finite",
        ),
        (
            lambda: ops.entity_span_mask(
                ids,
                flags,
                ~flags,
                torch.tensor([0, 1, 1], device=device),
                torch.tensor([[4, 9]], device=device),
                entity_prob=0.6,
                target_ratio=0.3,
                min_ratio=0.15,
                max_ratio=0.5,
                mask_token_id=3,
                vocab_size=50,
            ),
            r"spans\[0\] = \(4, 9\) lies outside the sequence",
        ),
    ]
    with ops.use_reference(use_reference):
        for call, message in cases:
            with pytest.raises(ValueError, match=message):
                call()
