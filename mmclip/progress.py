"""Progress bars for the long loops a user waits for (decoding, encoding, evaluation).

One switch for the whole library: a bar is drawn only when stderr is a terminal and the
``mmclip`` logger shows INFO messages, so ``-q`` (warnings only), pipes, CI logs and tests
stay quiet. ``MMCLIP_PROGRESS=0`` / ``=1`` forces the bars off / on.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress", "progress_enabled"]

_T = TypeVar("_T")


def progress_enabled() -> bool:
    """Whether :func:`progress` draws a bar here and now."""
    forced = os.environ.get("MMCLIP_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if not logging.getLogger("mmclip").isEnabledFor(logging.INFO):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress(
    iterable: Iterable[_T], total: int | None = None, desc: str = "", unit: str = "it"
) -> Iterator[_T]:
    """``iterable``, with a tqdm bar on stderr when :func:`progress_enabled`.

    Args:
        iterable: what to loop over.
        total: the number of items (``len(iterable)`` when it has one).
        desc: the bar's label (``"encoding images"``).
        unit: what one item is (``"batch"``, ``"image"``).
    """
    if not progress_enabled():
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
