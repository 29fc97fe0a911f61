"""Rebuilding a lost, emptied or outdated catalog from the self-describing block files.

Every block carries its own description in its Parquet metadata (storage identity, session,
ordinal, series definition and schema, arrival-number and timestamp ranges). Rebuilding reads
each block file whole, checks it (readable Parquet, row count and ranges as described), and
writes a new catalog from the blocks that pass; the previous catalog, if any, is moved to
``quarantine/catalog/``. Nothing under ``blocks/`` is moved or changed. Sessions get the
status ``rebuilt`` and cover the time of their blocks; a session whose block ordinals have
gaps keeps them as gaps, so its missing blocks are reported as holes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import attrs

from featurizer.storage._blocks import read_description, schema_bytes
from featurizer.storage._catalog import Catalog, catalog_tables
from featurizer.storage._codec import SEQ_COLUMN, require_pyarrow
from featurizer.storage._errors import StorageError
from featurizer.storage._files import (
    CATALOG_NAME,
    WriterLock,
    block_files,
    checksum,
    fsync_dir,
    quarantine,
    read_identity,
    write_identity,
)
from featurizer.storage._holes import read_hole_files

__all__ = ["RebuildReport", "rebuild_catalog"]


@attrs.frozen(kw_only=True)
class RebuildReport:
    """What :func:`rebuild_catalog` did (or would do, on a dry run).

    :param series: series in the rebuilt catalog.
    :param sessions: sessions in it.
    :param blocks: blocks adopted.
    :param rows: events in them.
    :param skipped: block files not adopted, and why (unreadable, no self-description,
        another storage's, a duplicate).
    :param previous: where the previous catalog was moved, if there was one.
    :param dry_run: whether nothing was written.
    :param shared: sessions whose blocks of one series share arrival numbers (recorded by an
        older version with an older catalog in place), and the order they are read in.
    """

    series: int
    sessions: int
    blocks: int
    rows: int
    skipped: tuple[str, ...]
    previous: str | None
    dry_run: bool
    shared: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line, then one per skipped file."""
        verb = "would rebuild" if self.dry_run else "rebuilt"
        line = (
            f"{verb} the catalog: {self.series} series, {self.sessions} session(s), "
            f"{self.blocks:,} blocks, {self.rows:,} events; {len(self.skipped)} file(s) skipped"
        )
        if self.previous:
            line += f"; the previous catalog is kept at {self.previous}"
        return "\n".join(
            [
                line,
                *(f"skipped: {item}" for item in self.skipped),
                *(f"shared arrival numbers: {item}" for item in self.shared),
            ]
        )


def _check(path: Path, data: bytes) -> tuple[dict[str, Any], Any]:
    """A block file's description and Arrow schema, after checking its contents."""
    pa = require_pyarrow()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(pa.BufferReader(data))
    description = read_description(parquet)
    if description is None:
        raise ValueError("no featurizer.block self-description (written by an older version)")
    table = parquet.read()
    if table.num_rows != description["rows"] or table.num_rows == 0:
        raise ValueError(f"holds {table.num_rows} rows, its description says {description['rows']}")
    seqs = table.column(SEQ_COLUMN)
    span = pc.min_max(table.column("timestamp")).as_py()
    found = (seqs[0].as_py(), seqs[-1].as_py(), span["min"], span["max"])
    described = (
        description["min_seq"],
        description["max_seq"],
        description["start_ts"],
        description["end_ts"],
    )
    if found != described:
        raise ValueError(f"contents {found} differ from its description {described}")
    return description, parquet.schema_arrow


def rebuild_catalog(root: Path, *, dry_run: bool = False) -> RebuildReport:
    """Rebuild ``root/catalog.sqlite`` from the block files (see the module docs).

    :param root: the storage root.
    :param dry_run: only report what would be adopted.
    :raises StorageLockedError: if a recorder is writing to the root.
    :raises StorageError: if no block file can be adopted.
    """
    root = root.resolve()
    lock = WriterLock(root)
    if not dry_run:
        lock.acquire()
    try:
        return _rebuild(root, dry_run)
    finally:
        lock.release()


def _rebuild(root: Path, dry_run: bool) -> RebuildReport:
    identity = read_identity(root)
    skipped: list[str] = []
    adopted: list[tuple[str, dict[str, Any], Any, int, str]] = []
    seen: dict[tuple[str, str, int], str] = {}
    for path in block_files(root):
        relative = path.relative_to(root).as_posix()
        try:
            data = path.read_bytes()
            description, schema = _check(path, data)
        except Exception as error:
            skipped.append(f"{relative}: {error}")
            continue
        owner = description.get("storage") or None
        if identity is None and owner:
            identity = owner
        if owner and owner != identity:
            skipped.append(f"{relative}: written by storage {owner!r}, this is {identity!r}")
            continue
        key = (description["series"]["key"], description["session"], description["min_seq"])
        if key in seen:
            skipped.append(f"{relative}: the same events as {seen[key]} (a duplicate)")
            continue
        seen[key] = relative
        adopted.append((relative, description, schema, len(data), checksum(data)))
    if not adopted:
        raise StorageError(
            f"no block file under {str(root / 'blocks')!r} can be adopted "
            f"({len(skipped)} skipped); nothing was changed",
            path=str(root),
        )
    series = {d["series"]["key"]: (d["series"], s) for _, d, s, _, _ in adopted}
    sessions: dict[str, list[dict[str, Any]]] = {}
    for _, description, _, _, _ in adopted:
        sessions.setdefault(description["session"], []).append(description)
    report = RebuildReport(
        series=len(series),
        sessions=len(sessions),
        blocks=len(adopted),
        rows=sum(d["rows"] for _, d, _, _, _ in adopted),
        skipped=tuple(skipped),
        previous=None,
        dry_run=dry_run,
        shared=_shared(adopted),
    )
    if dry_run:
        return report
    staging = root / f".{CATALOG_NAME}.rebuilding"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{staging}{suffix}").unlink(missing_ok=True)
    catalog = Catalog(staging)
    holes, unreadable = read_hole_files(root)
    skipped.extend(f"hole record {item}" for item in unreadable)
    try:
        _fill(catalog, identity, series, sessions, adopted)
        for hole in holes:
            if hole.session in sessions:
                catalog.add_hole(hole)
    finally:
        catalog.close()
    previous = None
    target = root / CATALOG_NAME
    if catalog_tables(target) is not None:
        for suffix in ("-wal", "-shm"):
            side = Path(f"{target}{suffix}")
            if side.exists():
                quarantine(root, side, "catalog")
        previous = str(quarantine(root, target, "catalog"))
    os.replace(staging, target)
    fsync_dir(root)
    if identity:
        write_identity(root, identity)
    return attrs.evolve(report, previous=previous, skipped=tuple(skipped))


def _shared(adopted: list[tuple[str, dict[str, Any], Any, int, str]]) -> tuple[str, ...]:
    """Sessions whose blocks of one series share arrival numbers, and their read order
    (the catalog's rule: by first arrival number, then first event time, then id)."""
    spans: dict[tuple[str, str], list[Any]] = {}
    names: dict[str, str] = {}
    for _, description, _, _, _ in adopted:
        key = (description["series"]["key"], description["session"])
        names[key[0]] = description["series"]["name"]
        low, high, ts = description["min_seq"], description["max_seq"], description["start_ts"]
        span = spans.setdefault(key, [low, high, ts])
        span[0], span[1], span[2] = min(span[0], low), max(span[1], high), min(span[2], ts)
    by_series: dict[str, list[tuple[int, float, str, int]]] = {}
    for (series, session), (low, high, ts) in spans.items():
        by_series.setdefault(series, []).append((low, ts, session, high))
    out = []
    for series, sessions in sorted(by_series.items()):
        sessions.sort()
        for i, (low, _, first, high) in enumerate(sessions):
            for other_low, _, second, other_high in sessions[i + 1 :]:
                if other_low <= high and low <= other_high:
                    out.append(
                        f"series {names[series]!r} (key {series[:10]}): sessions {first} and "
                        f"{second} both hold arrival numbers {max(low, other_low)}.."
                        f"{min(high, other_high)}; {first} is read first (the earlier first "
                        f"arrival number, then the earlier first event)"
                    )
    return tuple(out)


def _fill(
    catalog: Catalog,
    identity: str | None,
    series: dict[str, tuple[dict[str, Any], Any]],
    sessions: dict[str, list[dict[str, Any]]],
    adopted: list[tuple[str, dict[str, Any], Any, int, str]],
) -> None:
    now = time.time()
    with catalog.transaction() as db:
        if identity:
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('storage_id', ?)", (identity,)
            )
        for key, (info, schema) in series.items():
            db.execute(
                "INSERT INTO series (key, name, definition, kind, params, children, schema, "
                "arrow_schema, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    info["name"],
                    info["definition"],
                    info["kind"],
                    json.dumps(info["params"], sort_keys=True),
                    json.dumps(info["children"], sort_keys=True),
                    json.dumps(info["schema"], sort_keys=True),
                    schema_bytes(schema),
                    now,
                ),
            )
        for session, descriptions in sessions.items():
            db.execute(
                "INSERT INTO sessions (id, started, first_ts, last_ts, status, pid) "
                "VALUES (?, ?, ?, ?, 'rebuilt', 0)",
                (
                    session,
                    min(d["start_ts"] for d in descriptions),
                    min(d["start_ts"] for d in descriptions),
                    max(d["end_ts"] for d in descriptions),
                ),
            )
            per_series: dict[str, list[dict[str, Any]]] = {}
            for description in descriptions:
                per_series.setdefault(description["series"]["key"], []).append(description)
            for key, own in per_series.items():
                db.execute(
                    "INSERT INTO session_series (session, series_key, blocks, rows) "
                    "VALUES (?, ?, ?, ?)",
                    (session, key, max(d["ordinal"] for d in own) + 1, sum(d["rows"] for d in own)),
                )
        for relative, description, _, size, digest in adopted:
            db.execute(
                "INSERT INTO blocks (series_key, session, ordinal, path, start_ts, end_ts, rows, "
                "min_seq, max_seq, bytes, checksum, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    description["series"]["key"],
                    description["session"],
                    description["ordinal"],
                    relative,
                    description["start_ts"],
                    description["end_ts"],
                    description["rows"],
                    description["min_seq"],
                    description["max_seq"],
                    size,
                    digest,
                    now,
                ),
            )
