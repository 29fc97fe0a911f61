"""The garbage collector's first threshold, raised while recorders hold container fields.

A recorder keeps each event's fields until its WAL cycle takes them (up to ``sync_interval``).
For flat fields those are packed numbers and strings, which the collector does not track; an
order book's levels are lists and tuples it does, and so many of them stay alive at once that
the collector's youngest generation fills every few dozen events and its collections
(promoting the levels to older generations, whose collections then walk them again) become a
measurable part of the recording (see docs/storage.md, "Performance"). Raising the first
threshold while such a recorder runs takes most of that cost away.

The setting belongs to the process, so it is shared: the first holder raises it, the last one
restores it, and a threshold someone else changed in the meantime is left as it is.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

__all__ = ["raise_first_threshold"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_holders = 0
_saved: tuple[int, ...] | None = None
"""The thresholds before the first holder raised them (``None``: left alone)."""
_ours: tuple[int, ...] | None = None
"""The thresholds the first holder set."""


def raise_first_threshold(value: int) -> Callable[[], None]:
    """Raise the collector's first threshold to at least ``value`` until the returned function
    is called (once; later calls do nothing).

    Nothing changes if automatic collection is disabled (``gc.disable()`` or a first
    threshold of 0) or the threshold is already at least ``value``.

    :param value: the first threshold wanted (objects allocated between collections of the
        youngest generation).
    :returns: the function giving the holder's claim back.
    """
    global _holders, _saved, _ours
    with _lock:
        if _holders == 0:
            current = gc.get_threshold()
            if gc.isenabled() and 0 < current[0] < value:
                _saved = current
                _ours = (value, *current[1:])
                gc.set_threshold(*_ours)
                logger.debug("collector thresholds %s -> %s while recording", current, _ours)
            else:
                _saved = _ours = None
        _holders += 1
    released = False

    def release() -> None:
        nonlocal released
        global _holders, _saved, _ours
        with _lock:
            if released:
                return
            released = True
            _holders -= 1
            if _holders or _saved is None:
                return
            if gc.get_threshold() == _ours:
                gc.set_threshold(*_saved)
            else:
                logger.debug(
                    "collector thresholds changed while recording (now %s): left as they are",
                    gc.get_threshold(),
                )
            _saved = _ours = None

    return release
