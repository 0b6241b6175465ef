"""Loading of the compiled operator library and the choice of backend.

``import mmclip`` never fails because the compiled library is missing: the operators
then run their pure-PyTorch references. :func:`has_ops` says which path is in use,
:func:`require_ops` turns a missing library into an error that says how to rebuild,
and :func:`use_reference` forces the references for side-by-side checks.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from collections.abc import Iterator

__all__ = [
    "OpsUnavailableError",
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


def _load() -> tuple[bool, str | None]:
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
