"""Periodic snapshots of sources whose state is rebuilt from full-state events (order books).

A data source definition that declares ``snapshot_field`` (the ``bool`` field marking
full-state events) may also give ``state_keeper()``: an object with ``apply(event)`` and
``snapshot(last_event) -> event | None`` that keeps the whole state and writes it as one
full-state event. When a recording session closes, storage replays each such series of the
session through its keeper and stores a full-state event every ``interval`` seconds of event
time in a companion series (kind ``snapshots``), each stamped with the arrival number of the
event it is as of. A replay starting late then starts from the last stored snapshot before
its start instead of the stream's last own full-state event (possibly its very first).

The work happens after the run (never on the recording's hot path), reading the session's
committed blocks.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from featurizer._feature import Feature
from featurizer.storage._blocks import schema_bytes, write_block
from featurizer.storage._catalog import SeriesInfo
from featurizer.storage._codec import SEQ_COLUMN, EventDecoder, EventEncoder
from featurizer.storage._reader import SeriesPlan, read_tables, series_arrow_schema

if TYPE_CHECKING:
    from featurizer.storage._storage import Storage

__all__ = ["SNAPSHOT_INTERVAL", "companion_key", "snapshot_series", "write_snapshots"]

logger = logging.getLogger(__name__)

SNAPSHOT_INTERVAL = 60.0
"""Seconds of event time between two stored snapshots."""


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


def write_snapshots(
    storage: Storage, feature: Feature, session: str, interval: float = SNAPSHOT_INTERVAL
) -> int:
    """Store the periodic snapshots of one recorded series of ``session``.

    :returns: the number of snapshots stored (0 if the source declares no keeper).
    """
    make = getattr(feature.definition, "state_keeper", None)
    info = storage.catalog.series(feature.key)
    if make is None or info is None:
        return 0
    blocks = tuple(b for b in storage.catalog.blocks(info.key) if b.session == session)
    arrow_schema = series_arrow_schema(info)
    if not blocks or arrow_schema is None:
        return 0
    keeper = make()
    decoder = EventDecoder(arrow_schema, info.schema)
    plan = SeriesPlan(series=info, start=None, end=None, blocks=blocks, holes=())
    events: list[dict[str, Any]] = []
    seqs: list[int] = []
    due: float | None = None
    for table in read_tables(storage.root, plan, raw_range=False):
        table_seqs = table.column(SEQ_COLUMN).to_pylist()
        for event, seq in zip(decoder.decode(table), table_seqs, strict=True):
            keeper.apply(event)
            stamp = event["timestamp"]
            if due is not None and stamp < due:
                continue
            snapshot = keeper.snapshot(event)
            if snapshot is None:
                continue
            events.append(snapshot)
            seqs.append(seq)
            due = stamp + interval
    if not events:
        return 0
    companion = storage.catalog.register_series(snapshot_series(info))
    encoder = EventEncoder(companion.label, companion.schema, arrow_schema)
    batch = encoder.encode_with_seqs(events, seqs)
    import pyarrow as pa

    table = pa.Table.from_batches([batch])
    ordinal = storage.catalog.next_ordinal(companion.key, session)
    block = write_block(
        storage.root, table, companion, session, ordinal, storage.format, storage.storage_id
    )
    storage.catalog.commit_block(
        block,
        session_first_ts=block.start_ts,
        session_last_ts=block.end_ts,
        arrow_schema=schema_bytes(table.schema) if companion.arrow_schema is None else None,
    )
    return len(events)
