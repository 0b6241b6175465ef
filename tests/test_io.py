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


def test_json_figure_image_and_array_helpers_write_readable_files(tmp_path):
    import json

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from mmclip.io import atomic_save_arrays, atomic_save_figure, atomic_save_image
    from mmclip.io import atomic_write_json

    assert json.loads(atomic_write_json(tmp_path / "a.json", {"x": [1]}).read_text()) == {"x": [1]}
    fig, _ = plt.subplots()
    png = atomic_save_figure(fig, tmp_path / "f.png")
    plt.close(fig)
    assert png.read_bytes().startswith(b"\x89PNG")
    image = Image.fromarray(np.full((4, 4), 7, dtype=np.uint8))
    assert Image.open(atomic_save_image(image, tmp_path / "i.jpg", quality=90)).format == "JPEG"
    assert Image.open(atomic_save_image(image, tmp_path / "m.png")).format == "PNG"
    one = atomic_save_arrays(tmp_path / "e.npy", {"a": np.arange(3)})
    assert one.name == "e.npy" and np.load(one).tolist() == [0, 1, 2]
    many = np.load(atomic_save_arrays(tmp_path / "e.npz", {"a": np.arange(2), "b": np.ones(1)}))
    assert many["a"].tolist() == [0, 1] and many["b"].tolist() == [1.0]
    with pytest.raises(ValueError, match="one array"):
        atomic_save_arrays(tmp_path / "x.npy", {"a": np.ones(1), "b": np.ones(1)})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.json", "e.npy", "e.npz", "f.png", "i.jpg", "m.png"
    ]
