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
from featurizer.storage._blocks import BlockFormat, open_block, read_block_bytes
from featurizer.storage._catalog import BlockInfo, Catalog, SeriesInfo, catalog_tables
from featurizer.storage._codec import SEQ_COLUMN, EventDecoder, require_pyarrow
from featurizer.storage._errors import NoDataError, StorageError
from featurizer.storage._files import (
    CATALOG_NAME,
    TMP_DIR,
    WAL_DIR,
    WriterLock,
    block_files,
    new_storage_id,
    read_identity,
    write_identity,
)
from featurizer.storage._reader import (
    Hole,
    SeriesPlan,
    conform,
    plan_series,
    read_tables,
    series_arrow_schema,
)
from featurizer.storage._recovery import RecoveryReport
from featurizer.storage._wal import segments

if TYPE_CHECKING:
    import pyarrow as pa

    from featurizer.storage._compactors import Compactor
    from featurizer.storage._replay import Replay
    from featurizer.storage._writer import BlockWriter

__all__ = ["Problem", "RecoveryReport", "Storage", "VerifyReport"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class Problem:
    """One problem :meth:`Storage.verify` found.

    :param kind: ``missing``, ``corrupt``, ``schema``, ``mismatch``, ``gap``, ``overlap``,
        ``orphan``, ``temporary``, ``wal`` or ``catalog``.
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
    :param readonly: never write to the root (no catalog upgrade, no identity file).
    :raises StorageError: if the root does not exist (``create=False``), the catalog is
        unreadable, or the catalog is missing or empty next to existing blocks (a fresh
        catalog would hide them: rebuild it with :meth:`rebuild_catalog`).

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
        readonly: bool = False,
    ) -> None:
        path = Path(root).expanduser()
        catalog_path = path / CATALOG_NAME
        tables = catalog_tables(catalog_path) if path.is_dir() else None
        fresh = not tables
        if fresh and path.is_dir():
            blocks = block_files(path)
            identity = read_identity(path)
            if blocks or identity is not None:
                state = "missing" if tables is None else "empty"
                raise StorageError(
                    f"{CATALOG_NAME} is {state} but the root holds {len(blocks):,} block "
                    f"file(s){' and a storage identity' if identity else ''}: refusing to start "
                    f"a new catalog over them (nothing was changed). Rebuild the catalog from "
                    f"the blocks with `featurizer storage rebuild-catalog --storage {path}`, "
                    f"or restore it from a backup",
                    path=str(catalog_path),
                )
        if fresh and (not create or readonly):
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
        self.readonly = readonly
        self.catalog = Catalog(self.root / CATALOG_NAME, readonly=readonly)
        self.storage_id = self._identity()
        self.format = block_format or BlockFormat()

    def _identity(self) -> str:
        """The storage identity: in the catalog and in ``storage.json``, which must agree."""
        in_catalog = self.catalog.storage_id()
        in_file = read_identity(self.root)
        if in_catalog is not None and in_file is not None and in_catalog != in_file:
            raise StorageError(
                f"the catalog belongs to storage {in_catalog!r} but this root is storage "
                f"{in_file!r} (a catalog copied from another root?); restore this root's "
                f"catalog or run `featurizer storage rebuild-catalog`",
                path=str(self.catalog.path),
            )
        identity = in_catalog or in_file
        if self.readonly:
            return identity or ""
        if identity is None:
            identity = new_storage_id()
        if in_catalog is None:
            self.catalog.set_storage_id(identity)
            # Another process may have recorded its own first: the catalog's wins.
            identity = self.catalog.storage_id() or identity
        if in_file is None:
            write_identity(self.root, identity)
        return identity

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, readonly: bool = False) -> Storage:
        """Open an existing root (an error if there is none).

        :param readonly: never write (listing, verifying and replaying a read-only copy).
        """
        return cls(root, create=False, readonly=readonly)

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
        from featurizer.storage._recovery import recover

        return recover(self)

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
        damaged_schemas: set[str] = set()
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
            try:
                schema = series_arrow_schema(info)
            except StorageError as error:
                if info.key not in damaged_schemas:
                    damaged_schemas.add(info.key)
                    problems.append(_problem_from(error, "catalog"))
                schema = None
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
        problems.extend(self._check_overlaps(every))
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
        dropped = self.catalog.dropped_ordinals()
        for entry in self.catalog.session_series():
            key = (entry.series_key, entry.session)
            present = ordinals.get(key, set()) | dropped.get(key, set())
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

    def _check_overlaps(self, every: list[SeriesInfo]) -> list[Problem]:
        """Series that two sessions stored for the same times (replays would refuse them)."""
        from featurizer.storage._errors import OverlapError

        problems = []
        for info in every:
            try:
                plan_series(self.catalog, info, None, None)
            except OverlapError as error:
                problems.append(
                    Problem(
                        kind="overlap",
                        message=f"{error} (drop one with `featurizer storage drop-session`)",
                        series=info.label,
                        path=str(self.catalog.path),
                    )
                )
            except StorageError:
                continue
        return problems

    def _check_leftovers(self, blocks: list[BlockInfo]) -> list[Problem]:
        problems = []
        live = self._writer_running()
        note = " (a recorder is running: probably a block being published)" if live else ""
        known = {block.path for block in blocks}
        for path in block_files(self.root):
            relative = path.relative_to(self.root).as_posix()
            if relative not in known:
                problems.append(
                    Problem(
                        kind="orphan",
                        message=f"path {str(path)!r}: a block file no catalog row points to "
                        f"(left by a crash: `featurizer storage recover` moves it to "
                        f"quarantine/ if its events are in committed blocks; else from a lost "
                        f"or older catalog: `featurizer storage rebuild-catalog` adopts it)"
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
        if self.readonly:
            return False
        lock = self.writer_lock()
        try:
            lock.acquire()
        except StorageError:
            return True
        lock.release()
        return False
