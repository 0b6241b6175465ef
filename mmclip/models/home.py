"""The local model directory: trained models registered by name and tag, loaded offline.

``mmclip demo`` and ``mmclip pretrain`` copy their final model into
``$MMCLIP_HOME/models/<name>/<tag>/`` (``MMCLIP_HOME`` defaults to ``~/.cache/mmclip``), a
directory in the saved-model format of :mod:`mmclip.models.pretrained`. Such a model then
loads by name and tag, without network::

    import mmclip

    mmclip.list_pretrained()                          # [('mmclip-tiny', 'demo')]
    model = mmclip.create_model("mmclip-tiny", pretrained="demo")
    model = mmclip.MMCLIPModel.from_pretrained("mmclip-tiny:demo")  # the same

A model argument (``from_pretrained``, ``--model``) is resolved by :func:`resolve_model_dir`:
a saved-model directory, a run directory (its ``model/``), or ``name:tag``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from pathlib import Path

from ..io import fsync_dir
from .pretrained import CONFIG_NAME, WEIGHTS_NAME

__all__ = [
    "HOME_ENV",
    "PretrainedNotFoundError",
    "check_tag",
    "is_registered",
    "list_pretrained",
    "mmclip_home",
    "models_dir",
    "pretrained_dir",
    "register_pretrained",
    "resolve_model_dir",
    "safe_tag",
]

logger = logging.getLogger(__name__)

HOME_ENV = "MMCLIP_HOME"
"""The environment variable of the local model directory (default ``~/.cache/mmclip``)."""

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class PretrainedNotFoundError(FileNotFoundError):
    """A model argument that is neither a model directory nor a registered ``name:tag``."""


def mmclip_home() -> Path:
    """``$MMCLIP_HOME``, else ``~/.cache/mmclip`` (absolute, not created)."""
    value = os.environ.get(HOME_ENV, "").strip()
    home = Path(value).expanduser() if value else Path.home() / ".cache" / "mmclip"
    return home.absolute()


def models_dir() -> Path:
    """Where registered models live: ``<mmclip_home()>/models``."""
    return mmclip_home() / "models"


def _check_part(value: str, what: str) -> str:
    if not _SAFE.match(value or ""):
        raise ValueError(
            f"model {what} {value!r} must start with a letter or digit and hold only letters, "
            "digits, '.', '_', '+' and '-'"
        )
    return value


def check_tag(tag: str) -> str:
    """``tag`` when it is a valid tag (letters, digits, ``._+-``), else ``ValueError``."""
    return _check_part(tag, "tag")


def safe_tag(text: str) -> str:
    """A valid tag made from ``text`` (a run directory's name): other characters → ``-``."""
    tag = re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-._+")
    return tag or "run"


def pretrained_dir(name: str, tag: str) -> Path:
    """The directory of the registered model ``name:tag`` (it may not exist)."""
    return models_dir() / _check_part(name, "name") / _check_part(tag, "tag")


def _is_model_dir(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def is_registered(name: str, tag: str) -> bool:
    """Whether ``name:tag`` is a registered model (False for a malformed name or tag)."""
    try:
        return _is_model_dir(pretrained_dir(name, tag))
    except ValueError:
        return False


def list_pretrained(as_str: bool = False) -> list[tuple[str, str]] | list[str]:
    """The registered models, sorted, as in open_clip.

    Args:
        as_str: ``"name:tag"`` strings instead of ``(name, tag)`` tuples.

    Returns:
        ``[("mmclip-tiny", "demo"), …]`` (or ``["mmclip-tiny:demo", …]``); empty when
        nothing is registered under :func:`models_dir`.
    """
    found: list[tuple[str, str]] = []
    root = models_dir()
    if root.is_dir():
        for name_dir in sorted(root.iterdir()):
            if not name_dir.is_dir() or name_dir.name.startswith("."):
                continue
            for tag_dir in sorted(name_dir.iterdir()):
                if not tag_dir.name.startswith(".") and _is_model_dir(tag_dir):
                    found.append((name_dir.name, tag_dir.name))
    if as_str:
        return [f"{n}:{t}" for n, t in found]
    return found


def register_pretrained(model_dir: str | Path, name: str, tag: str) -> Path:
    """Copy a saved model into the local model directory as ``name:tag``.

    The files are copied to a hidden folder beside the target, then renamed into place: a
    reader sees the old model or the new one, never a half-copied folder (the old one, when
    there is one, is replaced).

    Args:
        model_dir: a directory written by ``save_pretrained`` (``config.json``,
            ``model.safetensors``, tokenizer files).
        name: the model name, e.g. ``"mmclip-tiny"``.
        tag: e.g. ``"demo"`` or a run's name.

    Returns:
        The registered directory, ``<models_dir()>/<name>/<tag>``.

    Raises:
        FileNotFoundError: ``model_dir`` is not a saved model.
        ValueError: a name or tag with characters other than letters, digits, ``._+-``.
    """
    source = Path(model_dir)
    if not _is_model_dir(source):
        raise FileNotFoundError(
            f"{source} is not a saved model (it needs {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    target = pretrained_dir(name, tag)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging = target.parent / f".{tag}.{stamp}.tmp"
    retired = target.parent / f".{tag}.{stamp}.old"
    try:
        shutil.copytree(source, staging, symlinks=False)
        if target.exists():
            os.replace(target, retired)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if retired.exists() and not target.exists():
            os.replace(retired, target)  # put the old model back
        raise
    shutil.rmtree(retired, ignore_errors=True)
    fsync_dir(target.parent)
    logger.info(
        "registered %s:%s in %s: load it with mmclip.create_model(%r, pretrained=%r) "
        "or --model %s:%s",
        name,
        tag,
        target,
        name,
        tag,
        name,
        tag,
    )
    return target


def _split_tag(spec: str) -> tuple[str, str] | None:
    if spec.count(":") != 1 or "/" in spec or "\\" in spec:
        return None
    name, tag = spec.split(":")
    if not (_SAFE.match(name) and _SAFE.match(tag)):
        return None
    return name, tag


def _not_found(spec: str, reason: str) -> PretrainedNotFoundError:
    registered = list_pretrained(as_str=True)
    listing = ", ".join(registered) if registered else "none yet"  # type: ignore[arg-type]
    return PretrainedNotFoundError(
        f"{reason}. Registered models in {models_dir()} (set {HOME_ENV} to move it): "
        f"{listing}. `mmclip demo` trains mmclip-tiny in minutes on a CPU and registers it as "
        "mmclip-tiny:demo (`mmclip pretrain --tag T` registers a run as <model>:T); then load "
        "it with MMCLIPModel.from_pretrained('mmclip-tiny:demo') or "
        "create_model('mmclip-tiny', pretrained='demo')"
    )


def resolve_model_dir(spec: str | Path) -> Path:
    """The saved-model directory a model argument names.

    Args:
        spec: a directory written by ``save_pretrained``; a run directory (its ``model/``
            sub-directory is used); or ``"name:tag"`` of a registered model
            (:func:`list_pretrained`).

    Returns:
        The directory (its files are checked when it is read).

    Raises:
        PretrainedNotFoundError: (a ``FileNotFoundError``) none of these; the message names
            the registry directory, what is registered and the command that makes a model.
    """
    path = Path(spec)
    if path.is_dir():
        if (path / "model").is_dir() and not (path / CONFIG_NAME).is_file():
            return path / "model"  # a run directory
        return path
    text = str(spec)
    parts = _split_tag(text)
    if parts is not None:
        target = pretrained_dir(*parts)
        if _is_model_dir(target):
            return target
        raise _not_found(text, f"no registered model {text!r} (no model in {target})")
    if path.exists():
        raise PretrainedNotFoundError(f"{text!r} is a file, not a model directory")
    if _SAFE.match(text) and not path.suffix:
        tags = [t for n, t in list_pretrained() if n == text]  # type: ignore[misc]
        if tags:
            choices = " or ".join(f"'{text}:{t}'" for t in tags)
            reason = f"{text!r} names a model with registered tags; load {choices}"
            raise _not_found(text, reason)
        reason = (
            f"{text!r} is not a model directory and no {text}:<tag> is registered "
            "(a registered model is loaded as 'name:tag')"
        )
        raise _not_found(text, reason)
    registered = list_pretrained(as_str=True)
    listing = ", ".join(registered) if registered else "none"  # type: ignore[arg-type]
    raise PretrainedNotFoundError(
        f"model directory {text!r} does not exist ({path.absolute()}); registered models "
        f"(name:tag, in {models_dir()}): {listing}"
    )
