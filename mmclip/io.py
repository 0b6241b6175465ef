"""Atomic file writes: a reader never sees a half-written file, a crash leaves the old one."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_output",
    "atomic_output_dir",
    "atomic_save_arrays",
    "atomic_save_figure",
    "atomic_save_image",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "fsync_dir",
    "fsync_file",
]


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries (a rename into it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | Path, durable: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends.

    For writers that take a path (``torch.save``, ``PIL.Image.save``, safetensors): on an
    exception the temporary file is removed and ``path`` is left as it was.

    Args:
        durable: fsync the file before the rename and the folder after it (checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


@contextmanager
def atomic_output_dir(directory: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``directory`` for writers that fill a folder
    (``save_pretrained``); when the block ends each file is renamed into ``directory``.

    Every file is then whole or absent (the set of files is not replaced as one); on an
    exception nothing of the block's output reaches ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            target = directory / file.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` through :func:`atomic_output`.

    Args:
        durable: also fsync the file and its folder (checkpoints); False for reports.
    """
    with atomic_output(path, durable) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, durable: bool = False) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 ``text``."""
    return atomic_write_bytes(path, text.encode("utf-8"), durable)


def atomic_write_json(path: str | Path, obj: Any, durable: bool = False, **dumps: Any) -> Path:
    """:func:`atomic_write_text` of ``json.dumps(obj, indent=2, **dumps)`` and a newline."""
    dumps.setdefault("indent", 2)
    return atomic_write_text(path, json.dumps(obj, **dumps) + "\n", durable)


def atomic_save_figure(fig: Any, path: str | Path, **savefig: Any) -> Path:
    """``fig.savefig`` through :func:`atomic_output`; the format follows ``path``'s suffix."""
    path = Path(path)
    savefig.setdefault("format", path.suffix.lstrip(".").lower() or None)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, **savefig)
    return path


def atomic_save_image(image: Any, path: str | Path, **save: Any) -> Path:
    """``PIL.Image.save`` through :func:`atomic_output`; the format follows ``path``'s suffix."""
    from PIL import Image

    path = Path(path)
    if "format" not in save:
        save["format"] = Image.registered_extensions().get(path.suffix.lower())
    with atomic_output(path) as tmp:
        image.save(tmp, **save)
    return path


def atomic_save_arrays(path: str | Path, arrays: Mapping[str, Any]) -> Path:
    """NumPy arrays through :func:`atomic_output`: one array as ``.npy``, any number as ``.npz``.

    Raises:
        ValueError: another suffix, or a ``.npy`` path with other than one array.
    """
    import numpy as np

    path = Path(path)
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"an array file ends in .npy or .npz; got {path.name!r}")
    if path.suffix == ".npy" and len(arrays) != 1:
        raise ValueError("a .npy output holds one array; use .npz for more")
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:  # a handle: numpy keeps the name
        if path.suffix == ".npy":
            np.save(handle, next(iter(arrays.values())))
        else:
            np.savez(handle, **arrays)
    return path
