"""cryptofeed's own log records, moved under the emitter's logger at debug level.

cryptofeed logs to the ``feedhandler`` logger, with a traceback for every connection error
and reconnection. The emitter reports what matters itself, in one line each (a dropped
connection, a gap, an exchange it cannot reach, a failure), so while a feed runs cryptofeed's
records are re-logged at ``DEBUG`` under ``featurizer_cryptofeed.cryptofeed`` (``featurizer
-vv`` shows them, tracebacks included) instead of reaching the user's terminal.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["CRYPTOFEED_LOGGER", "quiet_cryptofeed_logs"]

CRYPTOFEED_LOGGER = "feedhandler"
"""The logger cryptofeed writes to."""

_target = logging.getLogger("featurizer_cryptofeed.cryptofeed")


class _Demote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _target.isEnabledFor(logging.DEBUG):
            _target.debug(
                "[cryptofeed %s] %s",
                record.levelname,
                record.getMessage(),
                exc_info=record.exc_info,
            )
        return False


@contextlib.contextmanager
def quiet_cryptofeed_logs() -> Iterator[None]:
    """Within the block, cryptofeed's records go to the emitter's logger at debug level.

    >>> with quiet_cryptofeed_logs():
    ...     logging.getLogger("feedhandler").error("hidden")
    """
    source = logging.getLogger(CRYPTOFEED_LOGGER)
    demote = _Demote()
    source.addFilter(demote)
    try:
        yield
    finally:
        source.removeFilter(demote)
