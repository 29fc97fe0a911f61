"""Backfills over events in memory: the batch path over a list of ``(source, event)`` pairs."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from featurizer._errors import FeaturizerError
from featurizer._events import Event
from featurizer._feature import Feature
from featurizer.batch._combine import Combiner
from featurizer.batch._executor import BatchExecutor, SourceBatch
from featurizer.batch._kernel import columns_from_events

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["backfill_events", "chunk_events"]


def chunk_events(
    sources: Sequence[Feature],
    events: Sequence[tuple[Feature, Event]],
    boundaries: Iterable[int],
) -> Iterator[list[SourceBatch | None]]:
    """Cut merged events into chunks at ``boundaries`` (increasing indexes into ``events``).

    :param sources: the executor's data sources (the order of each chunk's list).
    :param events: ``(data source, event)`` in merged order.
    :param boundaries: where chunks end (the last chunk ends at ``len(events)``).
    """
    import numpy as np

    index = {feature: i for i, feature in enumerate(sources)}
    cuts = [b for b in boundaries if 0 < b < len(events)]
    start = 0
    for end in [*cuts, len(events)]:
        rows: list[list[Event]] = [[] for _ in sources]
        positions: list[list[int]] = [[] for _ in sources]
        for position, (feature, event) in enumerate(events[start:end]):
            i = index.get(feature)
            if i is None:
                raise FeaturizerError(
                    f"{feature!r} is not a data source of these features (sources: "
                    f"{', '.join(repr(f.name) for f in sources)})"
                )
            rows[i].append(event)
            positions[i].append(position)
        batches: list[SourceBatch | None] = []
        for feature, got, where in zip(sources, rows, positions, strict=True):
            if not got:
                batches.append(None)
                continue
            names = ["timestamp", "receipt_timestamp", *feature.definition.event_schema()]
            batches.append(
                SourceBatch(
                    positions=np.array(where, dtype=np.int64),
                    columns=columns_from_events(got, names),
                    decode=functools.partial(list, got),
                )
            )
        yield batches
        start = end


def backfill_events(
    features: Any,
    events: Sequence[tuple[Feature, Event]],
    *,
    chunk_rows: int = 65_536,
    boundaries: Iterable[int] | None = None,
    per: str = "event",
    executor: BatchExecutor | None = None,
) -> pa.Table:
    """The combined vectors of ``features`` over in-memory events, through the batch path.

    :param features: output features or a config.
    :param events: ``(data source, event)`` pairs in the order to process them.
    :param chunk_rows: events per chunk.
    :param boundaries: explicit chunk ends instead of ``chunk_rows`` (tests use random ones).
    :param per: ``event`` or ``timestamp`` (see :data:`featurizer.offline.PER_CHOICES`).
    :param executor: an executor to use (and keep the state of); default a new one.
    :returns: one row per combined vector: ``timestamp`` and ``<feature>.<field>`` columns.
    """
    import pyarrow as pa

    executor = executor or BatchExecutor(features)
    combiner = Combiner(executor.outputs, per)
    if boundaries is None:
        boundaries = range(chunk_rows, len(events), chunk_rows)
    tables = []
    for batches in chunk_events(executor.sources, events, boundaries):
        size = sum(len(b.positions) for b in batches if b is not None)
        table, _ = combiner.combine(size, executor.process(batches))
        if table is not None:
            tables.append(table)
    held = combiner.finish()
    if held is not None:
        tables.append(held)
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")
