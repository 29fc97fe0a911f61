"""The catalog: series, recording sessions and blocks in an embedded SQLite database.

A block becomes visible to readers in the single transaction that inserts its row, which
happens only after its file is complete on disk. SQLite runs in WAL journal mode with
``synchronous=FULL``, so a committed row survives a crash and readers in other processes never
block the writer.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from featurizer.storage._errors import SchemaMismatchError, StorageError

__all__ = [
    "BlockInfo",
    "Catalog",
    "RecordedHole",
    "SeriesInfo",
    "SessionInfo",
    "SessionSeries",
    "catalog_tables",
]

FORMAT_VERSION = "1"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    children TEXT NOT NULL,
    schema TEXT NOT NULL,
    arrow_schema BLOB,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    first_ts REAL,
    last_ts REAL,
    status TEXT NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS session_series (
    session TEXT NOT NULL,
    series_key TEXT NOT NULL,
    blocks INTEGER NOT NULL DEFAULT 0,
    rows INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session, series_key)
);
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    series_key TEXT NOT NULL,
    session TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    path TEXT NOT NULL UNIQUE,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    rows INTEGER NOT NULL,
    min_seq INTEGER NOT NULL,
    max_seq INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (series_key, session, ordinal)
);
CREATE INDEX IF NOT EXISTS blocks_by_series ON blocks (series_key, min_seq);
CREATE TABLE IF NOT EXISTS holes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    series_key TEXT,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    min_seq INTEGER,
    max_seq INTEGER,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dropped_blocks (
    series_key TEXT NOT NULL,
    session TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (series_key, session, ordinal)
);
CREATE TABLE IF NOT EXISTS series_cover (
    session TEXT NOT NULL,
    series_key TEXT NOT NULL,
    covered_end REAL NOT NULL,
    PRIMARY KEY (session, series_key)
);
"""

_TABLES = ("meta", "series", "sessions", "session_series", "blocks")

# Blocks are read in arrival-number order. A recorder starts after the largest arrival
# number of every block on disk, so the sessions of a series never share numbers; a root
# written by an older version with an older catalog in place may have sessions that do. The
# order is then still deterministic: sessions by their first arrival number, then by their
# first event time, then by id; a session's blocks by arrival number (never interleaved).
_SESSION_ORDER = (
    "SELECT series_key, session, min(min_seq) AS s_seq, max(max_seq) AS s_max, "
    "min(start_ts) AS s_ts FROM blocks"
)
_BLOCK_ORDER = "s.s_seq, s.s_ts, b.session, b.min_seq"


@attrs.frozen(kw_only=True)
class SeriesInfo:
    """One stored series: a data source or a feature, identified by the feature's key.

    :param key: the feature's stable key (64 hex digits).
    :param name: its readable name when it was first recorded.
    :param definition: the definition's registered name.
    :param kind: ``"data_source"`` or ``"feature"``.
    :param params: the feature's resolved params.
    :param children: dependency name to child key (empty for data sources).
    :param schema: the full schema, field to type name (timestamps included).
    :param arrow_schema: the Arrow schema of its blocks (IPC bytes), once a block was stored.
    """

    key: str
    name: str
    definition: str
    kind: str
    params: dict[str, Any]
    children: dict[str, str]
    schema: dict[str, str]
    arrow_schema: bytes | None = None

    @property
    def short_key(self) -> str:
        """The first 10 hex digits of the key."""
        return self.key[:10]

    @property
    def label(self) -> str:
        """How errors refer to the series: ``name (key abcdef0123)``."""
        return f"{self.name} (key {self.short_key})"


@attrs.frozen(kw_only=True)
class BlockInfo:
    """One block: a Parquet file holding consecutive events of one series.

    :param id: the catalog id.
    :param series_key: the series.
    :param session: the recording session that wrote it.
    :param ordinal: its position among the session's blocks of the series (0, 1, ...).
    :param path: the file, relative to the storage root.
    :param start_ts: the smallest event timestamp in it.
    :param end_ts: the largest event timestamp in it.
    :param rows: the number of events.
    :param min_seq: the arrival number of its first event.
    :param max_seq: the arrival number of its last event.
    :param bytes: the file size.
    :param checksum: ``sha256:<hex>`` of the file.
    """

    id: int
    series_key: str
    session: str
    ordinal: int
    path: str
    start_ts: float
    end_ts: float
    rows: int
    min_seq: int
    max_seq: int
    bytes: int
    checksum: str


@attrs.frozen(kw_only=True)
class SessionInfo:
    """A recording session: one writer's lifetime, over which its series were recorded.

    :param id: the session id.
    :param started: wall-clock start (seconds since the epoch).
    :param first_ts: the first event timestamp it stored, if any.
    :param last_ts: the last event timestamp it stored, if any.
    :param status: ``"recording"``, ``"closed"`` or ``"recovered"``.
    :param pid: the recording process.
    """

    id: str
    started: float
    first_ts: float | None
    last_ts: float | None
    status: str
    pid: int


@attrs.frozen(kw_only=True)
class SessionSeries:
    """What one session stored of one series: its block count and row count."""

    session: str
    series_key: str
    blocks: int
    rows: int


@attrs.frozen(kw_only=True)
class RecordedHole:
    """A span recovery could not restore (a damaged WAL record), kept in the catalog.

    :param session: the session that lost it.
    :param series_key: the series, or ``None`` when the damaged record's series is unknown
        (then every series of the session has the hole).
    :param start_ts: where the lost events may start.
    :param end_ts: where they end.
    :param min_seq: the first lost arrival number, if known.
    :param max_seq: the last lost arrival number, if known.
    :param reason: what was lost and why.
    """

    session: str
    series_key: str | None
    start_ts: float
    end_ts: float
    min_seq: int | None
    max_seq: int | None
    reason: str


def catalog_tables(path: Path) -> set[str] | None:
    """The tables of an existing catalog file, or ``None`` if the file is missing.

    An empty file (or one without tables) gives an empty set. Nothing is written.

    :raises StorageError: if the file is not a readable SQLite database.
    """
    if not path.exists():
        return None
    if path.stat().st_size == 0:
        return set()
    try:
        connection = _connect_readonly(path)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {row[0] for row in rows}
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise StorageError(
            f"the catalog is not a readable SQLite database: {error}", path=str(path)
        ) from error


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection; on a read-only mount (where SQLite cannot create the shared
    memory file of WAL mode) the database is opened as immutable: nothing can change it."""
    uri = path.resolve().as_uri()
    options: dict[str, Any] = {
        "uri": True,
        "timeout": 60.0,
        "isolation_level": None,
        "check_same_thread": False,
    }
    try:
        connection = sqlite3.connect(f"{uri}?mode=ro", **options)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", **options)


def _series(row: sqlite3.Row) -> SeriesInfo:
    return SeriesInfo(
        key=row["key"],
        name=row["name"],
        definition=row["definition"],
        kind=row["kind"],
        params=json.loads(row["params"]),
        children=json.loads(row["children"]),
        schema=json.loads(row["schema"]),
        arrow_schema=bytes(row["arrow_schema"]) if row["arrow_schema"] is not None else None,
    )


def _block(row: sqlite3.Row) -> BlockInfo:
    return BlockInfo(**{k: row[k] for k in row.keys() if k != "created"})  # noqa: SIM118


def _session(row: sqlite3.Row) -> SessionInfo:
    return SessionInfo(**{k: row[k] for k in row.keys()})  # noqa: SIM118


class Catalog:
    """The SQLite catalog of a storage root (one connection per thread).

    :param path: the database file.
    :param readonly: open it read-only (nothing is ever written: no schema upgrade, no WAL
        file); the tables added by later versions then read as empty.
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        connection = self._connection()
        try:
            if not readonly:
                connection.executescript(_DDL)
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as error:
            raise StorageError(
                f"the catalog is not a readable SQLite database: {error}", path=str(path)
            ) from error
        missing = [table for table in _TABLES if table not in tables]
        if missing:
            raise StorageError(
                f"the catalog has no {', '.join(missing)} table(s) (an empty or foreign "
                f"database); run `featurizer storage rebuild-catalog` to rebuild it from the "
                f"blocks",
                path=str(path),
            )
        self._tables = tables
        row = connection.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is None and not readonly:
            connection.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (FORMAT_VERSION,)
            )
        elif row is not None and row["value"] != FORMAT_VERSION:
            raise StorageError(
                f"catalog format {row['value']!r} is not supported (this version reads "
                f"{FORMAT_VERSION!r})",
                path=str(path),
            )

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            try:
                if self.readonly:
                    connection = _connect_readonly(self.path)
                else:
                    connection = sqlite3.connect(
                        self.path, timeout=60.0, isolation_level=None, check_same_thread=False
                    )
                connection.row_factory = sqlite3.Row
                if not self.readonly:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.execute("PRAGMA synchronous=FULL")
            except sqlite3.DatabaseError as error:
                raise StorageError(
                    f"cannot open the catalog: {error}", path=str(self.path)
                ) from error
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction (rolled back on error)."""
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StorageError(f"cannot write the catalog: {error}", path=str(self.path)) from error
        try:
            yield connection
        except BaseException as error:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise StorageError(
                    f"cannot write the catalog: {error}", path=str(self.path)
                ) from error
            raise
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise StorageError(f"cannot write the catalog: {error}", path=str(self.path)) from error

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every query inside sees the same committed state (nestable)."""
        connection = self._connection()
        if connection.in_transaction:
            yield
            return
        connection.execute("BEGIN")
        try:
            yield
        finally:
            connection.execute("COMMIT")

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query."""
        try:
            return self._connection().execute(sql, parameters).fetchall()
        except sqlite3.DatabaseError as error:
            raise StorageError(f"catalog query failed: {error}", path=str(self.path)) from error

    def close(self) -> None:
        """Close every connection this catalog opened."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
        self._local = threading.local()

    # identity -------------------------------------------------------------------------------

    def storage_id(self) -> str | None:
        """The identity of the storage this catalog belongs to, if recorded."""
        rows = self.query("SELECT value FROM meta WHERE key = 'storage_id'")
        return str(rows[0]["value"]) if rows else None

    def set_storage_id(self, storage_id: str) -> None:
        """Record the storage identity (kept if one is already recorded)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('storage_id', ?)", (storage_id,)
            )

    def set_meta(self, key: str, value: str) -> None:
        """Record a setting (replacing its value)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        """A recorded setting, if any."""
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    # holes and coverage ---------------------------------------------------------------------

    def add_hole(self, hole: RecordedHole) -> None:
        """Record a span that was lost (reported by every replay over it)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO holes (session, series_key, start_ts, end_ts, min_seq, max_seq, "
                "reason, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hole.session,
                    hole.series_key,
                    hole.start_ts,
                    hole.end_ts,
                    hole.min_seq,
                    hole.max_seq,
                    hole.reason,
                    time.time(),
                ),
            )

    def recorded_holes(self, series_key: str | None = None) -> list[RecordedHole]:
        """Recorded holes (of one series: its own and its sessions' unknown-series ones)."""
        if "holes" not in self._tables:
            return []
        if series_key is None:
            rows = self.query("SELECT * FROM holes ORDER BY start_ts, id")
        else:
            rows = self.query(
                "SELECT * FROM holes WHERE series_key = ? OR (series_key IS NULL AND session IN "
                "(SELECT session FROM session_series WHERE series_key = ?)) "
                "ORDER BY start_ts, id",
                (series_key, series_key),
            )
        return [
            RecordedHole(**{k: row[k] for k in row.keys() if k not in ("id", "created")})  # noqa: SIM118
            for row in rows
        ]

    def dropped_ordinals(self) -> dict[tuple[str, str], set[int]]:
        """Per ``(series key, session)``, block ordinals taken out on purpose (by a repair or
        ``drop-block``): their spans are recorded holes, not gaps to report again."""
        if "dropped_blocks" not in self._tables:
            return {}
        out: dict[tuple[str, str], set[int]] = {}
        for row in self.query("SELECT series_key, session, ordinal FROM dropped_blocks"):
            out.setdefault((row["series_key"], row["session"]), set()).add(int(row["ordinal"]))
        return out

    def covers(self, series_key: str) -> dict[str, float]:
        """Per session, the time before which every event of the series is committed (only
        for sessions whose writer recorded it: running ones)."""
        if "series_cover" not in self._tables:
            return {}
        rows = self.query(
            "SELECT session, covered_end FROM series_cover WHERE series_key = ?", (series_key,)
        )
        return {row["session"]: float(row["covered_end"]) for row in rows}

    # series ---------------------------------------------------------------------------------

    def register_series(self, info: SeriesInfo) -> SeriesInfo:
        """Add a series, or check that the stored one has the same schema.

        :returns: the stored series (with its Arrow schema, if blocks exist).
        :raises SchemaMismatchError: if the stored series has another schema.
        """
        with self.transaction() as db:
            row = db.execute("SELECT * FROM series WHERE key = ?", (info.key,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO series (key, name, definition, kind, params, children, schema, "
                    "arrow_schema, created) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                    (
                        info.key,
                        info.name,
                        info.definition,
                        info.kind,
                        json.dumps(info.params, sort_keys=True),
                        json.dumps(info.children, sort_keys=True),
                        json.dumps(info.schema, sort_keys=True),
                        time.time(),
                    ),
                )
                return info
        stored = _series(row)
        if stored.schema != info.schema:
            raise SchemaMismatchError(
                f"the stored series has schema {stored.schema} but definition "
                f"{info.definition!r} now declares {info.schema}; record into another storage "
                f"root or give the changed definition another name",
                series=stored.label,
                path=str(self.path),
            )
        return stored

    def series(self, key: str) -> SeriesInfo | None:
        """The series with this key, if stored."""
        rows = self.query("SELECT * FROM series WHERE key = ?", (key,))
        return _series(rows[0]) if rows else None

    def all_series(self) -> list[SeriesInfo]:
        """Every series, by name."""
        return [_series(row) for row in self.query("SELECT * FROM series ORDER BY name, key")]

    # sessions -------------------------------------------------------------------------------

    def begin_session(self, session: str, series_keys: Iterable[str], pid: int) -> None:
        """Open a recording session over ``series_keys``."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO sessions (id, started, first_ts, last_ts, status, pid) "
                "VALUES (?, ?, NULL, NULL, 'recording', ?)",
                (session, time.time(), pid),
            )
            db.executemany(
                "INSERT OR IGNORE INTO session_series (session, series_key) VALUES (?, ?)",
                [(session, key) for key in series_keys],
            )

    def end_session(self, session: str, status: str) -> None:
        """Mark a session ``closed`` or ``recovered``."""
        with self.transaction() as db:
            db.execute("UPDATE sessions SET status = ? WHERE id = ?", (status, session))
            db.execute("DELETE FROM series_cover WHERE session = ?", (session,))

    def sessions(self) -> list[SessionInfo]:
        """Every session, oldest first."""
        return [_session(r) for r in self.query("SELECT * FROM sessions ORDER BY started, id")]

    def session(self, session: str) -> SessionInfo | None:
        """One session, if it exists."""
        rows = self.query("SELECT * FROM sessions WHERE id = ?", (session,))
        return _session(rows[0]) if rows else None

    def session_series(self, series_key: str | None = None) -> list[SessionSeries]:
        """What each session stored of each series (optionally of one series)."""
        if series_key is None:
            rows = self.query("SELECT * FROM session_series ORDER BY session, series_key")
        else:
            rows = self.query(
                "SELECT * FROM session_series WHERE series_key = ? ORDER BY session",
                (series_key,),
            )
        return [SessionSeries(**{k: row[k] for k in row.keys()}) for row in rows]  # noqa: SIM118

    # blocks ---------------------------------------------------------------------------------

    def commit_block(
        self,
        block: BlockInfo,
        *,
        session_first_ts: float,
        session_last_ts: float,
        arrow_schema: bytes | None = None,
        covers: dict[str, float] | None = None,
    ) -> int:
        """Make a block visible, in one transaction with the session's bookkeeping.

        :param block: the block (its ``id`` is ignored and assigned here).
        :param session_first_ts: the smallest timestamp the session has stored so far.
        :param session_last_ts: the largest timestamp the session has acknowledged so far.
        :param arrow_schema: the series' Arrow schema, stored if the series has none yet or
            only a less specific one.
        :param covers: per series key of the session, the time before which all its events
            are now committed (what readers of a running session may read).
        :returns: the block's id.
        """
        (block_id,) = self.commit_blocks(
            [(block, arrow_schema)],
            session_first_ts=session_first_ts,
            session_last_ts=session_last_ts,
            covers=covers,
        )
        return block_id

    def commit_blocks(
        self,
        blocks: Sequence[tuple[BlockInfo, bytes | None]],
        *,
        session_first_ts: float,
        session_last_ts: float,
        covers: dict[str, float] | None = None,
    ) -> list[int]:
        """Make several blocks of one session visible together, in one transaction (one
        fsync): see :meth:`commit_block`.

        :param blocks: each block with the Arrow schema to store for its series (or ``None``).
        :returns: the blocks' ids.
        """
        ids = []
        with self.transaction() as db:
            for block, arrow_schema in blocks:
                ids.append(self._insert_block(db, block, arrow_schema))
            for session in dict.fromkeys(block.session for block, _ in blocks):
                db.execute(
                    "UPDATE sessions SET first_ts = min(coalesce(first_ts, ?), ?), "
                    "last_ts = max(coalesce(last_ts, ?), ?) WHERE id = ?",
                    (session_first_ts, session_first_ts, session_last_ts, session_last_ts, session),
                )
                if covers:
                    db.executemany(
                        "INSERT OR REPLACE INTO series_cover (session, series_key, covered_end) "
                        "VALUES (?, ?, ?)",
                        [(session, key, value) for key, value in covers.items()],
                    )
        return ids

    @staticmethod
    def _insert_block(db: sqlite3.Connection, block: BlockInfo, arrow_schema: bytes | None) -> int:
        cursor = db.execute(
            "INSERT INTO blocks (series_key, session, ordinal, path, start_ts, end_ts, rows, "
            "min_seq, max_seq, bytes, checksum, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                block.series_key,
                block.session,
                block.ordinal,
                block.path,
                block.start_ts,
                block.end_ts,
                block.rows,
                block.min_seq,
                block.max_seq,
                block.bytes,
                block.checksum,
                time.time(),
            ),
        )
        db.execute(
            "INSERT OR IGNORE INTO session_series (session, series_key) VALUES (?, ?)",
            (block.session, block.series_key),
        )
        db.execute(
            "UPDATE session_series SET blocks = blocks + 1, rows = rows + ? "
            "WHERE session = ? AND series_key = ?",
            (block.rows, block.session, block.series_key),
        )
        if arrow_schema is not None:
            db.execute(
                "UPDATE series SET arrow_schema = ? WHERE key = ?",
                (arrow_schema, block.series_key),
            )
        block_id = cursor.lastrowid
        assert block_id is not None
        return int(block_id)

    def blocks(
        self, series_key: str, start: float | None = None, end: float | None = None
    ) -> list[BlockInfo]:
        """The blocks of a series overlapping ``[start, end)``, in recording order.

        :param series_key: the series.
        :param start: keep blocks with events at or after this timestamp.
        :param end: keep blocks with events before this timestamp.
        """
        sql = (
            "SELECT b.* FROM blocks AS b JOIN (" + _SESSION_ORDER + " WHERE series_key = ? "
            "GROUP BY series_key, session) AS s USING (series_key, session) "
            "WHERE b.series_key = ?"
        )
        parameters: list[Any] = [series_key, series_key]
        if start is not None:
            sql += " AND b.end_ts >= ?"
            parameters.append(start)
        if end is not None:
            sql += " AND b.start_ts < ?"
            parameters.append(end)
        sql += " ORDER BY " + _BLOCK_ORDER
        return [_block(row) for row in self.query(sql, parameters)]

    def all_blocks(self) -> list[BlockInfo]:
        """Every block, by series and recording order (see :meth:`blocks`)."""
        sql = (
            "SELECT b.* FROM blocks AS b JOIN (" + _SESSION_ORDER + " GROUP BY series_key, "
            "session) AS s USING (series_key, session) ORDER BY b.series_key, " + _BLOCK_ORDER
        )
        return [_block(r) for r in self.query(sql)]

    def committed_max_seq(self, series_key: str, session: str | None = None) -> int:
        """The arrival number of the last stored event of a series (-1 if none).

        :param session: only the events this session stored.
        """
        if session is None:
            rows = self.query(
                "SELECT max(max_seq) AS m FROM blocks WHERE series_key = ?", (series_key,)
            )
        else:
            rows = self.query(
                "SELECT max(max_seq) AS m FROM blocks WHERE series_key = ? AND session = ?",
                (series_key, session),
            )
        value = rows[0]["m"]
        return -1 if value is None else int(value)

    def max_seq(self) -> int:
        """The largest arrival number stored in any block (-1 if none)."""
        value = self.query("SELECT max(max_seq) AS m FROM blocks")[0]["m"]
        return -1 if value is None else int(value)

    def next_ordinal(self, series_key: str, session: str) -> int:
        """The ordinal the session's next block of the series gets."""
        rows = self.query(
            "SELECT max(ordinal) AS m FROM blocks WHERE series_key = ? AND session = ?",
            (series_key, session),
        )
        value = rows[0]["m"]
        return 0 if value is None else int(value) + 1

    def series_stats(self) -> dict[str, tuple[int, int, int, float | None, float | None]]:
        """Per series key: blocks, rows, bytes, first and last timestamp."""
        rows = self.query(
            "SELECT series_key, count(*) AS blocks, sum(rows) AS rows, sum(bytes) AS bytes, "
            "min(start_ts) AS first, max(end_ts) AS last FROM blocks GROUP BY series_key"
        )
        return {
            row["series_key"]: (row["blocks"], row["rows"], row["bytes"], row["first"], row["last"])
            for row in rows
        }
