"""mmclip.io: atomic writes leave either the old file or the new one, never a partial one."""

from __future__ import annotations

import pytest

from mmclip.io import atomic_output, atomic_write_bytes, atomic_write_text


def test_atomic_output_replaces_the_file_when_the_block_ends(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with atomic_output(target, durable=True) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"new")
        assert not target.exists()  # nothing visible before the rename
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_helpers_round_trip(tmp_path):
    assert atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert atomic_write_text(tmp_path / "b.txt", "é\n").read_text(encoding="utf-8") == "é\n"
