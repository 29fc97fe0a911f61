"""Recovery: publish what a crashed recorder acknowledged, never losing or inventing data.

Two streaming passes over the write-ahead log (no segment is ever held in memory):

1. *Index*: every record's header (series, session, arrival numbers, timestamps, writer
   cycle) and every damaged span. A segment written by another storage (its records carry
   another storage identity) is refused and moved to ``quarantine/foreign/``.
2. *Publish*: the events of the records kept that are not yet in committed blocks are written
   as new blocks of their session, a bounded number of bytes at a time.

What may be dropped and what is a hole:

* A *torn tail* (damage that nothing readable follows: the crash cut the last write short) is
  dropped, and with it the rest of the writer cycle it belongs to: a cycle is acknowledged
  only once all its records are fsynced, so a partial last cycle was never acknowledged, and
  keeping part of it would leave some series ahead of others (not a consistent cut).
* Damage *followed by readable records* is corruption of acknowledged data: the readable rest
  is recovered, the damaged record is recorded in the catalog as a hole with its exact range
  (series, arrival numbers and time span, from its checksummed header when that survived, else
  from its cycle) unless its events are already in committed blocks, and the segment is moved
  to ``quarantine/wal/`` instead of being deleted.
* Block files no catalog row points to are moved to ``quarantine/redundant/`` when their
  events are in committed blocks (a crash between publishing a block and committing it);
  others (blocks of a lost or older catalog) are left in place and reported:
  ``featurizer storage rebuild-catalog`` adopts them. No block file is ever deleted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from featurizer.storage._blocks import read_description, schema_bytes, write_block
from featurizer.storage._catalog import BlockInfo, RecordedHole, SeriesInfo
from featurizer.storage._codec import SEQ_COLUMN, require_pyarrow
from featurizer.storage._files import (
    QUARANTINE_DIR,
    TMP_DIR,
    WAL_DIR,
    block_files,
    fsync_dir,
    quarantine,
)
from featurizer.storage._holes import record_hole
from featurizer.storage._reader import format_ts, series_arrow_schema
from featurizer.storage._wal import (
    WalDamage,
    WalRecord,
    max_seq_in,
    read_batch,
    scan_segment,
    segments,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from featurizer.storage._storage import Storage

__all__ = ["RecoveryReport", "recover"]

logger = logging.getLogger(__name__)

_BLOCK_BYTES = 16 * 1024 * 1024
_OPEN_BYTES = 64 * 1024 * 1024


@attrs.frozen(kw_only=True)
class RecoveryReport:
    """What :meth:`Storage.recover` did.

    :param segments: WAL segments read.
    :param events: events recovered into new blocks (not already in committed blocks).
    :param blocks: blocks written.
    :param torn: torn tails dropped (segment, offset, why), if any.
    :param removed: temporary files deleted (partial writes, never visible).
    :param sessions: sessions marked ``recovered``.
    :param holes: spans lost to corruption, recorded in the catalog (exact ranges).
    :param quarantined: files moved under ``quarantine/`` (damaged or foreign segments,
        redundant block files), with where they went.
    :param refused: segments or records not recovered, and why (another storage's, unknown
        series).
    :param unadopted: block files no catalog row points to that are not redundant (adopt
        them with ``featurizer storage rebuild-catalog``).
    :param dropped: events of unacknowledged partial writer cycles dropped with a torn tail.
    :param snapshots: periodic book snapshots stored over the recovered events (continuing
        those the crashed recorder stored).
    :param max_seq_on_disk: the largest arrival number held by a block file the catalog does
        not know (under ``blocks/`` or ``quarantine/``) or by a WAL segment set aside under
        ``quarantine/wal/``, -1 if none: a recorder starts after it, so that arrival numbers
        are never reused, whatever catalog is in place.
    """

    segments: int = 0
    events: int = 0
    blocks: int = 0
    torn: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    holes: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    unadopted: tuple[str, ...] = ()
    dropped: int = 0
    max_seq_on_disk: int = -1
    snapshots: int = 0

    @property
    def ok(self) -> bool:
        """Nothing acknowledged was lost or refused."""
        return not (self.holes or self.refused)

    def describe(self) -> str:
        """One line (then one per hole, refusal and quarantined file)."""
        line = (
            f"recovered {self.events:,} events into {self.blocks:,} blocks from "
            f"{self.segments} WAL segment(s); sessions closed: {len(self.sessions)}; temporary "
            f"files removed: {len(self.removed)}"
        )
        if self.torn:
            line += f"; torn tails dropped: {'; '.join(self.torn)}"
        if self.dropped:
            line += f" ({self.dropped:,} unacknowledged events of partial writes)"
        if self.snapshots:
            line += f"; book snapshots stored over them: {self.snapshots:,}"
        lines = [line]
        lines += [f"hole: {hole}" for hole in self.holes]
        lines += [f"refused: {item}" for item in self.refused]
        lines += [f"quarantined: {item}" for item in self.quarantined]
        lines += [
            f"not in the catalog: {item} (run `featurizer storage rebuild-catalog` to adopt it)"
            for item in self.unadopted
        ]
        return "\n".join(lines)


@attrs.define
class _Cycle:
    session: str
    first: int
    rows: int
    min_ts: float
    max_ts: float
    present: int = 0
    damaged: list[WalDamage] = attrs.field(factory=list)
    torn: bool = False


@attrs.define
class _Segment:
    path: Path
    records: list[WalRecord] = attrs.field(factory=list)
    damage: list[WalDamage] = attrs.field(factory=list)
    foreign: str | None = None


def _index(path: Path, storage_id: str) -> _Segment:
    segment = _Segment(path=path)
    for item in scan_segment(path):
        if isinstance(item, WalDamage):
            segment.damage.append(item)
            continue
        owner = item.meta.get("storage")
        if owner != storage_id and segment.foreign is None:
            segment.foreign = f"written by storage {owner!r}, this is {storage_id!r}"
        segment.records.append(item)
    return segment


def recover(storage: Storage) -> RecoveryReport:
    """Recover a storage root (the caller holds the writer lock); see the module docs."""
    pa = require_pyarrow()
    root = storage.root
    catalog = storage.catalog
    storage_id = storage.storage_id
    removed: list[str] = []
    tmp = root / TMP_DIR
    if tmp.is_dir():
        for leftover in sorted(tmp.iterdir()):
            leftover.unlink(missing_ok=True)
            removed.append(str(leftover))
    paths = segments(root / WAL_DIR)
    quarantined: list[str] = []
    refused: list[str] = []
    torn: list[str] = []
    indexed: list[_Segment] = []
    for path in paths:
        segment = _index(path, storage_id)
        if segment.foreign is not None:
            target = quarantine(root, path, "foreign")
            refused.append(f"WAL segment {str(path)!r}: {segment.foreign}; moved to {target}")
            continue
        indexed.append(segment)
    cycles = _cycles(indexed)
    last_cycle: dict[str, int] = {}
    for session, first in cycles:
        last_cycle[session] = max(last_cycle.get(session, -1), first)
    dropped_cycles: set[tuple[str, int]] = set()
    holes: list[RecordedHole] = []
    for key, cycle in cycles.items():
        if cycle.present >= cycle.rows:
            continue
        corrupt = [d for d in cycle.damaged if not d.tail]
        if not corrupt and key[1] == last_cycle[cycle.session]:
            dropped_cycles.add(key)
            continue
        holes.extend(_cycle_holes(cycle, corrupt))
    for segment in indexed:
        for damage in segment.damage:
            if damage.tail:
                torn.append(f"{segment.path.name} at byte {damage.offset}: {damage.reason}")
            elif damage.meta is None:
                holes.extend(_orphan_damage_holes(segment, damage))
    known_sessions = {info.id for info in catalog.sessions()}
    kept_holes = [hole for hole in holes if not _already_committed(storage, hole)]
    for hole in kept_holes:
        if hole.session not in known_sessions:
            catalog.begin_session(hole.session, [], 0)
            known_sessions.add(hole.session)
        record_hole(root, catalog, hole)
    publisher = _Publisher(storage, pa)
    dropped = 0
    for segment in indexed:
        for record in segment.records:
            cycle_key = (record.cycle[0], record.cycle[1])
            if cycle_key in dropped_cycles:
                dropped += record.last_seq - record.first_seq + 1
                continue
            info = catalog.series(record.series)
            if info is None:
                refused.append(
                    f"{record.last_seq - record.first_seq + 1} events of unknown series "
                    f"{record.series[:10]} (session {record.session}) in {segment.path.name}: "
                    f"the catalog does not know the series (an older catalog?); the segment is "
                    f"kept in quarantine"
                )
                segment.foreign = "unknown series"
                continue
            if record.session not in known_sessions:
                catalog.begin_session(record.session, [record.series], 0)
                known_sessions.add(record.session)
            batch = read_batch(segment.path, record)
            publisher.add(info, record.session, batch)
    publisher.flush_all()
    snapshots = _extend_snapshots(storage, publisher.published)
    closed = []
    touched = publisher.sessions | {hole.session for hole in kept_holes}
    for session_info in catalog.sessions():
        crashed = session_info.status == "recording" or session_info.id in touched
        if crashed and session_info.status not in ("closed", "recovered"):
            catalog.end_session(session_info.id, "recovered")
            closed.append(session_info.id)
    for segment in indexed:
        unreadable = bool(segment.damage) and not segment.records
        if unreadable:
            refused.append(
                f"WAL segment {segment.path.name}: no readable record (another format or "
                f"version?); kept in quarantine"
            )
        damaged = (
            any(not d.tail for d in segment.damage) or segment.foreign is not None or unreadable
        )
        if damaged:
            target = quarantine(root, segment.path, "wal")
            quarantined.append(f"{segment.path.name} (damaged) -> {target}")
        else:
            segment.path.unlink(missing_ok=True)
    if paths:
        fsync_dir(root / WAL_DIR)
    moved, unadopted, max_seq_on_disk = _orphans(storage)
    report = RecoveryReport(
        segments=len(paths),
        events=publisher.events,
        blocks=publisher.blocks,
        torn=tuple(torn),
        removed=tuple(removed),
        sessions=tuple(closed),
        holes=tuple(_describe_hole(storage, hole) for hole in kept_holes),
        quarantined=tuple(quarantined + moved),
        refused=tuple(refused),
        unadopted=tuple(unadopted),
        dropped=dropped,
        snapshots=snapshots,
        max_seq_on_disk=max_seq_on_disk,
    )
    if paths or removed or closed or moved or unadopted:
        logger.warning("storage %s: %s", root, report.describe())
    return report


def _extend_snapshots(storage: Storage, published: set[tuple[str, str]]) -> int:
    """Continue the periodic snapshots of the recovered sessions' book-like series over the
    events just published (their definitions found among the installed plugins)."""
    from featurizer.storage._snapshots import (
        SNAPSHOT_INTERVAL,
        extend_snapshots,
        snapshot_interval_key,
    )

    stored = 0
    definitions: dict[str, Any] | None = None
    for series_key, session in sorted(published):
        info = storage.catalog.series(series_key)
        if info is None or info.kind != "data_source":
            continue
        try:
            if definitions is None:
                from featurizer._plugins import get_plugins

                definitions = dict(get_plugins().definitions())
            definition = definitions.get(info.definition)
            make = getattr(definition, "state_keeper", None)
            if make is None:
                continue
            interval = storage.catalog.meta(snapshot_interval_key(session))
            stored += extend_snapshots(
                storage,
                info,
                make(),
                session,
                SNAPSHOT_INTERVAL if interval is None else float(interval),
                full_state_field=getattr(definition, "snapshot_field", None),
            )
        except Exception as error:  # an optimisation of later replays: the data is safe
            logger.warning(
                "storing snapshots of %s over the recovered events failed (replays starting "
                "late will read from earlier full-state events): %s: %s",
                info.label,
                type(error).__name__,
                error,
            )
    return stored


def _cycles(indexed: list[_Segment]) -> dict[tuple[str, int], _Cycle]:
    cycles: dict[tuple[str, int], _Cycle] = {}

    def cycle_of(meta: dict[str, Any]) -> _Cycle:
        key = (str(meta["session"]), int(meta["cycle_first"]))
        if key not in cycles:
            cycles[key] = _Cycle(
                session=key[0],
                first=key[1],
                rows=int(meta["cycle_rows"]),
                min_ts=float(meta["cycle_min_ts"]),
                max_ts=float(meta["cycle_max_ts"]),
            )
        return cycles[key]

    for segment in indexed:
        for record in segment.records:
            cycle_of(record.meta).present += record.last_seq - record.first_seq + 1
        for damage in segment.damage:
            if damage.meta is not None:
                cycle_of(damage.meta).damaged.append(damage)
    return cycles


def _cycle_holes(cycle: _Cycle, corrupt: list[WalDamage]) -> list[RecordedHole]:
    holes = []
    accounted = 0
    for damage in corrupt:
        meta = damage.meta
        assert meta is not None
        accounted += int(meta["rows"])
        holes.append(
            RecordedHole(
                session=cycle.session,
                series_key=str(meta["series"]),
                start_ts=float(meta["min_ts"]),
                end_ts=float(meta["max_ts"]),
                min_seq=int(meta["first_seq"]),
                max_seq=_record_max_seq(meta),
                reason=f"{int(meta['rows']):,} events lost to a corrupt WAL record "
                f"({damage.reason})",
            )
        )
    if cycle.present + accounted < cycle.rows:
        holes.append(
            RecordedHole(
                session=cycle.session,
                series_key=None,
                start_ts=cycle.min_ts,
                end_ts=cycle.max_ts,
                min_seq=cycle.first,
                max_seq=cycle.first + cycle.rows - 1,
                reason=f"{cycle.rows - cycle.present - accounted:,} events of arrival numbers "
                f"{cycle.first}..{cycle.first + cycle.rows - 1} lost to a corrupt WAL record "
                f"whose header is unreadable (series unknown)",
            )
        )
    return holes


def _record_max_seq(meta: dict[str, Any]) -> int:
    """The largest arrival number of a record's events. Series interleave in a writer cycle,
    so it is not ``last_seq`` (the first plus the row count, less one); segments written
    before records carried ``max_seq`` give the end of the record's cycle (an upper bound)."""
    if "max_seq" in meta:
        return int(meta["max_seq"])
    return int(meta["cycle_first"]) + int(meta["cycle_rows"]) - 1


def _orphan_damage_holes(segment: _Segment, damage: WalDamage) -> list[RecordedHole]:
    """A damaged span between two complete cycles: a whole cycle lost, series unknown."""
    before = [r for r in segment.records if r.offset < damage.offset]
    after = [r for r in segment.records if r.offset > damage.offset]
    if not before or not after:
        return []
    low, high = before[-1], after[0]
    low_end = low.cycle[1] + low.cycle[2]
    if high.cycle[1] <= low_end:
        return []
    return [
        RecordedHole(
            session=high.session,
            series_key=None,
            start_ts=float(low.meta["cycle_max_ts"]),
            end_ts=float(high.meta["cycle_min_ts"]),
            min_seq=low_end,
            max_seq=high.cycle[1] - 1,
            reason=f"arrival numbers {low_end}..{high.cycle[1] - 1} lost to a corrupt WAL span "
            f"({damage.reason}; series unknown)",
        )
    ]


def _already_committed(storage: Storage, hole: RecordedHole) -> bool:
    """Whether the lost events are in committed blocks anyway (the WAL outlived them)."""
    if hole.max_seq is None:
        return False
    keys = (
        [hole.series_key]
        if hole.series_key is not None
        else [e.series_key for e in storage.catalog.session_series() if e.session == hole.session]
    )
    if not keys:
        return False
    return all(storage.catalog.committed_max_seq(key, hole.session) >= hole.max_seq for key in keys)


def _describe_hole(storage: Storage, hole: RecordedHole) -> str:
    series = "every series"
    if hole.series_key is not None:
        info = storage.catalog.series(hole.series_key)
        series = info.label if info is not None else hole.series_key[:10]
    return (
        f"series {series!r} of session {hole.session}: {format_ts(hole.start_ts)} .. "
        f"{format_ts(hole.end_ts)}, arrival numbers {hole.min_seq}..{hole.max_seq}: {hole.reason}"
    )


class _Publisher:
    """Accumulates recovered events per (series, session) and writes bounded blocks."""

    def __init__(self, storage: Storage, pa: Any) -> None:
        self.storage = storage
        self.pa = pa
        self.pending: dict[tuple[str, str], list[pa.Table]] = {}
        self.bytes: dict[tuple[str, str], int] = {}
        self.infos: dict[str, SeriesInfo] = {}
        self.committed: dict[tuple[str, str], int] = {}
        self.events = 0
        self.blocks = 0
        self.sessions: set[str] = set()
        self.published: set[tuple[str, str]] = set()

    def add(self, info: SeriesInfo, session: str, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        key = (info.key, session)
        committed = self.committed.get(key)
        if committed is None:
            committed = self.committed[key] = self.storage.catalog.committed_max_seq(
                info.key, session
            )
        self.infos.setdefault(info.key, info)
        table = self.pa.Table.from_batches([batch])
        table = table.filter(pc.greater(table.column(SEQ_COLUMN), committed))
        if not table.num_rows:
            return
        self.pending.setdefault(key, []).append(table)
        self.bytes[key] = self.bytes.get(key, 0) + table.nbytes
        if self.bytes[key] >= _BLOCK_BYTES:
            self.flush(key)
        elif sum(self.bytes.values()) >= _OPEN_BYTES:
            self.flush(max(self.bytes, key=self.bytes.__getitem__))

    def flush_all(self) -> None:
        for key in list(self.pending):
            self.flush(key)

    def flush(self, key: tuple[str, str]) -> None:
        tables = self.pending.pop(key, [])
        self.bytes.pop(key, None)
        if not tables:
            return
        series_key, session = key
        catalog = self.storage.catalog
        info = catalog.series(series_key) or self.infos[series_key]
        target = _recovery_schema(info, tables)
        table = self.pa.concat_tables([t.select(target.names).cast(target) for t in tables])
        ordinal = catalog.next_ordinal(series_key, session)
        block = write_block(
            self.storage.root,
            table,
            info,
            session,
            ordinal,
            self.storage.format,
            self.storage.storage_id,
        )
        stored = info.arrow_schema
        new_schema = schema_bytes(target)
        update = stored is None or (stored != new_schema and not _has_nulls(target))
        catalog.commit_block(
            block,
            session_first_ts=block.start_ts,
            session_last_ts=block.end_ts,
            arrow_schema=new_schema if update else None,
        )
        self.committed[key] = block.max_seq
        self.blocks += 1
        self.events += table.num_rows
        self.sessions.add(session)
        self.published.add(key)


def _recovery_schema(info: SeriesInfo, tables: list[pa.Table]) -> pa.Schema:
    known = series_arrow_schema(info)
    if known is not None and not _has_nulls(known):
        return known
    for table in tables:
        if not _has_nulls(table.schema):
            return table.schema
    return known if known is not None else tables[0].schema


def _has_nulls(schema: pa.Schema) -> bool:
    from featurizer.storage._codec import _has_null_type

    return any(_has_null_type(field.type) for field in schema)


def _orphans(storage: Storage) -> tuple[list[str], list[str], int]:
    """Quarantine redundant orphan block files; list the others (never delete any).

    :returns: the files moved, the files left in place, and the largest arrival number of
        any block file the catalog does not know (left in place or quarantined, now or
        earlier; -1 if none).
    """
    known = {block.path for block in storage.catalog.all_blocks()}
    moved: list[str] = []
    unadopted: list[str] = []
    max_seq = -1
    for path in block_files(storage.root):
        relative = path.relative_to(storage.root).as_posix()
        if relative in known:
            continue
        description = describe_file(path)
        max_seq = max(max_seq, _described_max_seq(description))
        if _redundant(storage, description):
            target = quarantine(storage.root, path, "redundant")
            moved.append(f"{relative} (its events are in committed blocks) -> {target}")
        else:
            unadopted.append(str(path))
    quarantined = storage.root / QUARANTINE_DIR
    if quarantined.is_dir():
        for path in sorted(quarantined.rglob("*.parquet*")):
            max_seq = max(max_seq, _described_max_seq(describe_file(path)))
        # segments set aside (damaged, or of series an older catalog does not know) hold
        # arrival numbers too, of this storage ("foreign" ones are another's)
        for path in sorted((quarantined / "wal").rglob("*.wal*")):
            with contextlib.suppress(OSError):
                max_seq = max(max_seq, max_seq_in(path))
    return moved, unadopted, max_seq


def _described_max_seq(description: dict[str, Any] | None) -> int:
    try:
        return int(description["max_seq"]) if description is not None else -1
    except (KeyError, TypeError, ValueError):
        return -1


def _redundant(storage: Storage, description: dict[str, Any] | None) -> bool:
    """Whether every event of an orphan block file is in committed blocks of its series."""
    if description is None:
        return False
    series = description.get("series", {})
    key = series.get("key") if isinstance(series, dict) else None
    if not isinstance(key, str):
        return False
    blocks = [b for b in storage.catalog.blocks(key) if b.session == description.get("session")]
    return _covers(blocks, int(description["min_seq"]), int(description["max_seq"]))


def _covers(blocks: list[BlockInfo], low: int, high: int) -> bool:
    position = low
    for block in sorted(blocks, key=lambda b: b.min_seq):
        if block.min_seq > position:
            break
        position = max(position, block.max_seq + 1)
        if position > high:
            return True
    return position > high


def describe_file(path: Path) -> dict[str, Any] | None:
    """The self-description of a block file, or ``None`` if it is unreadable or has none."""
    import pyarrow.parquet as pq

    try:
        return read_description(pq.ParquetFile(path))
    except Exception:
        return None


def iter_block_descriptions(root: Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """Every block file under ``root`` with its self-description (``None`` if unreadable)."""
    for path in block_files(root):
        yield path, describe_file(path)
