"""Replaying stored data sources: prefetched in background threads, merged in timestamp order.

One loader thread per source reads its blocks in order and prepares segments of
``segment_rows`` rows: the file read, the checksum, Parquet decoding and the merge keys are
C-level work that releases the GIL, so it overlaps with the graph's work on another core. A
loader is at most ``prefetch`` segments (compact Arrow data) ahead of the consumer, so memory
is bounded by ``sources * (prefetch + 2) * segment_rows`` rows plus one block file per source,
whatever the length of the range. The consumer turns the segments it reaches into event dicts
(Python work, done on one thread).

The consumer merges the sources' segments by ``(timestamp, arrival number)``: the arrival
number recorded with every event is the stable tie-break, so events with equal timestamps
come out in the order they were recorded live. Within a source the recorded order is kept
(timestamps are taken as their running maximum, so a late event is not moved). The merge
works on whole runs: every row up to the smallest "last key" of the sources' current segments
is sorted at once by Arrow, and the events are permuted in C.
"""

from __future__ import annotations

import bisect
import math
import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurizer._events import Event
from featurizer._feature import Feature
from featurizer.storage._blocks import open_block, read_block_bytes
from featurizer.storage._catalog import Catalog, SeriesInfo
from featurizer.storage._codec import SEQ_COLUMN, EventDecoder, require_pyarrow, schema_to_json
from featurizer.storage._errors import (
    DataHoleWarning,
    MissingBlockError,
    NoDataError,
    SchemaMismatchError,
    StorageError,
)
from featurizer.storage._reader import (
    Hole,
    SeriesPlan,
    conform,
    cut_sorted,
    float_view,
    format_ts,
    plan_series,
    series_arrow_schema,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["HOLE_POLICIES", "Replay", "ReplayChunk"]

HOLE_POLICIES = ("warn", "error", "ignore")
"""What a replay does about holes in its range: warn (:class:`DataHoleWarning`), raise, or
nothing. Holes are never filled either way."""

_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReplayChunk:
    """Consecutive merged events: ``events[i]`` came from source ``sources[i]``.

    :param sources: the source index of each event, or one ``int`` when they all come from
        the same source.
    :param events: the events, in replay order.
    :param warmup: whether these events are before the replay's output start.
    """

    __slots__ = ("events", "sources", "warmup")

    def __init__(self, sources: list[int] | int, events: list[Event], warmup: bool) -> None:
        self.sources = sources
        self.events = events
        self.warmup = warmup

    def __len__(self) -> int:
        return len(self.events)


class _Segment:
    """Consecutive rows of one source: Arrow columns, turned into event dicts when needed.

    Loader threads build segments (file reads, checksums, Parquet decoding and the merge keys
    are C-level work that releases the GIL); the consumer decodes the dicts, so the Python
    work happens on one thread and the queues hold compact Arrow data.
    """

    __slots__ = (
        "_decoder",
        "_events",
        "_table",
        "key_view",
        "keys",
        "pos",
        "seq_view",
        "seqs",
        "size",
    )

    def __init__(
        self, table: pa.Table, decoder: EventDecoder, keys: pa.Array, seqs: pa.Array
    ) -> None:
        self._table: pa.Table | None = table
        self._decoder = decoder
        self._events: list[Event] | None = None
        self.keys = keys
        self.seqs = seqs
        self.key_view = float_view(keys)
        self.seq_view = _int_view(seqs)
        self.size = len(keys)
        self.pos = 0

    @property
    def events(self) -> list[Event]:
        if self._events is None:
            assert self._table is not None
            self._events = self._decoder.decode(self._table)
            self._table = None
        return self._events

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def last(self) -> tuple[float, int]:
        return self.key_view[-1], self.seq_view[-1]


def _int_view(array: pa.Array) -> Any:
    if array.null_count == 0:
        try:
            view = memoryview(array.buffers()[1]).cast("q")
            return view[array.offset : array.offset + len(array)]
        except TypeError:
            pass
    return array.to_pylist()


def _uint_list(array: pa.Array) -> list[int]:
    try:
        view = memoryview(array.buffers()[1]).cast("Q")
        return view[array.offset : array.offset + len(array)].tolist()
    except TypeError:
        return array.to_pylist()


class Replay:
    """The stored events of some data sources over ``[start, end)``, merged in timestamp order.

    Building a replay checks everything that can be checked before reading: every source is
    stored with the schema its definition declares, the range has data, every planned block
    file exists, no two sessions overlap; holes are reported per ``holes``. Block contents
    (checksums, Parquet structure, schemas) are checked as they are read: a damaged block stops
    the replay with an error naming the series, the block and the path, never with wrong rows.

    :param root: the storage root.
    :param catalog: its catalog.
    :param sources: the data-source features to replay (index ``i`` in chunks is
        ``sources[i]``).
    :param start: the first timestamp to replay (``None``: from the beginning).
    :param end: replay events before this timestamp (``None``: to the end).
    :param output_start: events before this timestamp come in chunks marked ``warmup`` (used
        to warm windowed features up before a split's start).
    :param segment_rows: events decoded at once per source.
    :param prefetch: segments prepared ahead per source.
    :param holes: one of :data:`HOLE_POLICIES`.
    :raises NoDataError: a source is not stored, or has no data in the range.
    :raises SchemaMismatchError: a stored series' schema differs from its definition's.
    :raises MissingBlockError: a planned block file is missing.
    :raises OverlapError: two sessions stored the same times of a source.
    """

    def __init__(
        self,
        root: Path,
        catalog: Catalog,
        sources: Sequence[Feature],
        *,
        start: float | None = None,
        end: float | None = None,
        output_start: float | None = None,
        segment_rows: int = 16_384,
        prefetch: int = 8,
        holes: str = "warn",
    ) -> None:
        if holes not in HOLE_POLICIES:
            raise StorageError(
                f"holes must be one of {', '.join(map(repr, HOLE_POLICIES))}, received {holes!r}"
            )
        if not sources:
            raise StorageError("a replay needs at least one data source")
        if segment_rows < 1 or prefetch < 1:
            raise StorageError(
                f"segment_rows and prefetch must be >= 1, received {segment_rows!r} and "
                f"{prefetch!r}"
            )
        require_pyarrow()
        self.root = root
        self.catalog = catalog
        self.sources = list(sources)
        self.start = start
        self.end = end
        self.output_start = output_start
        self.segment_rows = segment_rows
        self.prefetch = prefetch
        self.plans: list[SeriesPlan] = [self._plan(feature) for feature in self.sources]
        self._injected: dict[int, Any] = {}
        self.resume: list[tuple[float, int] | None] = [
            self._resume_point(feature, plan)
            for feature, plan in zip(self.sources, self.plans, strict=True)
        ]
        """Per source, ``(timestamp, arrival number)`` of the full-state event (a book
        snapshot) it is replayed from, when it declares one and the range starts later."""
        self.data_end: float | None = None
        """Where the replayed data ends when a source is being recorded right now: the time
        before which every source has committed its events (a consistent cut); ``None`` when
        no source is being recorded."""
        self.recording: str | None = None
        """The session still recording when :attr:`data_end` is set."""
        self._cut_at_consistent_end()
        self.holes: list[Hole] = [hole for plan in self.plans for hole in self._holes_of(plan)]
        if self.holes and holes != "ignore":
            text = "; ".join(hole.describe() for hole in self.holes[:10])
            more = f" (and {len(self.holes) - 10} more)" if len(self.holes) > 10 else ""
            message = f"the replayed range has {len(self.holes)} hole(s): {text}{more}"
            if holes == "error":
                raise NoDataError(message + "; pass holes='warn' to replay anyway")
            warnings.warn(DataHoleWarning(message), stacklevel=3)
        self._decoders = [_decoder(plan) for plan in self.plans]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queues: list[queue.Queue[Any]] = []
        self.events_out = 0

    def _resume_point(self, feature: Feature, plan: SeriesPlan) -> tuple[float, int] | None:
        """Where a source whose state is rebuilt from full-state events must start.

        A data source definition may declare ``snapshot_field``: the name of a ``bool`` field
        that is true on events carrying the full state (an order book snapshot), the events
        after it being increments. Replaying such a source from the middle would give
        consumers increments without a base, so it is replayed from the last full-state
        event at or before the start (the events in between feed the warm-up). If there is
        none while earlier data exists, the replay is refused (never silently less).
        """
        field = getattr(feature.definition, "snapshot_field", None)
        if not field or self.start is None:
            return None
        series = plan.series
        before = [
            b for b in self.catalog.blocks(series.key, None, self.start) if b.start_ts <= self.start
        ]
        if not before:
            return None
        stored = self._stored_snapshot(series, field)
        for block in reversed(before):
            if stored is not None and block.end_ts < stored[0]:
                break
            found = self._last_snapshot(block, series, field)
            if found is not None:
                resume = found
                break
        else:
            found = None
        if stored is not None and (found is None or stored[:2] > found):
            resume = stored[:2]
            self._injected[self.sources.index(feature)] = stored[2]
        elif found is None:
            raise NoDataError(
                f"data source {feature.name!r} is rebuilt from full-state events "
                f"({field}=true) and none is stored before {format_ts(self.start)}: replaying "
                f"from there would start without its state. Start at or before its first "
                f"stored event ({format_ts(before[0].start_ts)})",
                series=series.label,
                path=str(self.catalog.path),
            )
        self.plans[self.sources.index(feature)] = plan_series(
            self.catalog, series, resume[0], self.end
        )
        return resume

    def _stored_snapshot(self, series: SeriesInfo, field: str) -> tuple[float, int, Any] | None:
        """The last snapshot stored for ``series`` (see :mod:`._snapshots`) at or before the
        start: its timestamp, arrival number and the one-row table holding it."""
        from featurizer.storage._snapshots import companion_key

        assert self.start is not None
        companion = self.catalog.series(companion_key(series.key))
        if companion is None:
            return None
        schema = series_arrow_schema(series)
        blocks = [b for b in self.catalog.blocks(companion.key) if b.start_ts <= self.start]
        best: tuple[float, int, Any] | None = None
        for block in blocks:
            data = read_block_bytes(self.root, block, companion.label)
            table = conform(
                open_block(data, block, companion.label, self.root / block.path, schema).read(),
                schema,
            )
            stamps = table.column("timestamp").to_pylist()
            seqs = table.column(SEQ_COLUMN).to_pylist()
            for index in range(len(stamps) - 1, -1, -1):
                if stamps[index] <= self.start:
                    if best is None or (stamps[index], seqs[index]) > best[:2]:
                        best = (float(stamps[index]), int(seqs[index]), table.slice(index, 1))
                    break
        return best

    def _last_snapshot(
        self, block: Any, series: SeriesInfo, field: str
    ) -> tuple[float, int] | None:
        """The last ``(timestamp, arrival number)`` of a full-state event at or before the
        start in one block."""
        assert self.start is not None
        data = read_block_bytes(self.root, block, series.label)
        parquet = open_block(
            data, block, series.label, self.root / block.path, series_arrow_schema(series)
        )
        table = parquet.read(columns=["timestamp", field, SEQ_COLUMN])
        stamps = table.column("timestamp").to_pylist()
        flags = table.column(field).to_pylist()
        seqs = table.column(SEQ_COLUMN).to_pylist()
        for index in range(len(stamps) - 1, -1, -1):
            if flags[index] and stamps[index] <= self.start:
                return (float(stamps[index]), int(seqs[index]))
        return None

    def _cut_at_consistent_end(self) -> None:
        """Read a running recording only up to where every source has committed."""
        live = [(p.committed_end, p.recording) for p in self.plans if p.committed_end is not None]
        if not live:
            return
        cut, session = min(live)
        assert cut is not None
        if self.end is not None and self.end <= cut:
            return
        if self.start is not None and cut <= self.start:
            raise NoDataError(
                f"session {session} is still recording and has committed every source only "
                f"up to {format_ts(cut)}, before the requested start {format_ts(self.start)}; "
                f"wait for it to commit more (or to end)",
                path=str(self.catalog.path),
            )
        self.end = cut
        self.data_end = cut
        self.recording = session

    @property
    def total_rows(self) -> int:
        """Rows in the planned blocks: an upper bound of the events the replay yields."""
        return sum(plan.rows for plan in self.plans)

    def _plan(self, feature: Feature) -> SeriesPlan:
        series = self.catalog.series(feature.key)
        if series is None:
            stored = [
                s.name
                for s in self.catalog.all_series()
                if s.kind == "data_source" and s.definition == feature.definition_name
            ]
            raise NoDataError(
                f"data source {feature.name!r} (definition {feature.definition_name!r}, params "
                f"{dict(feature.params)!r}) is not stored in this root; stored "
                f"{feature.definition_name!r} series: {', '.join(stored) or 'none'}. Record it "
                f"with `featurizer record`",
                series=f"{feature.name} (key {feature.short_key})",
                path=str(self.catalog.path),
            )
        self._check_schema(feature, series)
        plan = plan_series(self.catalog, series, self.start, self.end)
        if not plan.blocks and plan.committed_end is None:
            extent = self.catalog.series_stats().get(series.key)
            have = (
                f"it has data from {format_ts(extent[3])} to {format_ts(extent[4])}"
                if extent
                else "it has no stored blocks at all"
            )
            asked = (
                f"from {format_ts(self.start)} to {format_ts(self.end)}"
                if self.start is not None or self.end is not None
                else "at all"
            )
            raise NoDataError(
                f"no stored data {asked}; {have}",
                series=series.label,
                path=str(self.catalog.path),
            )
        for block in plan.blocks:
            path = self.root / block.path
            if not path.is_file():
                raise MissingBlockError(
                    "the catalog lists this block but its file does not exist (deleted or "
                    "moved?); run `featurizer storage verify` to list every damaged block",
                    series=series.label,
                    block=block.id,
                    path=str(path),
                )
        return plan

    def _holes_of(self, plan: SeriesPlan) -> tuple[Hole, ...]:
        """Holes of the output range (the warm-up before ``output_start`` is not asked for)."""
        start = self.output_start if self.output_start is not None else self.start
        if start == plan.start:
            return plan.holes
        return plan_series(self.catalog, plan.series, start, self.end).holes

    def _check_schema(self, feature: Feature, series: SeriesInfo) -> None:
        expected = schema_to_json(feature.definition.event_schema())
        if expected != schema_to_json_stored(series):
            blocks = self.catalog.blocks(series.key)
            where = str(self.root / blocks[0].path) if blocks else str(self.catalog.path)
            raise SchemaMismatchError(
                f"stored with schema {series.schema} but definition "
                f"{feature.definition_name!r} declares {_loads(expected)}; the stored events "
                f"cannot be replayed into this definition",
                series=series.label,
                block=blocks[0].id if blocks else None,
                path=where,
            )

    # loading --------------------------------------------------------------------------------

    def _segments(self, index: int) -> Iterator[_Segment]:
        pa = require_pyarrow()
        import pyarrow.compute as pc

        plan = self.plans[index]
        series = plan.series
        schema = series_arrow_schema(series)
        decoder = self._decoders[index]
        if decoder is None:  # a source of a running session with nothing committed yet
            return
        lo, hi = self.start, self.end
        resume = self.resume[index]
        from_seq = -1
        if resume is not None:
            lo, from_seq = resume
            injected = self._injected.get(index)
            if injected is not None:  # a stored snapshot: the state as of arrival from_seq
                yield _Segment(
                    injected,
                    decoder,
                    pa.array([lo], pa.float64()),
                    injected.column(SEQ_COLUMN).combine_chunks(),
                )
                from_seq += 1
        carry = -math.inf
        size = self.segment_rows
        for block in plan.blocks:
            if self._stop.is_set():
                return
            data = read_block_bytes(self.root, block, series.label)
            parquet = open_block(
                data, block, series.label, self.root / block.path, schema, dictionaries=True
            )
            for group in range(parquet.num_row_groups):
                if self._stop.is_set():
                    return
                try:
                    table = conform(parquet.read_row_group(group), schema)
                except Exception as error:
                    from featurizer.storage._errors import CorruptBlockError

                    raise CorruptBlockError(
                        f"cannot decode row group {group}: {error}",
                        series=series.label,
                        block=block.id,
                        path=str(self.root / block.path),
                    ) from error
                ts = table.column("timestamp").combine_chunks()
                keys = pc.cumulative_max(ts)
                if carry > -math.inf:
                    keys = pc.max_element_wise(keys, pa.scalar(carry, pa.float64()))
                if len(keys):
                    carry = keys[-1].as_py()
                view = float_view(keys)
                a = 0 if lo is None else bisect.bisect_left(view, lo)
                b = len(keys) if hi is None else bisect.bisect_left(view, hi)
                seqs = table.column(SEQ_COLUMN).combine_chunks()
                if from_seq >= 0 and a < b:
                    a = max(a, bisect.bisect_left(seqs.to_pylist(), from_seq))
                    if a < b:
                        from_seq = -1
                if a < b:
                    for offset in range(a, b, size):
                        n = min(size, b - offset)
                        yield _Segment(
                            table.slice(offset, n),
                            decoder,
                            keys.slice(offset, n),
                            seqs.slice(offset, n),
                        )
                if b < len(keys):
                    return

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _load(self, index: int) -> None:
        q = self._queues[index]
        try:
            for segment in self._segments(index):
                if not self._put(q, segment):
                    return
            self._put(q, _END)
        except BaseException as error:
            self._put(q, _Failure(error))

    def _start_threads(self) -> None:
        self._queues = [queue.Queue(maxsize=self.prefetch) for _ in self.sources]
        for index, feature in enumerate(self.sources):
            thread = threading.Thread(
                target=self._load,
                args=(index,),
                name=f"featurizer-replay-{feature.name}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _next_segment(self, index: int) -> _Segment | None:
        item = self._queues[index].get()
        if item is _END:
            return None
        if isinstance(item, _Failure):
            raise item.error
        segment: _Segment = item
        return segment

    # merging --------------------------------------------------------------------------------

    def chunks(self) -> Iterator[ReplayChunk]:
        """Merged events, chunk by chunk (starts the loader threads; closes them at the end).

        :raises StorageError: (and subclasses) when a block turns out to be damaged.
        """
        pa = require_pyarrow()
        import pyarrow.compute as pc

        self._start_threads()
        boundary = self.output_start
        if boundary is None and any(resume is not None for resume in self.resume):
            boundary = self.start
        count = len(self.sources)
        current: list[_Segment | None] = [None] * count
        done = [False] * count
        try:
            while True:
                for i in range(count):
                    if not done[i] and (current[i] is None or current[i].remaining == 0):  # type: ignore[union-attr]
                        current[i] = self._next_segment(i)
                        if current[i] is None:
                            done[i] = True
                active = [i for i in range(count) if not done[i]]
                if not active:
                    return
                if len(active) == 1:
                    i = active[0]
                    segment = current[i]
                    assert segment is not None
                    a, b = segment.pos, segment.size
                    segment.pos = b
                    keys = segment.key_view[a:b]
                    yield from self._split(i, segment.events[a:b], keys, boundary)
                    continue
                watermark = min(current[i].last() for i in active)  # type: ignore[union-attr]
                parts: list[tuple[int, _Segment, int, int]] = []
                for i in active:
                    segment = current[i]
                    assert segment is not None
                    a = segment.pos
                    b = a + cut_sorted(
                        segment.key_view[a:], segment.seq_view[a:], watermark[0], watermark[1]
                    )
                    if b > a:
                        parts.append((i, segment, a, b))
                        segment.pos = b
                if len(parts) == 1:
                    i, segment, a, b = parts[0]
                    yield from self._split(i, segment.events[a:b], segment.key_view[a:b], boundary)
                    continue
                keys = pa.concat_arrays([s.keys.slice(a, b - a) for _, s, a, b in parts])
                seqs = pa.concat_arrays([s.seqs.slice(a, b - a) for _, s, a, b in parts])
                order = pc.sort_indices(
                    pa.table({"k": keys, "s": seqs}),
                    sort_keys=[("k", "ascending"), ("s", "ascending")],
                )
                permutation = _uint_list(order)
                events_all: list[Event] = []
                sources_all: list[int] = []
                for i, segment, a, b in parts:
                    events_all += segment.events[a:b]
                    sources_all += [i] * (b - a)
                events = list(map(events_all.__getitem__, permutation))
                sources = list(map(sources_all.__getitem__, permutation))
                merged_keys = float_view(keys.take(order)) if boundary is not None else None
                yield from self._split(sources, events, merged_keys, boundary)
        finally:
            self.close()

    def _split(
        self, sources: list[int] | int, events: list[Event], keys: Any, boundary: float | None
    ) -> Iterator[ReplayChunk]:
        self.events_out += len(events)
        if boundary is None:
            yield ReplayChunk(sources, events, False)
            return
        if keys[0] >= boundary:
            yield ReplayChunk(sources, events, False)
            return
        if keys[-1] < boundary:
            yield ReplayChunk(sources, events, True)
            return
        cut = bisect.bisect_left(keys, boundary)
        if isinstance(sources, int):
            yield ReplayChunk(sources, events[:cut], True)
            yield ReplayChunk(sources, events[cut:], False)
        else:
            yield ReplayChunk(sources[:cut], events[:cut], True)
            yield ReplayChunk(sources[cut:], events[cut:], False)

    def events(self) -> Iterator[tuple[Feature, Event]]:
        """The merged events one by one, as ``(data_source_feature, event)`` (slower than
        :meth:`chunks`; for tests and small tools)."""
        features = self.sources
        for chunk in self.chunks():
            if isinstance(chunk.sources, int):
                feature = features[chunk.sources]
                for event in chunk.events:
                    yield feature, event
            else:
                for index, event in zip(chunk.sources, chunk.events, strict=True):
                    yield features[index], event

    def close(self) -> None:
        """Stop the loader threads and wait for them (safe to call twice)."""
        self._stop.set()
        for q in self._queues:
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass
        for thread in self._threads:
            thread.join(timeout=10.0)
        self._threads = []


def _decoder(plan: SeriesPlan) -> EventDecoder | None:
    schema = series_arrow_schema(plan.series)
    return EventDecoder(schema, plan.series.schema) if schema is not None else None


def _loads(text: str) -> dict[str, str]:
    import json

    return dict(json.loads(text))


def schema_to_json_stored(series: SeriesInfo) -> str:
    """The stored series' schema in :func:`schema_to_json` form."""
    import json

    return json.dumps(series.schema, sort_keys=True)
