"""Compactors: when a series' open (in-memory) block is closed and written as a file."""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import attrs

__all__ = ["Compactor", "MemoryBasedCompactor", "OpenBlockState", "TimeBasedCompactor"]

_DEFAULT_BLOCK_BYTES = 16 * 1024 * 1024


@attrs.frozen(kw_only=True)
class OpenBlockState:
    """What a compactor knows about a series' open block.

    :param rows: events in it.
    :param nbytes: their in-memory (Arrow) size.
    :param first_ts: the timestamp of its first event (``None`` when empty).
    :param max_ts: the largest timestamp seen so far in the series (``None`` before any).
    """

    rows: int
    nbytes: int
    first_ts: float | None
    max_ts: float | None


class Compactor(abc.ABC):
    """Decides where open blocks are cut into block files.

    The writer calls :meth:`cut_points` with every incoming batch of a series; each returned
    position ``p`` (``0 <= p <= len(timestamps)``, increasing) closes the open block after the
    batch's rows before ``p`` were added to it. Every compactor also caps a block's in-memory
    size, so memory stays bounded whatever the input rate.
    """

    max_block_bytes: int

    @abc.abstractmethod
    def cut_points(
        self, block: OpenBlockState, timestamps: Sequence[float], batch_bytes: int
    ) -> list[int]:
        """Where to close the open block while adding a batch.

        :param block: the open block before the batch.
        :param timestamps: the batch's event timestamps, in arrival order.
        :param batch_bytes: the batch's in-memory size.
        :returns: increasing positions in ``0..len(timestamps)``.
        """

    def describe(self) -> str:
        """One line for logs and ``featurizer record``."""
        return repr(self)


def _rows_per_block(block: OpenBlockState, batch_rows: int, batch_bytes: int, limit: int) -> int:
    row_bytes = batch_bytes / batch_rows if batch_rows else 0.0
    if block.rows:
        row_bytes = max(row_bytes, block.nbytes / block.rows)
    return max(1, int(limit // row_bytes)) if row_bytes > 0 else 2**62


def _memory_cuts(rows_before: int, start: int, end: int, per_block: int) -> list[int]:
    """Positions in ``(start, end]`` closing blocks of ``per_block`` rows (and ``start`` if the
    open block is already full)."""
    cuts: list[int] = []
    room = per_block - rows_before
    if room <= 0:
        cuts.append(start)
        room = per_block
    position = start
    while end - position >= room:
        position += room
        cuts.append(position)
        room = per_block
    return cuts


@attrs.frozen(kw_only=True)
class MemoryBasedCompactor(Compactor):
    """Closes a block when its in-memory size reaches ``max_block_bytes``.

    As in the upstream design, block size is measured in memory (the Arrow size of the
    buffered events), so every block costs about the same memory to write and to read back.

    :param max_block_bytes: the in-memory size of a block, in bytes (default 16 MiB).

    >>> MemoryBasedCompactor(max_block_bytes=100).cut_points(
    ...     OpenBlockState(rows=0, nbytes=0, first_ts=None, max_ts=None), [1.0] * 25, 250)
    [10, 20]
    """

    max_block_bytes: int = attrs.field(
        default=_DEFAULT_BLOCK_BYTES, validator=attrs.validators.gt(0)
    )

    def cut_points(
        self, block: OpenBlockState, timestamps: Sequence[float], batch_bytes: int
    ) -> list[int]:
        """Cut every ``max_block_bytes`` of buffered events."""
        n = len(timestamps)
        if n == 0:
            return []
        per_block = _rows_per_block(block, n, batch_bytes, self.max_block_bytes)
        return _memory_cuts(block.rows, 0, n, per_block)


@attrs.frozen(kw_only=True)
class TimeBasedCompactor(Compactor):
    """One block per fixed event-time bucket (``[k * bucket, (k + 1) * bucket)``).

    A block is closed when an event of a later bucket arrives (timestamps are taken as their
    running maximum, so a late event stays in the current block). A bucket holding more than
    ``max_block_bytes`` of events is split into several blocks, so memory stays bounded.

    :param bucket: the bucket length in seconds (default one hour).
    :param max_block_bytes: the in-memory cap of a block (default 16 MiB).

    >>> TimeBasedCompactor(bucket=10.0).cut_points(
    ...     OpenBlockState(rows=2, nbytes=20, first_ts=1.0, max_ts=2.0), [3.0, 12.0, 25.0], 30)
    [1, 2]
    """

    bucket: float = attrs.field(default=3600.0, validator=attrs.validators.gt(0))
    max_block_bytes: int = attrs.field(
        default=_DEFAULT_BLOCK_BYTES, validator=attrs.validators.gt(0)
    )

    def bucket_of(self, timestamp: float) -> int:
        """The bucket index of a timestamp."""
        return math.floor(timestamp / self.bucket)

    def cut_points(
        self, block: OpenBlockState, timestamps: Sequence[float], batch_bytes: int
    ) -> list[int]:
        """Cut at every bucket change, and inside a bucket every ``max_block_bytes``."""
        n = len(timestamps)
        if n == 0:
            return []
        per_block = _rows_per_block(block, n, batch_bytes, self.max_block_bytes)
        running = timestamps[0] if block.max_ts is None else max(block.max_ts, timestamps[0])
        bucket = self.bucket_of(running)
        end_of_bucket = (bucket + 1) * self.bucket
        rows = block.rows
        if rows and block.max_ts is not None and self.bucket_of(block.max_ts) != bucket:
            cuts = [0]
            rows = 0
        else:
            cuts = []
        if max(timestamps) < end_of_bucket:
            return cuts + _memory_cuts(rows, 0, n, per_block)
        for i, ts in enumerate(timestamps):
            if ts > running:
                running = ts
                if running >= end_of_bucket:
                    bucket = self.bucket_of(running)
                    end_of_bucket = (bucket + 1) * self.bucket
                    if rows:
                        cuts.append(i)
                        rows = 0
            if rows >= per_block:
                cuts.append(i)
                rows = 0
            rows += 1
        if rows >= per_block:
            cuts.append(n)
        return cuts
