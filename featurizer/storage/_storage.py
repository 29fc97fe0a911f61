"""Storage: a root directory holding the catalog, the block files and the write-ahead log."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from featurizer._events import Event
from featurizer._feature import Feature
from featurizer.storage._blocks import (
    BlockFormat,
    open_block,
    read_block_bytes,
    schema_bytes,
    write_block,
)
from featurizer.storage._catalog import BlockInfo, Catalog, SeriesInfo
from featurizer.storage._codec import SEQ_COLUMN, EventDecoder, require_pyarrow
from featurizer.storage._errors import NoDataError, StorageError
from featurizer.storage._files import (
    BLOCKS_DIR,
    CATALOG_NAME,
    TMP_DIR,
    WAL_DIR,
    WriterLock,
    block_relative_path,
    fsync_dir,
)
from featurizer.storage._reader import (
    Hole,
    SeriesPlan,
    conform,
    plan_series,
    read_tables,
    series_arrow_schema,
)
from featurizer.storage._wal import read_segment, segments

if TYPE_CHECKING:
    import pyarrow as pa

    from featurizer.storage._compactors import Compactor
    from featurizer.storage._replay import Replay
    from featurizer.storage._writer import BlockWriter

__all__ = ["Problem", "RecoveryReport", "Storage", "VerifyReport"]

logger = logging.getLogger(__name__)

_RECOVERY_BLOCK_BYTES = 16 * 1024 * 1024


@attrs.frozen(kw_only=True)
class RecoveryReport:
    """What :meth:`Storage.recover` did.

    :param segments: WAL segments read (and then deleted).
    :param events: events recovered into new blocks (not already in committed blocks).
    :param blocks: blocks written.
    :param torn: where segments ended early (a record cut short by the crash), if anywhere.
    :param removed: temporary and orphan files deleted.
    :param sessions: sessions marked ``recovered``.
    """

    segments: int = 0
    events: int = 0
    blocks: int = 0
    torn: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line."""
        return (
            f"recovered {self.events:,} events into {self.blocks:,} blocks from "
            f"{self.segments} WAL segment(s); sessions closed: {len(self.sessions)}; files "
            f"removed: {len(self.removed)}"
            + (f"; torn tails: {'; '.join(self.torn)}" if self.torn else "")
        )


@attrs.frozen(kw_only=True)
class Problem:
    """One problem :meth:`Storage.verify` found.

    :param kind: ``missing``, ``corrupt``, ``schema``, ``mismatch``, ``gap``, ``orphan``,
        ``temporary``, ``wal`` or ``catalog``.
    :param message: what is wrong, naming the series, the block and the path.
    :param series: the series' label, if any.
    :param block: the block id, if any.
    :param path: the file, if any.
    :param severe: whether data is lost or unreadable (``False`` for leftovers that can be
        cleaned up).
    """

    kind: str
    message: str
    series: str | None = None
    block: int | None = None
    path: str | None = None
    severe: bool = True


@attrs.frozen(kw_only=True)
class VerifyReport:
    """The outcome of :meth:`Storage.verify`.

    :param series: series checked.
    :param blocks: blocks checked.
    :param rows: rows read back.
    :param bytes: bytes read back.
    :param problems: everything found, severe first.
    """

    series: int
    blocks: int
    rows: int
    bytes: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """No severe problem."""
        return not any(problem.severe for problem in self.problems)


def _problem_from(error: StorageError, kind: str) -> Problem:
    return Problem(
        kind=kind, message=str(error), series=error.series, block=error.block, path=error.path
    )


class Storage:
    """A Featurizer storage root: series of events as Parquet blocks, a SQLite catalog and a
    write-ahead log.

    Layout: ``catalog.sqlite``; ``blocks/<definition>/<key>/date=YYYY-MM-DD/<seq>.parquet``;
    ``wal/`` (segments of the running or crashed recorder); ``tmp/`` (files being written).

    :param root: the directory (created when ``create`` is true).
    :param create: create the root and an empty catalog if missing; else a missing root is an
        error.
    :param block_format: how new blocks are encoded.
    :raises StorageError: if the root does not exist (``create=False``) or the catalog is
        unreadable.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root, Storage(root) as storage:
    ...     storage.series()
    []
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        create: bool = True,
        block_format: BlockFormat | None = None,
    ) -> None:
        path = Path(root).expanduser()
        if not create and not (path / CATALOG_NAME).is_file():
            raise StorageError(
                f"no featurizer storage here (missing {CATALOG_NAME}); record into it with "
                f"`featurizer record` or pass the right --storage",
                path=str(path),
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(
                f"cannot create the storage root: {error}", path=str(path)
            ) from error
        self.root = path.resolve()
        self.catalog = Catalog(self.root / CATALOG_NAME)
        self.format = block_format or BlockFormat()

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> Storage:
        """Open an existing root (an error if there is none)."""
        return cls(root, create=False)

    def close(self) -> None:
        """Close the catalog connections."""
        self.catalog.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Storage({str(self.root)!r})"

    # series ---------------------------------------------------------------------------------

    def series(self) -> list[SeriesInfo]:
        """Every stored series, by name."""
        return self.catalog.all_series()

    def find_series(self, reference: str | Feature | SeriesInfo) -> SeriesInfo:
        """A series by feature, key, unique key prefix (at least 6 hex digits) or name (a
        :class:`SeriesInfo` is returned as is).

        :raises NoDataError: if nothing or several series match, listing the candidates.
        """
        if isinstance(reference, SeriesInfo):
            return reference
        if isinstance(reference, Feature):
            found = self.catalog.series(reference.key)
            if found is None:
                raise NoDataError(
                    f"{reference.name!r} (definition {reference.definition_name!r}) is not "
                    f"stored in this root",
                    series=f"{reference.name} (key {reference.short_key})",
                    path=str(self.catalog.path),
                )
            return found
        every = self.series()
        exact = [s for s in every if reference in (s.key, s.name)]
        if len(exact) == 1:
            return exact[0]
        prefix = [s for s in every if len(reference) >= 6 and s.key.startswith(reference.lower())]
        matches = exact or prefix
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NoDataError(
                f"no stored series is named {reference!r} or has a key starting with it; "
                f"stored: {', '.join(s.label for s in every) or 'none'}",
                path=str(self.catalog.path),
            )
        raise NoDataError(
            f"{reference!r} matches several series ({', '.join(s.label for s in matches)}); "
            f"use a longer key prefix",
            path=str(self.catalog.path),
        )

    def plan(
        self,
        reference: str | Feature | SeriesInfo,
        start: float | None = None,
        end: float | None = None,
    ) -> SeriesPlan:
        """The blocks of a series over ``[start, end)`` in order, and the holes in that range.

        :raises OverlapError: if two sessions stored the same times of the series.
        """
        return plan_series(self.catalog, self.find_series(reference), start, end)

    def holes(
        self,
        reference: str | Feature | SeriesInfo,
        start: float | None = None,
        end: float | None = None,
    ) -> list[Hole]:
        """The holes of a series over ``[start, end)`` (spans it was not recorded for)."""
        return list(self.plan(reference, start, end).holes)

    def read_table(
        self,
        reference: str | Feature | SeriesInfo,
        start: float | None = None,
        end: float | None = None,
    ) -> pa.Table:
        """Every stored event of a series in ``[start, end)`` as one Arrow table.

        The table has the event fields and the arrival-number column ``__seq__``.

        :raises NoDataError: if the series has no data in the range.
        :raises StorageError: for a damaged block (naming the series, block and path).
        """
        pa = require_pyarrow()
        plan = self.plan(reference, start, end)
        tables = list(read_tables(self.root, plan))
        schema = series_arrow_schema(plan.series)
        if not tables:
            if schema is None:
                raise NoDataError("the series has no stored blocks", series=plan.series.label)
            return schema.empty_table()
        return pa.concat_tables(tables)

    def iter_events(
        self,
        reference: str | Feature | SeriesInfo,
        start: float | None = None,
        end: float | None = None,
    ) -> Iterator[Event]:
        """The stored events of a series in ``[start, end)``, in recorded order, as dicts."""
        plan = self.plan(reference, start, end)
        schema = series_arrow_schema(plan.series)
        if schema is None:
            return
        decoder = EventDecoder(schema, plan.series.schema)
        for table in read_tables(self.root, plan):
            yield from decoder.decode(table)

    def read_events(
        self,
        reference: str | Feature | SeriesInfo,
        start: float | None = None,
        end: float | None = None,
    ) -> list[Event]:
        """:meth:`iter_events` as a list."""
        return list(self.iter_events(reference, start, end))

    # writing and replaying ------------------------------------------------------------------

    def writer_lock(self) -> WriterLock:
        """The root's writer lock (not yet acquired)."""
        return WriterLock(self.root)

    def writer(
        self, features: Sequence[Feature], *, compactor: Compactor | None = None, **options: Any
    ) -> BlockWriter:
        """Open a :class:`BlockWriter` recording ``features`` (see its options)."""
        from featurizer.storage._writer import BlockWriter

        return BlockWriter(self, features, compactor=compactor, **options)

    def replay(self, sources: Sequence[Feature], **options: Any) -> Replay:
        """A merged, prefetched :class:`Replay` of stored data sources (see its options)."""
        from featurizer.storage._replay import Replay

        return Replay(self.root, self.catalog, sources, **options)

    # recovery -------------------------------------------------------------------------------

    def recover(self, *, _locked: bool = False) -> RecoveryReport:
        """Publish what a crashed recorder acknowledged, and clean up after it.

        Reads every WAL segment up to its first torn or corrupt record, writes the events
        that are not already in committed blocks as new blocks (same session, next ordinals),
        deletes temporary files and block files no catalog row points to, marks the crashed
        sessions ``recovered`` and deletes the segments. Opening a :class:`BlockWriter` does
        this first.

        :raises StorageLockedError: if a recorder is writing to this root right now.
        """
        lock = None
        if not _locked:
            lock = self.writer_lock()
            lock.acquire()
        try:
            return self._recover()
        finally:
            if lock is not None:
                lock.release()

    def _recover(self) -> RecoveryReport:
        pa = require_pyarrow()
        import pyarrow.compute as pc

        removed: list[str] = []
        tmp = self.root / TMP_DIR
        if tmp.is_dir():
            for leftover in sorted(tmp.iterdir()):
                leftover.unlink(missing_ok=True)
                removed.append(str(leftover))
        wal_segments = segments(self.root / WAL_DIR)
        torn: list[str] = []
        by_series: dict[str, list[tuple[str, Any]]] = {}
        for segment in wal_segments:
            records, segment_report = read_segment(segment)
            if segment_report.problem is not None:
                torn.append(f"{segment.name}: {segment_report.problem}")
            for record in records:
                by_series.setdefault(record.series, []).append((record.session, record.batch))
        events = 0
        blocks = 0
        touched_sessions: set[str] = set()
        for key, items in by_series.items():
            info = self.catalog.series(key)
            if info is None:
                torn.append(f"records of unknown series {key[:10]} skipped")
                continue
            committed = self.catalog.committed_max_seq(key)
            per_session: dict[str, list[Any]] = {}
            for session, batch in items:
                table = pa.Table.from_batches([batch])
                table = table.filter(pc.greater(table.column(SEQ_COLUMN), committed))
                if table.num_rows:
                    per_session.setdefault(session, []).append(table)
            for session, tables in per_session.items():
                target = self._recovery_schema(info, tables)
                table = pa.concat_tables([t.select(target.names).cast(target) for t in tables])
                row_bytes = max(1.0, table.nbytes / table.num_rows)
                per_block = max(1, int(_RECOVERY_BLOCK_BYTES // row_bytes))
                ordinal = self.catalog.next_ordinal(key, session)
                for offset in range(0, table.num_rows, per_block):
                    piece = table.slice(offset, per_block)
                    block = write_block(self.root, piece, info, session, ordinal, self.format)
                    stored = info.arrow_schema
                    new_schema = schema_bytes(target)
                    update = stored is None or (stored != new_schema and not _has_nulls(target))
                    self.catalog.commit_block(
                        block,
                        session_first_ts=block.start_ts,
                        session_last_ts=block.end_ts,
                        arrow_schema=new_schema if update else None,
                    )
                    info = self.catalog.series(key) or info
                    ordinal += 1
                    blocks += 1
                    events += piece.num_rows
                touched_sessions.add(session)
            removed.extend(self._remove_orphans(info))
        closed = []
        for info_ in self.catalog.sessions():
            crashed = info_.status == "recording" or info_.id in touched_sessions
            if crashed and info_.status != "closed":
                self.catalog.end_session(info_.id, "recovered")
                closed.append(info_.id)
        for segment in wal_segments:
            segment.unlink(missing_ok=True)
        if wal_segments:
            fsync_dir(self.root / WAL_DIR)
        report = RecoveryReport(
            segments=len(wal_segments),
            events=events,
            blocks=blocks,
            torn=tuple(torn),
            removed=tuple(removed),
            sessions=tuple(closed),
        )
        if wal_segments or removed or closed:
            logger.warning("storage %s: %s", self.root, report.describe())
        return report

    def _recovery_schema(self, info: SeriesInfo, tables: list[pa.Table]) -> pa.Schema:
        known = series_arrow_schema(info)
        if known is not None and not _has_nulls(known):
            return known
        for table in tables:
            if not _has_nulls(table.schema):
                return table.schema
        return known if known is not None else tables[0].schema

    def _remove_orphans(self, info: SeriesInfo) -> list[str]:
        known = {block.path for block in self.catalog.blocks(info.key)}
        removed: list[str] = []
        sample = block_relative_path(info.definition, info.key, 0.0, 0)
        series_dir = self.root / Path(sample).parent.parent
        if not series_dir.is_dir():
            return removed
        for path in sorted(series_dir.rglob("*.parquet")):
            relative = path.relative_to(self.root).as_posix()
            if relative not in known:
                path.unlink(missing_ok=True)
                removed.append(str(path))
        return removed

    # verification ---------------------------------------------------------------------------

    def verify(self, *, deep: bool = True) -> VerifyReport:
        """Re-read every block and check it against the catalog.

        Checks, per block: the file exists, its size and checksum match, it is readable
        Parquet (every row group is decoded when ``deep``), its row count, schema, timestamp
        range and arrival numbers match the catalog. Per series: no block of a session is
        missing. Per root: no unrecovered WAL, temporary files or files the catalog does not
        know, and SQLite's own integrity check.

        :param deep: decode every row group (else only checksums and footers).
        :returns: the report; nothing is changed.
        """
        with self.catalog.snapshot():
            return self._verify(deep)

    def _verify(self, deep: bool) -> VerifyReport:
        require_pyarrow()
        import pyarrow.compute as pc

        problems: list[Problem] = []
        integrity = self.catalog.query("PRAGMA integrity_check")
        if integrity and integrity[0][0] != "ok":
            problems.append(
                Problem(
                    kind="catalog",
                    message=f"SQLite integrity check failed: {integrity[0][0]}",
                    path=str(self.catalog.path),
                )
            )
        every = self.series()
        labels = {s.key: s.label for s in every}
        series_by_key = {s.key: s for s in every}
        blocks = self.catalog.all_blocks()
        rows = 0
        size = 0
        for block in blocks:
            info = series_by_key.get(block.series_key)
            label = labels.get(block.series_key, block.series_key[:10])
            path = self.root / block.path
            if info is None:
                problems.append(
                    Problem(
                        kind="catalog",
                        message=f"block {block.id} ({str(path)!r}) belongs to series key "
                        f"{block.series_key[:10]} which is not in the catalog",
                        block=block.id,
                        path=str(path),
                    )
                )
                continue
            schema = series_arrow_schema(info)
            try:
                data = read_block_bytes(self.root, block, label)
                parquet = open_block(data, block, label, path, schema)
            except StorageError as error:
                kind = {"MissingBlockError": "missing", "SchemaMismatchError": "schema"}.get(
                    type(error).__name__, "corrupt"
                )
                problems.append(_problem_from(error, kind))
                continue
            size += len(data)
            if not deep:
                rows += block.rows
                continue
            try:
                table = conform(parquet.read(), schema)
            except Exception as error:
                problems.append(
                    Problem(
                        kind="corrupt",
                        message=f"series {label!r}, block {block.id}, path {str(path)!r}: "
                        f"cannot decode: {error}",
                        series=label,
                        block=block.id,
                        path=str(path),
                    )
                )
                continue
            rows += table.num_rows
            problems.extend(self._check_block_contents(table, block, label, path, pc))
        problems.extend(self._check_sessions(blocks, labels))
        problems.extend(self._check_leftovers(blocks))
        problems.sort(key=lambda p: (not p.severe, p.kind, p.series or "", p.block or 0))
        return VerifyReport(
            series=len(every), blocks=len(blocks), rows=rows, bytes=size, problems=tuple(problems)
        )

    def check_definitions(self, features: Sequence[Feature]) -> list[Problem]:
        """Problems of stored series whose definition now declares another schema.

        :param features: features (typically every node of a config's graph); those not
            stored are ignored.
        :returns: one ``schema`` problem per mismatching series, naming its first block.
        """
        from featurizer.storage._codec import schema_to_json

        problems = []
        for feature in features:
            series = self.catalog.series(feature.key)
            if series is None:
                continue
            declared = json.loads(schema_to_json(feature.definition.event_schema()))
            if declared == series.schema:
                continue
            blocks = self.catalog.blocks(series.key)
            path = str(self.root / blocks[0].path) if blocks else str(self.catalog.path)
            block = blocks[0].id if blocks else None
            problems.append(
                Problem(
                    kind="schema",
                    message=f"series {series.label!r}, block {block}, path {path!r}: stored "
                    f"with schema {series.schema} but definition {feature.definition_name!r} "
                    f"declares {declared}",
                    series=series.label,
                    block=block,
                    path=path,
                )
            )
        return problems

    @staticmethod
    def _check_block_contents(
        table: pa.Table, block: BlockInfo, label: str, path: Path, pc: Any
    ) -> list[Problem]:
        problems = []

        def mismatch(what: str) -> Problem:
            return Problem(
                kind="mismatch",
                message=f"series {label!r}, block {block.id}, path {str(path)!r}: {what}",
                series=label,
                block=block.id,
                path=str(path),
            )

        if table.num_rows == 0:
            return [mismatch("the block is empty")]
        span = pc.min_max(table.column("timestamp")).as_py()
        if (span["min"], span["max"]) != (block.start_ts, block.end_ts):
            problems.append(
                mismatch(
                    f"timestamps span {span['min']!r}..{span['max']!r} but the catalog "
                    f"recorded {block.start_ts!r}..{block.end_ts!r}"
                )
            )
        seqs = table.column(SEQ_COLUMN).combine_chunks()
        if (seqs[0].as_py(), seqs[-1].as_py()) != (block.min_seq, block.max_seq):
            problems.append(
                mismatch(
                    f"arrival numbers {seqs[0].as_py()}..{seqs[-1].as_py()} but the catalog "
                    f"recorded {block.min_seq}..{block.max_seq}"
                )
            )
        if len(seqs) > 1:
            increasing = pc.all(pc.greater(seqs.slice(1), seqs.slice(0, len(seqs) - 1))).as_py()
            if not increasing:
                problems.append(mismatch("arrival numbers are not strictly increasing"))
        return problems

    def _check_sessions(self, blocks: list[BlockInfo], labels: dict[str, str]) -> list[Problem]:
        problems = []
        ordinals: dict[tuple[str, str], set[int]] = {}
        for block in blocks:
            ordinals.setdefault((block.series_key, block.session), set()).add(block.ordinal)
        for entry in self.catalog.session_series():
            present = ordinals.get((entry.series_key, entry.session), set())
            missing = sorted(set(range(entry.blocks)) - present)
            if missing:
                label = labels.get(entry.series_key, entry.series_key[:10])
                problems.append(
                    Problem(
                        kind="gap",
                        message=f"series {label!r}: session {entry.session} wrote "
                        f"{entry.blocks} block(s) but ordinal(s) {missing[:10]} are missing "
                        f"from the catalog (a hole in the data)",
                        series=label,
                    )
                )
        return problems

    def _check_leftovers(self, blocks: list[BlockInfo]) -> list[Problem]:
        problems = []
        live = self._writer_running()
        note = " (a recorder is running: probably a block being published)" if live else ""
        known = {block.path for block in blocks}
        block_root = self.root / BLOCKS_DIR
        if block_root.is_dir():
            for path in sorted(block_root.rglob("*.parquet")):
                relative = path.relative_to(self.root).as_posix()
                if relative not in known:
                    problems.append(
                        Problem(
                            kind="orphan",
                            message=f"path {str(path)!r}: a block file no catalog row points "
                            f"to (left by a crash; `featurizer storage recover` deletes it)"
                            f"{note}",
                            path=str(path),
                            severe=False,
                        )
                    )
        tmp = self.root / TMP_DIR
        if tmp.is_dir():
            for path in sorted(tmp.iterdir()):
                problems.append(
                    Problem(
                        kind="temporary",
                        message=f"path {str(path)!r}: a partial file being written (or left "
                        f"by a crash); never visible to readers{note}",
                        path=str(path),
                        severe=False,
                    )
                )
        wal = segments(self.root / WAL_DIR)
        if wal:
            problems.append(
                Problem(
                    kind="wal",
                    message=(
                        f"{len(wal)} WAL segment(s) under {str(self.root / WAL_DIR)!r}: "
                        + (
                            "a recorder is running"
                            if live
                            else "acknowledged events of a crashed recorder are not yet in "
                            "blocks; run `featurizer storage recover`"
                        )
                    ),
                    path=str(self.root / WAL_DIR),
                    severe=not live,
                )
            )
        return problems

    def _writer_running(self) -> bool:
        lock = self.writer_lock()
        try:
            lock.acquire()
        except StorageError:
            return True
        lock.release()
        return False


def _has_nulls(schema: pa.Schema) -> bool:
    from featurizer.storage._codec import _has_null_type

    return any(_has_null_type(field.type) for field in schema)
