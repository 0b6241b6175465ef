"""Loading of the compiled operator library and the choice of backend.

``import mmclip`` never fails because the compiled library is missing: the operators
then run their pure-PyTorch references. :func:`has_ops` says which path is in use,
:func:`require_ops` turns a missing library into an error that says how to rebuild,
and :func:`use_reference` forces the references for side-by-side checks.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "OpsUnavailableError",
    "build_mismatch",
    "has_ops",
    "load_error",
    "require_ops",
    "use_reference",
    "using_compiled",
]

logger = logging.getLogger(__name__)

REBUILD_HINT = (
    "rebuild it from the source tree with "
    "`pip install --no-build-isolation --no-deps -e .` (torch must already be installed; "
    "set TORCH_CUDA_ARCH_LIST / MMCLIP_FORCE_CUDA=1 for CUDA kernels)"
)


class OpsUnavailableError(RuntimeError):
    """The compiled operator library ``mmclip._C`` could not be loaded."""


BUILD_INFO = Path(__file__).resolve().parent.parent / "_build_info.json"
"""Written by ``setup.py`` beside ``mmclip._C``: the torch (and CUDA) it was built with."""


def build_mismatch(info_path: Path, torch_version: str, cuda_version: str | None) -> str | None:
    """Why the library recorded in ``info_path`` cannot run with this torch, or None.

    Args:
        info_path: ``_build_info.json`` (absent for builds that predate it: not checked).
        torch_version, cuda_version: the running torch's ``__version__`` and
            ``version.cuda``.
    """
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        return f"its build record {info_path} is unreadable ({error})"
    built = str(info.get("torch"))
    built_cuda = info.get("cuda")
    if built != torch_version:
        return f"mmclip._C was built against torch {built} but torch {torch_version} is installed"
    if built_cuda is not None and built_cuda != cuda_version:
        return (
            f"mmclip._C was built with CUDA {built_cuda} but torch {torch_version} uses "
            f"CUDA {cuda_version}"
        )
    return None


def _load(info_path: Path = BUILD_INFO) -> tuple[bool, str | None]:
    import torch

    mismatch = build_mismatch(info_path, torch.__version__, torch.version.cuda)
    if mismatch is not None:
        message = f"{mismatch}; the operators fall back to the PyTorch references: {REBUILD_HINT}"
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return False, message
    try:
        importlib.import_module("mmclip._C")
    except (ImportError, OSError) as error:  # missing or ABI-incompatible build
        logger.debug("mmclip._C not loaded: %s", error)
        return False, f"{type(error).__name__}: {error}"
    return True, None


_LOADED, _LOAD_ERROR = _load()
_state = threading.local()


def has_ops() -> bool:
    """True when the compiled C++/CUDA operators are loaded."""
    return _LOADED


def load_error() -> str | None:
    """Why the compiled library did not load, or None when it did."""
    return _LOAD_ERROR


def require_ops() -> None:
    """Raise :class:`OpsUnavailableError` unless the compiled operators are loaded."""
    if not _LOADED:
        raise OpsUnavailableError(
            f"the compiled mmclip operator library is not available ({_LOAD_ERROR}); "
            + REBUILD_HINT
        )


def _reference_forced() -> bool:
    return bool(getattr(_state, "force_reference", False))


def using_compiled() -> bool:
    """True when an operator call made now would run the compiled kernels."""
    return _LOADED and not _reference_forced()


@contextlib.contextmanager
def use_reference(enabled: bool = True) -> Iterator[None]:
    """Run every mmclip operator on its pure-PyTorch reference inside the block.

    Example::

        with mmclip.ops.use_reference():
            loss_ref = model(batch).loss

    The setting is per thread and restored on exit.
    """
    previous = _reference_forced()
    _state.force_reference = enabled
    try:
        yield
    finally:
        _state.force_reference = previous
