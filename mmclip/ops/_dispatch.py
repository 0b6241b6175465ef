"""Per-device choice between the compiled kernels and the pure-PyTorch references.

The compiled library registers its kernels per dispatch key (``CPU``, ``CUDA``). A build
made on a machine without a visible GPU has no ``CUDA`` kernels, so calling
``torch.ops.mmclip.*`` on a CUDA tensor would raise ``NotImplementedError``. The public
wrappers ask :func:`compiled_for` instead: it says whether the compiled library has a kernel
of the operator for the inputs' device and, when it has none, the wrapper runs the
reference on that device after one :class:`RuntimeWarning` per operator and device type.
"""

from __future__ import annotations

import threading
import warnings

import torch

from ._library import REBUILD_HINT, using_compiled

__all__ = ["compiled_for"]

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _has_kernel(op_name: str, device_type: str) -> bool:
    """True when the dispatcher holds a kernel of ``mmclip::<op_name>`` for ``device_type``.

    Args:
        op_name: the operator's name in the ``mmclip`` namespace, e.g.
            ``"cross_modal_attention_score"``.
        device_type: a ``torch.device`` type: ``"cpu"``, ``"cuda"``, ``"meta"``, …

    A kernel registered for the device's backend key counts, and so does one reached
    through an alias key (``CompositeExplicitAutograd``, …): the dispatcher's computed
    table is queried. An unknown operator or device type has no kernel.
    """
    try:
        key = torch._C._dispatch_key_for_device(device_type)
        return bool(
            torch._C._dispatch_has_computed_kernel_for_dispatch_key(f"mmclip::{op_name}", key)
        )
    except (RuntimeError, ValueError):
        return False


def _warn_fallback(op_name: str, device_type: str) -> None:
    with _warned_lock:
        if (op_name, device_type) in _warned:
            return
        _warned.add((op_name, device_type))
    warnings.warn(
        f"the compiled mmclip library has no {device_type} kernel of {op_name} (built without "
        f"{device_type.upper()} support?); its PyTorch reference runs on {device_type} "
        f"instead. For the compiled kernels, {REBUILD_HINT}",
        RuntimeWarning,
        stacklevel=3,
    )


def compiled_for(op_name: str, device: torch.device) -> bool:
    """Whether a call of ``op_name`` on ``device`` made now should run the compiled kernel.

    False when the references are in use (library missing, or :func:`use_reference`);
    False, after one :class:`RuntimeWarning` per operator and device type, when the
    compiled library has no kernel of ``op_name`` for ``device.type``; else True.
    """
    if not using_compiled():
        return False
    if _has_kernel(op_name, device.type):
        return True
    _warn_fallback(op_name, device.type)
    return False
