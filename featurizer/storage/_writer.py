"""BlockWriter: records events of data sources and features without blocking the hot path."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from array import array
from collections.abc import Callable, MutableSequence, Sequence
from typing import TYPE_CHECKING, Any

from featurizer._events import Event, full_schema
from featurizer._feature import Feature
from featurizer.storage._blocks import BlockFormat, schema_bytes, write_block
from featurizer.storage._catalog import BlockInfo, SeriesInfo
from featurizer.storage._codec import SEQ_COLUMN, EventEncoder, require_pyarrow, schema_to_json
from featurizer.storage._collector import raise_first_threshold
from featurizer.storage._columns import ColumnBuffer
from featurizer.storage._compactors import Compactor, MemoryBasedCompactor, OpenBlockState
from featurizer.storage._errors import StorageError
from featurizer.storage._reader import float_view, series_arrow_schema
from featurizer.storage._snapshots import SnapshotTrack, snapshot_interval_key
from featurizer.storage._wal import WalWriter, encode_record
from featurizer.storage._writer_process import WriterProcess, process_supported

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    from featurizer.storage._storage import Storage

__all__ = ["BlockWriter", "series_info_for"]

logger = logging.getLogger(__name__)

_BYTE_INDICES = 256
"""Up to this many series, the hot path records each event's series as one byte."""

_FLAT_KINDS = frozenset({"float", "int", "str", "bool", "bytes"})
"""Field kinds a recorder holds as nothing the garbage collector tracks."""


def series_info_for(feature: Feature) -> SeriesInfo:
    """The catalog description of a feature (or data source) as a series.

    :raises SchemaMismatchError: if its schema has a type storage cannot represent.
    """
    return SeriesInfo(
        key=feature.key,
        name=feature.name,
        definition=feature.definition_name,
        kind="data_source" if feature.is_data_source else "feature",
        params=_plain(feature.params),
        children={name: child.key for name, child in feature.children.items()},
        schema=_schema_dict(feature),
    )


def _stored_extents(storage: Storage, keys: list[str]) -> dict[str, list[tuple[float, float, str]]]:
    """Per series key, the time spans other sessions stored (first, last, session)."""
    extents: dict[str, list[tuple[float, float, str]]] = {}
    wanted = set(keys)
    spans: dict[tuple[str, str], list[float]] = {}
    for block in storage.catalog.all_blocks():
        if block.series_key in wanted:
            span = spans.setdefault(
                (block.series_key, block.session), [block.start_ts, block.end_ts]
            )
            span[0] = min(span[0], block.start_ts)
            span[1] = max(span[1], block.end_ts)
    for (key, session), (first, last) in spans.items():
        extents.setdefault(key, []).append((first, last, session))
    return extents


def _schema_dict(feature: Feature) -> dict[str, str]:
    import json

    try:
        return dict(json.loads(schema_to_json(feature.definition.event_schema())))
    except StorageError as error:
        label = f"{feature.name} (key {feature.short_key})"
        raise type(error)(error.reason, series=label) from error


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _nothing() -> None:
    """A release with nothing to give back."""


def recorded_bytes(batch: pa.RecordBatch) -> int:
    """The bytes of a batch a WAL cycle built (``nbytes``, what open blocks and compactors
    count), without handing the GIL over: pyarrow's ``nbytes`` releases it, and the run's
    thread pays for every hand-over of a background thread (it must give the GIL back).

    Such a batch's columns are of a fixed width without nulls (sliced or not), or not sliced
    at all (their buffers are theirs alone: counted whole, which is one offset more per
    offsets buffer than ``nbytes``). Any other column asks pyarrow.
    """
    total = 0
    for column in batch.columns:
        try:
            width = column.type.bit_width
        except ValueError:  # (not of a fixed width)
            width = 0
        if width and width % 8 == 0 and column.buffers()[0] is None:
            total += len(column) * width // 8
        elif column.offset == 0:
            total += column.get_total_buffer_size()
        else:
            total += column.nbytes
    return total


class _OpenBlock:
    """The in-memory block of one series: record batches waiting to be written."""

    __slots__ = ("batches", "first_seq", "first_ts", "max_ts", "nbytes", "rows")

    def __init__(self) -> None:
        self.batches: list[pa.RecordBatch] = []
        self.rows = 0
        self.nbytes = 0
        self.first_seq = -1
        self.first_ts: float | None = None
        self.max_ts: float | None = None

    def state(self) -> OpenBlockState:
        return OpenBlockState(
            rows=self.rows, nbytes=self.nbytes, first_ts=self.first_ts, max_ts=self.max_ts
        )

    def add(self, batch: pa.RecordBatch, nbytes: int) -> None:
        """Add a batch of ``nbytes`` bytes in memory (:func:`recorded_bytes`, or a slice's share
        of its batch's: pyarrow's ``nbytes`` would hand the GIL over)."""
        if not batch.num_rows:
            return
        if not self.rows:
            self.first_seq = batch.column(SEQ_COLUMN)[0].as_py()
            self.first_ts = batch.column("timestamp")[0].as_py()
        self.batches.append(batch)
        self.rows += batch.num_rows
        self.nbytes += nbytes

    def take(self) -> list[pa.RecordBatch]:
        batches = self.batches
        self.batches = []
        self.rows = 0
        self.nbytes = 0
        self.first_seq = -1
        self.first_ts = None
        return batches


class _Work:
    """Batches the WAL thread acknowledged, for the publisher thread."""

    __slots__ = ("batches", "end_seq", "highs", "max_ts")

    def __init__(
        self,
        batches: list[Any],
        end_seq: int,
        max_ts: float | None,
        highs: dict[int, float | None],
    ) -> None:
        self.batches = batches
        self.end_seq = end_seq
        self.max_ts = max_ts
        self.highs = highs
        """Per series index, the largest timestamp of its batch."""


class _Done:
    """The last item: finish cleanly (write everything, close the session) or just stop."""

    __slots__ = ("clean",)

    def __init__(self, clean: bool) -> None:
        self.clean = clean


class _Series:
    __slots__ = (
        "buffer",
        "encoder",
        "feature",
        "index",
        "info",
        "open",
        "ordinal",
        "schema_message",
    )

    def __init__(self, index: int, feature: Feature, info: SeriesInfo, ordinal: int) -> None:
        self.index = index
        self.feature = feature
        self.info = info
        self.encoder = EventEncoder(info.label, info.schema, series_arrow_schema(info))
        fields = [
            (name, info.schema[name]) for name in full_schema(feature.definition.event_schema())
        ]
        self.buffer = ColumnBuffer(info.label, fields, self.encoder)
        self.open = _OpenBlock()
        self.ordinal = ordinal
        self.schema_message: tuple[pa.Schema, bytes] | None = None
        """The last batch schema of the series and its serialized IPC message."""

    def schema_message_of(self, batch: pa.RecordBatch) -> bytes:
        """``batch.schema.serialize()``, kept while the series' schema does not change."""
        kept = self.schema_message
        if kept is None or not kept[0].equals(batch.schema, check_metadata=True):
            kept = (batch.schema, batch.schema.serialize().to_pybytes())
            self.schema_message = kept
        return kept[1]


class BlockWriter:
    """Records events of data sources and features into a storage root.

    The hot path (the callbacks from :meth:`graph_callback` and :meth:`event_callback`) only
    appends the event to an in-memory list. A background *WAL thread* wakes every
    ``sync_interval`` seconds, encodes what arrived into Arrow batches, appends them to the
    write-ahead log and fsyncs it (from then on the events are *acknowledged*: they survive a
    crash of the process), then hands them to a *publisher thread* which adds them to each
    series' open block. The ``compactor`` decides when an open block is written: as a Parquet
    file under a temporary name, fsynced, renamed into place, and only then committed to the
    catalog in one transaction. WAL segments whose events are all in committed blocks are
    deleted. Writing blocks never delays acknowledgements (up to a bounded queue).

    Memory stays bounded: at most ``max_pending`` events wait for the background thread (a
    producer faster than the writer is slowed down at that point: backpressure, never data
    loss), each open block is capped by the compactor and all of them together by
    ``max_open_bytes``. The WAL is checkpointed (every open block written) when it exceeds
    ``max_wal_bytes``.

    Only one writer may write to a root at a time (an exclusive lock, released by the kernel
    if the process dies). Opening a writer first recovers what a crashed writer left in the WAL.

    :param storage: the storage root.
    :param features: the series to record (data sources and/or features).
    :param compactor: when to cut blocks (default :class:`MemoryBasedCompactor`).
    :param sync_interval: seconds between WAL flushes (the acknowledgement latency).
    :param max_pending: events buffered before producers wait.
    :param max_open_bytes: in-memory size of all open blocks together.
    :param max_wal_bytes: WAL size that triggers a checkpoint.
    :param on_acknowledged: called (from the writer's thread) with the total number of
        events acknowledged so far, after every WAL fsync.
    :param max_block_lag: write a series' open block once its first event is this many
        seconds (of event time) behind the newest acknowledged event, so that readers of the
        running session (who see a consistent cut: up to where every series has committed)
        are never held back further by a slow series; ``None``: only the compactor decides.
    :param min_block_interval: seconds (of wall-clock time) between two writes of lagging
        blocks at least: a recording that runs far faster than real time (a synthetic market,
        events replayed) would otherwise write a small block of every series at every WAL
        cycle; its readers then lag it by ``max_block_lag`` of event time or about this long.
    :param snapshot_interval: seconds of event time between the snapshots stored of sources
        whose definition gives a ``state_keeper`` (order books), taken as their blocks are
        committed (``None``: none are stored).
    :param allow_overlap: record events of a series for times another session already
        stored (replays of those times then fail with :class:`OverlapError` until one session
        is dropped). By default the writer refuses them before acknowledging anything of
        them: it stops with an :class:`OverlapError` naming the other session.
    :param gc_threshold: while the writer records a series with container fields (lists or
        tuples: an order book's levels), the garbage collector's first threshold is raised to
        at least this, and restored by :meth:`stop` (the recorder holds those fields, which
        the collector tracks, until their WAL cycle: at Python's default of 700 it collects
        every few dozen book events). ``None`` leaves the collector alone. The setting is the
        process's: see :mod:`featurizer.storage._collector`.
    :param process: do the background work (encoding, WAL, blocks, snapshots, catalog) in a
        child process forked when the writer starts, instead of threads of this process: the
        recording's thread then shares the GIL with nothing but a thread shipping the raw
        buffers (see :mod:`featurizer.storage._writer_process`; POSIX only). The storage's
        catalog connections are closed at the fork (they reopen when next used).

    >>> import tempfile
    >>> from featurizer.storage import Storage
    >>> from featurizer.testing import ExampleTicker
    >>> ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    >>> with tempfile.TemporaryDirectory() as root:
    ...     with Storage(root) as storage:
    ...         with storage.writer([ticker]) as writer:
    ...             record = writer.event_callback(ticker)
    ...             for i in range(3):
    ...                 record({"timestamp": float(i), "receipt_timestamp": float(i),
    ...                         "bid": 1.0, "ask": 2.0})
    ...         [event["timestamp"] for event in storage.read_events(ticker)]
    [0.0, 1.0, 2.0]
    """

    def __init__(
        self,
        storage: Storage,
        features: Sequence[Feature],
        *,
        compactor: Compactor | None = None,
        sync_interval: float = 0.1,
        max_pending: int = 200_000,
        max_open_bytes: int = 256 * 1024 * 1024,
        max_wal_bytes: int = 512 * 1024 * 1024,
        wal_segment_bytes: int = 64 * 1024 * 1024,
        on_acknowledged: Callable[[int], None] | None = None,
        block_format: BlockFormat | None = None,
        allow_overlap: bool = False,
        snapshot_interval: float | None = 60.0,
        max_block_lag: float | None = 60.0,
        min_block_interval: float = 1.0,
        gc_threshold: int | None = 50_000,
        process: bool = False,
    ) -> None:
        pa = require_pyarrow()
        # Import what the background threads use now: an import there holds the GIL for a
        # good fraction of a second while the recording's hot path waits for it. (Arrow's
        # first conversion of a Python sequence imports pandas, when it is installed.)
        import pyarrow.compute
        import pyarrow.parquet  # noqa: F401

        pa.array([0.0])

        unique: dict[str, Feature] = {}
        for feature in features:
            unique.setdefault(feature.key, feature)
        if not unique:
            raise StorageError("a BlockWriter needs at least one feature or data source to record")
        if not sync_interval > 0:
            raise StorageError(f"sync_interval must be positive, received {sync_interval!r}")
        if process and not process_supported():
            raise StorageError(
                "process=True needs os.fork (a POSIX system); record with process=False"
            )
        self.storage = storage
        self.compactor = compactor or MemoryBasedCompactor()
        self.sync_interval = sync_interval
        self.max_pending = max(1, max_pending)
        self.max_open_bytes = max_open_bytes
        self.max_wal_bytes = max_wal_bytes
        self.wal_segment_bytes = wal_segment_bytes
        self.on_acknowledged = on_acknowledged
        self.snapshot_interval = snapshot_interval
        self.max_block_lag = max_block_lag
        self.min_block_interval = min_block_interval
        self._next_lag_flush = 0.0  # (monotonic time)
        self._lag_deferred = False
        self.format = block_format or storage.format
        self._features = list(unique.values())
        if storage.readonly:
            raise StorageError(
                "this storage root is open read-only; it cannot be recorded into",
                path=str(storage.root),
            )
        self._lock = storage.writer_lock()
        self._lock.acquire()
        try:
            recovered = storage.recover(_locked=True)
            infos = [storage.catalog.register_series(series_info_for(f)) for f in self._features]
            self.session = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
            storage.catalog.begin_session(self.session, [i.key for i in infos], os.getpid())
        except BaseException:
            self._lock.release()
            raise
        self._series = [
            _Series(i, feature, info, 0)
            for i, (feature, info) in enumerate(zip(self._features, infos, strict=True))
        ]
        self._by_key = {s.feature.key: s for s in self._series}
        self._tracks = self._snapshot_tracks()
        if self._tracks:  # what recovery continues them with after a crash
            storage.catalog.set_meta(snapshot_interval_key(self.session), str(snapshot_interval))
        self._stored_extents = (
            {} if allow_overlap else _stored_extents(storage, [s.info.key for s in self._series])
        )
        # The series of each event not yet taken, in arrival order: bytes (appending one is
        # cheaper than to a list, and a cycle takes them as one copy) up to 256 series.
        self._order: MutableSequence[int] = (
            bytearray() if len(self._series) <= _BYTE_INDICES else array("i")
        )
        self._recorders: dict[int, Callable[[Event], None]] = {}
        # Arrival numbers are never reused within a root: after every block the catalog
        # knows and every block file it does not (an older catalog in place).
        self._next_seq = max(storage.catalog.max_seq(), recovered.max_seq_on_disk) + 1
        self._taken = 0  # events taken from the hot path's buffers (to be acknowledged)
        self._acknowledged = 0
        self._max_ts: float | None = None
        self._min_ts: float | None = None
        self._wal = WalWriter(storage.root / "wal", self.session)
        self._published: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._processed_seq = self._next_seq
        self._session_max_ts: float | None = None
        self._covered_ts: float | None = None
        self._pending_ts: dict[int, float] = {}
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._acked = threading.Condition()
        self._stopping = False
        self._stopped = False
        self._failure: BaseException | None = None
        self._failure_listener: Callable[[BaseException], None] | None = None
        self._rejected: BaseException | None = None
        self.blocks_written = 0
        self.bytes_written = 0
        self._pool: ThreadPoolExecutor | None = None
        self._publisher = threading.Thread(
            target=self._publish, name="featurizer-block-publisher", daemon=True
        )
        self._thread = threading.Thread(
            target=self._run, name="featurizer-block-writer", daemon=True
        )
        holds_containers = any(
            kind not in _FLAT_KINDS for s in self._series for kind in s.info.schema.values()
        )
        self._release_collector = (
            raise_first_threshold(gc_threshold)
            if gc_threshold is not None and holds_containers
            else _nothing
        )
        self._process: WriterProcess | None = None
        if process:
            try:
                self._process = WriterProcess(self)  # (forks: the child never returns from it)
            except BaseException:
                self._release_collector()
                self._lock.release()
                raise
            self._thread = threading.Thread(
                target=self._process.ship, name="featurizer-block-shipper", daemon=True
            )
        self._thread.start()

    # hot path -------------------------------------------------------------------------------

    def _appender(self, feature: Feature) -> Callable[[Event], None]:
        series = self._by_key.get(feature.key)
        if series is None:
            raise StorageError(
                f"{feature.name!r} (key {feature.short_key}) is not recorded by this writer "
                f"(recorded: {', '.join(s.feature.name for s in self._series)})"
            )
        recorder = self._recorders.get(series.index)
        if recorder is None:
            recorder = series.buffer.recorder(
                series.index, self._order, self.max_pending, self._wait_for_room, self._reject
            )
            self._recorders[series.index] = recorder
        return recorder

    def event_callback(self, feature: Feature) -> Callable[[Event], None]:
        """A callback ``callback(event)`` recording events of ``feature`` (for emitters).

        :raises StorageError: if ``feature`` is not recorded by this writer.
        """
        return self._appender(feature)

    def graph_callback(self, feature: Feature) -> Callable[[Feature, Event], None]:
        """A callback ``callback(feature, event)`` for :meth:`FeatureStreamGraph.set_callback`.

        :raises StorageError: if ``feature`` is not recorded by this writer.
        """
        self._appender(feature)
        return self._by_key[feature.key].buffer.graph_recorder()

    def append(self, feature: Feature, event: Event) -> None:
        """Record one event of ``feature`` (convenience; the callbacks are faster)."""
        self._appender(feature)(event)

    def _wait_for_room(self) -> None:
        self._wake.set()
        with self._room:
            while len(self._order) >= self.max_pending:
                failure = self.failure()
                if failure is not None:
                    raise StorageError(
                        f"the block writer failed: {type(failure).__name__}: {failure}"
                    ) from failure
                if self._stopped or not self._thread.is_alive():
                    raise StorageError("the block writer is stopped; events cannot be recorded")
                self._room.wait(0.05)

    # state ----------------------------------------------------------------------------------

    @property
    def features(self) -> list[Feature]:
        """The recorded series' features."""
        return list(self._features)

    @property
    def process_id(self) -> int | None:
        """The writer process's pid (``process=True``), else ``None``."""
        return None if self._process is None else self._process.pid

    @property
    def acknowledged(self) -> int:
        """Events of this session acknowledged so far (durable in the WAL or in blocks)."""
        return self._acknowledged

    @property
    def pending(self) -> int:
        """Events appended and not yet taken by the background work (at most
        ``max_pending``: then producers wait)."""
        return len(self._order)

    def failure(self) -> BaseException | None:
        """Why the writer stopped: a malformed event it refused, or an error of its threads."""
        return self._failure or self._rejected

    def sync(self, timeout: float | None = 30.0) -> int:
        """Acknowledge every event appended so far (flush and fsync the WAL) now.

        :param timeout: seconds to wait at most.
        :returns: the total number of events acknowledged.
        :raises StorageError: if the writer failed or the timeout passed.
        """
        target = self._taken + len(self._order)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._acked:
            while self._acknowledged < target:
                self._raise_failure()
                if self._stopped:
                    break
                self._wake.set()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise StorageError(f"sync() timed out after {timeout} s")
                self._acked.wait(0.05 if remaining is None else min(0.05, remaining))
        self._raise_failure()
        return self._acknowledged

    def _raise_failure(self) -> None:
        failure = self.failure()
        if failure is not None:
            raise StorageError(
                f"the block writer failed: {type(failure).__name__}: {failure}"
            ) from failure

    # background thread ----------------------------------------------------------------------

    def _run(self) -> None:
        """The WAL thread: encode what arrived, append it to the WAL, fsync, acknowledge."""
        publisher = self._publisher
        publisher.start()
        clean = False
        try:
            while self._failure is None:
                self._wake.wait(self.sync_interval)
                self._wake.clear()
                stopping = self._stopping or self._rejected is not None
                self._cycle()
                if stopping:
                    clean = True
                    break
        except BaseException as error:
            self._fail(error)
        finally:
            self._put(_Done(clean=clean and self._failure is None))
            publisher.join()
            self._stopped = True
            with self._room:
                self._room.notify_all()
            with self._acked:
                self._acked.notify_all()

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
            if self._failure_listener is not None:
                self._failure_listener(error)
            # Raised to the caller by stop(), sync() and the hot path (who report it).
            logger.debug("block writer failed: %s: %s", type(error).__name__, error)

    def _reject(self, error: BaseException) -> None:
        """A malformed event: refuse it, store what was committed before it, then stop."""
        if self._rejected is None:
            self._rejected = error
            logger.error("block writer stops: %s", error)
            self._wake.set()

    def _put(self, item: Any) -> None:
        """Hand work to the publisher thread (waits while it is behind: bounded memory)."""
        while True:
            try:
                self._published.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self._publisher.is_alive():
                    return
                if self._failure is not None and not isinstance(item, _Done):
                    return

    def _take_order(self) -> MutableSequence[int] | None:
        """The series of every event committed so far, in arrival order, taken out of the
        shared order (producers waiting for room are woken); ``None`` if there is none."""
        order = self._order
        n = len(order)
        if not n:
            return None
        taken = order[:n]
        self._taken += n  # (before they leave the buffers: sync() never waits for less)
        del order[:n]
        with self._room:
            self._room.notify_all()
        return taken

    def _cycle(self) -> None:
        pa = require_pyarrow()
        import pyarrow.compute as pc

        taken = self._take_order()
        if taken is None:
            return
        n = len(taken)
        base = self._next_seq
        self._next_seq += n
        kind = pa.uint8() if len(self._series) <= _BYTE_INDICES else pa.int32()
        indices = pa.Array.from_buffers(kind, n, [None, pa.py_buffer(taken)])
        # (series in order of first appearance; a stable sort of the indices gives every
        # series' arrival numbers at once, series after series: few calls into Arrow, each
        # one a hand-over of the GIL the run's thread needs back)
        counts = {item["values"]: item["counts"] for item in pc.value_counts(indices).to_pylist()}
        arrivals = pc.add(pc.sort_indices(indices).cast(pa.int64()), base)
        offsets = {}
        offset = 0
        for index in sorted(counts):
            offsets[index] = offset
            offset += counts[index]
        batches: list[tuple[_Series, Any]] = []
        spans: list[tuple[float | None, float | None]] = []
        firsts: list[tuple[int, int]] = []  # per record: its first and largest arrival number
        low: float | None = None
        high: float | None = None
        for index, count in counts.items():
            series = self._series[index]
            seqs = arrivals.slice(offsets[index], count)
            batch = series.buffer.take(count, seqs)
            firsts.append((int(seqs[0].as_py()), int(seqs[-1].as_py())))
            batches.append((series, batch))
            span = pc.min_max(batch.column("timestamp")).as_py()
            spans.append((span["min"], span["max"]))
            if span["min"] is not None:
                low = span["min"] if low is None else min(low, span["min"])
                high = span["max"] if high is None else max(high, span["max"])
        if self._stored_extents:
            self._refuse_overlap(batches, spans)
        cycle = {
            "storage": self.storage.storage_id,
            "session": self.session,
            "cycle_first": base,
            "cycle_rows": n,
            "cycle_min_ts": low,
            "cycle_max_ts": high,
        }
        records = [
            encode_record(
                batch,
                {
                    **cycle,
                    "series": series.info.key,
                    "first_seq": first[0],
                    "max_seq": first[1],
                    "min_ts": span[0],
                    "max_ts": span[1],
                },
                series.schema_message_of(batch),
            )
            for (series, batch), first, span in zip(batches, firsts, spans, strict=True)
        ]
        self._wal.write(records, base + n - 1)
        if low is not None and high is not None:
            self._min_ts = low if self._min_ts is None else min(self._min_ts, low)
            self._max_ts = high if self._max_ts is None else max(self._max_ts, high)
        with self._acked:
            self._acknowledged += n
            self._acked.notify_all()
        if self.on_acknowledged is not None:
            self.on_acknowledged(self._acknowledged)
        if self._wal.current_size >= self.wal_segment_bytes:
            self._wal.rotate()
        highs = {series.index: span[1] for (series, _), span in zip(batches, spans, strict=True)}
        batches.sort(key=lambda pair: pair[0].index)
        self._put(_Work(batches=batches, end_seq=base + n, max_ts=self._max_ts, highs=highs))

    def _refuse_overlap(
        self, batches: list[tuple[_Series, Any]], spans: list[tuple[float | None, float | None]]
    ) -> None:
        from featurizer.storage._errors import OverlapError
        from featurizer.storage._reader import format_ts

        for (series, _), (low, high) in zip(batches, spans, strict=True):
            if low is None or high is None:
                continue
            for first, last, session in self._stored_extents.get(series.info.key, ()):
                if low <= last and high >= first:
                    raise OverlapError(
                        f"this recording reached {format_ts(low)} .. {format_ts(high)}, which "
                        f"session {session} already stored ({format_ts(first)} .. "
                        f"{format_ts(last)}); storing it again would duplicate those events. "
                        f"Nothing of it was stored. Record into another root, or drop the old "
                        f"session first (`featurizer storage drop-session {session}`)",
                        series=series.info.label,
                        path=str(self.storage.root),
                    )

    def _publish(self) -> None:
        """The publisher thread: open blocks, compaction, block files, catalog commits."""
        try:
            while True:
                try:
                    item = self._published.get(timeout=self._deferred_lag_flush())
                except queue.Empty:  # no new events: write the blocks a lag flush deferred
                    if self._failure is None:
                        self._flush_lagging(self._session_max_ts)
                        self._release_wal()
                    continue
                if isinstance(item, _Done):
                    if item.clean:
                        self._finish()
                    return
                if self._failure is not None:
                    continue
                self._session_max_ts = item.max_ts
                self._pending_ts = {
                    series.index: batch.column("timestamp")[0].as_py()
                    for series, batch in item.batches
                    if batch.num_rows
                }
                for series, batch in item.batches:
                    self._add(series, batch, item.highs[series.index])
                    self._pending_ts.pop(series.index, None)
                self._covered_ts = item.max_ts
                self._processed_seq = item.end_seq
                self._flush_lagging(item.max_ts)
                self._enforce_memory()
                if self._wal.bytes_written >= self.max_wal_bytes:
                    self._checkpoint()
                self._release_wal()
        except BaseException as error:
            self._fail(error)
        finally:
            if self._pool is not None:
                self._pool.shutdown()

    def _add(self, series: _Series, batch: pa.RecordBatch, high: float | None) -> None:
        """Add a batch to the series' open block, writing the block where the compactor cuts
        it; ``high``: the batch's largest timestamp (known from the WAL cycle: an Arrow kernel
        here would be one more hand-over of the GIL the recording's thread needs back)."""
        block = series.open
        timestamps = float_view(batch.column("timestamp"))
        size = recorded_bytes(batch)
        cuts = self.compactor.cut_points(block.state(), timestamps, size)
        rows = batch.num_rows
        start = 0
        for cut in cuts:
            if cut > start:
                block.add(batch.slice(start, cut - start), size * (cut - start) // rows)
            if cut < rows:
                self._pending_ts[series.index] = timestamps[cut]
            else:
                self._pending_ts.pop(series.index, None)
            self._flush(series)
            start = cut
        if start < rows:
            block.add(batch.slice(start), size * (rows - start) // rows)
        if high is not None:
            block.max_ts = high if block.max_ts is None else max(block.max_ts, high)

    def _deferred_lag_flush(self) -> float | None:
        """Seconds until lagging blocks deferred by ``min_block_interval`` may be written
        (``None``: none are waiting)."""
        if not self._lag_deferred:
            return None
        return max(0.0, self._next_lag_flush - time.monotonic())

    def _flush_lagging(self, newest: float | None) -> None:
        """Write open blocks that hold the readers' consistent cut too far back."""
        if self.max_block_lag is None or newest is None:
            return
        limit = newest - self.max_block_lag
        lagging = [
            series
            for series in self._series
            if series.open.rows
            and series.open.first_ts is not None
            and series.open.first_ts < limit
        ]
        now = time.monotonic()
        self._lag_deferred = bool(lagging) and now < self._next_lag_flush
        if lagging and not self._lag_deferred:
            self._flush_many(lagging)
            self._next_lag_flush = now + self.min_block_interval

    def _enforce_memory(self) -> None:
        total = sum(s.open.nbytes for s in self._series)
        if total <= self.max_open_bytes:
            return
        for series in sorted(self._series, key=lambda s: -s.open.nbytes):
            if total <= self.max_open_bytes // 2:
                break
            total -= series.open.nbytes
            self._flush(series)

    def _checkpoint(self) -> None:
        self._flush_all()
        self._wal.rotate()
        self._wal.bytes_written = 0

    def _release_wal(self) -> None:
        low_water = min(
            (s.open.first_seq for s in self._series if s.open.rows), default=self._processed_seq
        )
        self._wal.delete_up_to(min(low_water, self._processed_seq))

    def _flush(self, series: _Series) -> None:
        self._flush_many([series])

    def _flush_all(self) -> None:
        self._flush_many(self._series)

    def _flush_many(self, series_list: Sequence[_Series]) -> None:
        """Write the open blocks of these series: encoded and published in parallel (Parquet
        encoding and file writes release the GIL), then committed together in one catalog
        transaction. Until then, each series holds the readers' consistent cut back to its
        first unwritten event."""
        pending = []
        saved: dict[int, float | None] = {}
        for series in series_list:
            table = self._take_table(series)
            if table is not None:
                saved[series.index] = self._pending_ts.get(series.index)
                self._pending_ts[series.index] = table.column("timestamp")[0].as_py()
                pending.append((series, table))
        if not pending:
            return
        if len(pending) > 1:
            if self._pool is None:  # (kept for the session: no thread starts per flush)
                from concurrent.futures import ThreadPoolExecutor

                workers = min(os.cpu_count() or 1, 4)
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="featurizer-block")
            blocks = list(self._pool.map(lambda item: self._write(*item), pending))
        else:
            blocks = [self._write(*pending[0])]
        schemas: list[bytes | None] = []
        for series, table in pending:
            before = saved[series.index]  # events of the batch being added, not yet in a block
            if before is None:
                self._pending_ts.pop(series.index, None)
            else:
                self._pending_ts[series.index] = before
            schema = series.encoder.arrow_schema
            stored_schema = series.info.arrow_schema
            new_schema = schema_bytes(table.schema)
            refine = schema is not None and stored_schema != new_schema
            schemas.append(new_schema if (stored_schema is None or refine) else None)
        first = min(block.start_ts for block in blocks)
        last = max(block.end_ts for block in blocks)
        if self._min_ts is not None:
            first = min(first, self._min_ts)
        if self._session_max_ts is not None:
            last = max(last, self._session_max_ts)
        self.storage.catalog.commit_blocks(
            list(zip(blocks, schemas, strict=True)),
            session_first_ts=first,
            session_last_ts=last,
            covers=self._covers(),
        )
        for (series, _), block, recorded in zip(pending, blocks, schemas, strict=True):
            if recorded is not None:
                import attrs

                series.info = attrs.evolve(series.info, arrow_schema=recorded)
            series.ordinal += 1
            self.blocks_written += 1
            self.bytes_written += block.bytes
        for series, table in pending:
            if series.index in self._tracks:
                self._snapshot(series, table)

    def _snapshot_tracks(self) -> dict[int, SnapshotTrack]:
        """Per series index, the periodic snapshots of sources with a state keeper."""
        if self.snapshot_interval is None:
            return {}
        tracks = {}
        for series in self._series:
            make = getattr(series.feature.definition, "state_keeper", None)
            if series.feature.is_data_source and make is not None:
                tracks[series.index] = SnapshotTrack(
                    self.storage,
                    series.info,
                    make(),
                    self.session,
                    self.snapshot_interval,
                    full_state_field=getattr(series.feature.definition, "snapshot_field", None),
                )
        return tracks

    def _snapshot(self, series: _Series, table: pa.Table) -> None:
        """Feed a committed block to its series' snapshots and store those that fell due."""
        track = self._tracks[series.index]
        try:
            track.info = series.info
            track.feed(table)
            track.write()
        except Exception as error:  # an optimisation of later replays: the data is safe
            del self._tracks[series.index]
            logger.warning(
                "storing snapshots of %s failed (replays starting late will read from its "
                "earlier full-state events): %s: %s",
                series.info.label,
                type(error).__name__,
                error,
            )

    def _take_table(self, series: _Series) -> pa.Table | None:
        """The open block's events as one table (the open block is emptied), if any."""
        pa = require_pyarrow()
        max_ts = series.open.max_ts
        batches = series.open.take()
        series.open.max_ts = max_ts
        if not batches:
            return None
        schema = series.encoder.arrow_schema or batches[0].schema
        if all(batch.schema.equals(schema) for batch in batches):
            # (one call into Arrow, which hands the GIL over: not one per batch)
            return pa.Table.from_batches(batches, schema=schema)
        tables = [pa.Table.from_batches([b]) for b in batches]
        if series.encoder.arrow_schema is not None:
            tables = [t if t.schema.equals(schema) else t.cast(schema) for t in tables]
        return pa.concat_tables(tables)

    def _write(self, series: _Series, table: pa.Table) -> BlockInfo:
        return write_block(
            self.storage.root,
            table,
            series.info,
            self.session,
            series.ordinal,
            self.format,
            self.storage.storage_id,
        )

    def _covers(self) -> dict[str, float]:
        """Per series, the time before which all its events are committed (what a reader of
        this running session may read: a consistent cut across series)."""
        import math

        done = self._covered_ts
        covers = {}
        for series in self._series:
            pending = self._pending_ts.get(series.index)
            if series.open.rows and series.open.first_ts is not None:
                pending = (
                    series.open.first_ts if pending is None else min(pending, series.open.first_ts)
                )
            if pending is not None:
                covers[series.info.key] = pending
            elif done is not None:
                covers[series.info.key] = math.nextafter(done, math.inf)
        return covers

    def _finish(self) -> None:
        self._flush_all()
        self._wal.close_and_delete()
        self.storage.catalog.end_session(self.session, "closed")

    # lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Acknowledge and write everything, close the session and release the root.

        Safe to call twice. Events appended after ``stop()`` are not recorded.

        :raises StorageError: if the writer failed (nothing acknowledged is lost: what is in
            the WAL is recovered by the next writer or ``featurizer storage recover``).
        """
        if self._lock.held:
            self._stopping = True
            self._wake.set()
            self._thread.join()
            self._lock.release()
        self._release_collector()
        self._raise_failure()

    def __enter__(self) -> BlockWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"BlockWriter(root={str(self.storage.root)!r}, session={self.session!r}, "
            f"series={[s.feature.name for s in self._series]!r}, "
            f"compactor={self.compactor!r})"
        )
