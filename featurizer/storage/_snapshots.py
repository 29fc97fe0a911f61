"""Periodic snapshots of sources whose state is rebuilt from full-state events (order books).

A data source definition that declares ``snapshot_field`` (the ``bool`` field marking
full-state events) may also give ``state_keeper()``: an object with ``apply(event)`` and
``snapshot(last_event) -> event | None`` that keeps the whole state and writes it as one
full-state event. A keeper may also offer ``apply_table(table)``: the same as ``apply`` on
every row of a pyarrow table of stored events in turn, without building the events (an
order book applies a run of deltas level by level at once); a keeper that offers it comes in
sync (``snapshot`` stops returning ``None``) only by a full-state event, so that the events
before the next one need not be looked at one by one. While a session records such a
series, each block of it, once committed, is fed through its keeper, and a full-state event
every ``interval`` seconds of event time is stored in a companion series (kind
``snapshots``), each stamped with the arrival number of the event it is as of: a
:class:`SnapshotTrack` per series, its snapshots committed right after the block they come
from. Recovery continues the snapshots of a crashed session over
the events it publishes (:func:`extend_snapshots`): from the session's last stored snapshot
(a full-state event: applied to a fresh keeper, it gives the state as of it) through the
events after it. A replay starting late then starts from the last stored snapshot before its
start instead of the stream's last own full-state event (possibly its very first).

The work happens in the recorder's publisher thread (or in recovery), never on the
recording's hot path.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from featurizer.storage._blocks import schema_bytes, write_block
from featurizer.storage._catalog import SeriesInfo
from featurizer.storage._codec import SEQ_COLUMN, EventDecoder, EventEncoder, float_list
from featurizer.storage._reader import SeriesPlan, read_tables, series_arrow_schema

if TYPE_CHECKING:
    from featurizer.storage._storage import Storage

__all__ = [
    "SNAPSHOT_INTERVAL",
    "SnapshotTrack",
    "companion_key",
    "extend_snapshots",
    "snapshot_interval_key",
    "snapshot_series",
]

logger = logging.getLogger(__name__)

SNAPSHOT_INTERVAL = 60.0
"""Seconds of event time between two stored snapshots."""


def snapshot_interval_key(session: str) -> str:
    """The catalog setting holding a session's snapshot interval."""
    return f"snapshot_interval/{session}"


def companion_key(key: str) -> str:
    """The key of the snapshot series of the series ``key``."""
    return hashlib.sha256(f"{key}#snapshots".encode()).hexdigest()


def snapshot_series(info: SeriesInfo) -> SeriesInfo:
    """The catalog description of the snapshot series of ``info``."""
    return SeriesInfo(
        key=companion_key(info.key),
        name=f"{info.name}#snapshots",
        definition=info.definition,
        kind="snapshots",
        params=info.params,
        children={"of": info.key},
        schema=info.schema,
    )


class SnapshotTrack:
    """The periodic snapshots of one series of a recording session, taken as its blocks are
    committed.

    :param storage: the storage root.
    :param info: the recorded series.
    :param keeper: its definition's state keeper (fresh, or restored from a snapshot).
    :param session: the recording session.
    :param interval: seconds of event time between two snapshots.
    :param due: the event time from which the next snapshot is taken (``None``: at once).
    :param full_state_field: the definition's ``snapshot_field`` (with a keeper offering
        ``apply_table``, runs of events are applied at once).
    """

    def __init__(
        self,
        storage: Storage,
        info: SeriesInfo,
        keeper: Any,
        session: str,
        interval: float,
        due: float | None = None,
        full_state_field: str | None = None,
    ) -> None:
        self.storage = storage
        self.info = info
        self.keeper = keeper
        self.session = session
        self.interval = interval
        self.due = due
        self.full_state_field = full_state_field
        self.stored = 0
        self._decoder: EventDecoder | None = None
        self._events: list[dict[str, Any]] = []
        self._seqs: list[int] = []

    def feed(self, table: Any, after: int = -1) -> None:
        """Apply a table of the series' events (arrival order) to the keeper, and take the
        snapshots that fall due (kept until :meth:`write`).

        :param after: only events with a larger arrival number count.
        """
        if self._decoder is None or self._decoder.names != tuple(
            n for n in table.schema.names if n != SEQ_COLUMN
        ):
            self._decoder = EventDecoder(table.schema, self.info.schema)
        apply_table = getattr(self.keeper, "apply_table", None)
        field = self.full_state_field
        if apply_table is not None and field is not None and field in table.schema.names:
            self._feed_runs(table, after, apply_table, field)
            return
        seqs = table.column(SEQ_COLUMN).to_pylist()
        keeper = self.keeper
        assert self._decoder is not None
        for event, seq in zip(self._decoder.decode(table), seqs, strict=True):
            if seq <= after:
                continue
            keeper.apply(event)
            self._consider(event, seq, event["timestamp"])

    def _consider(self, event: dict[str, Any], seq: int, stamp: float) -> bool:
        """Take a snapshot as of ``event`` if one is due; returns whether the keeper is in
        sync."""
        if self.due is not None and stamp < self.due:
            return True
        snapshot = self.keeper.snapshot(event)
        if snapshot is None:
            return False
        self._events.append(snapshot)
        self._seqs.append(seq)
        self.due = stamp + self.interval
        return True

    def _feed_runs(
        self, table: Any, after: int, apply_table: Callable[[Any], None], field: str
    ) -> None:
        """:meth:`feed` for keepers with ``apply_table``: the events between two snapshots
        that fall due are applied as one run, and only the events a snapshot is taken as of
        are built; while the keeper is out of sync, everything up to the next full-state
        event is one run."""
        import pyarrow.compute as pc

        if after >= 0:
            table = table.filter(pc.greater(table.column(SEQ_COLUMN), after))
        table = table.combine_chunks()
        count = table.num_rows
        if not count:
            return
        stamps = float_list(table.column("timestamp").chunk(0), "d")
        seqs = float_list(table.column(SEQ_COLUMN).chunk(0), "q")
        full_states = pc.indices_nonzero(table.column(field)).to_pylist()
        assert self._decoder is not None
        position = 0
        while position < count:
            due = self.due
            row = (
                position
                if due is None
                else next((i for i in range(position, count) if stamps[i] >= due), count)
            )
            apply_table(table.slice(position, row + 1 - position))
            if row == count:
                return
            (event,) = self._decoder.decode(table.slice(row, 1))
            position = row + 1
            if not self._consider(event, seqs[row], stamps[row]):
                following = bisect.bisect_left(full_states, position)
                resume = full_states[following] if following < len(full_states) else count
                apply_table(table.slice(position, resume - position))
                position = resume

    def write(self) -> int:
        """Store the snapshots taken since the last call as one block of the companion
        series (committed); returns how many."""
        if not self._events:
            return 0
        events, seqs = self._events, self._seqs
        self._events, self._seqs = [], []
        catalog = self.storage.catalog
        arrow_schema = series_arrow_schema(self.info)
        companion = catalog.register_series(snapshot_series(self.info))
        encoder = EventEncoder(companion.label, companion.schema, arrow_schema)
        batch = encoder.encode_with_seqs(events, seqs)
        import pyarrow as pa

        table = pa.Table.from_batches([batch])
        block = write_block(
            self.storage.root,
            table,
            companion,
            self.session,
            catalog.next_ordinal(companion.key, self.session),
            self.storage.format,
            self.storage.storage_id,
        )
        catalog.commit_block(
            block,
            session_first_ts=block.start_ts,
            session_last_ts=block.end_ts,
            arrow_schema=schema_bytes(table.schema) if companion.arrow_schema is None else None,
        )
        self.stored += len(events)
        return len(events)


def extend_snapshots(
    storage: Storage,
    info: SeriesInfo,
    keeper: Any,
    session: str,
    interval: float,
    *,
    full_state_field: str | None = None,
) -> int:
    """Continue the stored snapshots of one series of ``session`` through its committed
    blocks (after a crash: over what recovery published).

    :param keeper: a fresh state keeper of the series' definition.
    :param full_state_field: the definition's ``snapshot_field`` (see :class:`SnapshotTrack`).
    :returns: the number of snapshots stored.
    """
    catalog = storage.catalog
    arrow_schema = series_arrow_schema(info)
    blocks = tuple(b for b in catalog.blocks(info.key) if b.session == session)
    if not blocks or arrow_schema is None:
        return 0
    after, due = -1, None
    companion = catalog.series(companion_key(info.key))
    if companion is not None:
        own = [b for b in catalog.blocks(companion.key) if b.session == session]
        if own:
            last = max(own, key=lambda b: b.max_seq)
            plan = SeriesPlan(series=companion, start=None, end=None, blocks=(last,), holes=())
            table = list(read_tables(storage.root, plan, raw_range=False))[-1]
            row = table.slice(table.num_rows - 1, 1)
            (snapshot,) = EventDecoder(table.schema, info.schema).decode(row)
            keeper.apply(snapshot)
            after = int(row.column(SEQ_COLUMN)[0].as_py())
            due = float(snapshot["timestamp"]) + interval
    track = SnapshotTrack(storage, info, keeper, session, interval, due, full_state_field)
    todo = tuple(b for b in blocks if b.max_seq > after)
    if not todo:
        return 0
    plan = SeriesPlan(series=info, start=None, end=None, blocks=todo, holes=())
    for table in read_tables(storage.root, plan, raw_range=False):
        track.feed(table, after)
    return track.write()
