"""Explicit repairs: drop a session, drop a block, repair what ``verify`` finds.

Every action is listed before it is done (``dry_run`` lists without doing). Nothing is
deleted: the files of dropped blocks move to ``quarantine/dropped/``, and what a repair gives
up (a missing or corrupt block, blocks missing from the catalog) is recorded in the catalog as
a hole, so that every later replay over that time reports it instead of returning less
silently.
"""

from __future__ import annotations

import attrs

from featurizer.storage._catalog import BlockInfo, RecordedHole
from featurizer.storage._errors import StorageError
from featurizer.storage._files import quarantine
from featurizer.storage._holes import record_hole
from featurizer.storage._storage import Storage

__all__ = ["MaintenanceReport", "drop_block", "drop_session", "repair"]


@attrs.frozen(kw_only=True)
class MaintenanceReport:
    """What a maintenance command did (or would do, on a dry run).

    :param actions: one line per action.
    :param dry_run: whether nothing was changed.
    """

    actions: tuple[str, ...]
    dry_run: bool

    def describe(self) -> str:
        """The actions, one per line (``would`` on a dry run)."""
        if not self.actions:
            return "nothing to do"
        prefix = "would " if self.dry_run else ""
        return "\n".join(f"{prefix}{action}" for action in self.actions)


def _locked(storage: Storage, dry_run: bool) -> object:
    lock = storage.writer_lock()
    if not dry_run:
        lock.acquire()
    return lock


def _remove_block(storage: Storage, block: BlockInfo, reason: str, hole: bool) -> str:
    """Take a block out of the catalog (its file to quarantine), recording a hole."""
    path = storage.root / block.path
    where = ""
    if path.exists():
        where = f"; file moved to {quarantine(storage.root, path, 'dropped')}"
    with storage.catalog.transaction() as db:
        db.execute("DELETE FROM blocks WHERE id = ?", (block.id,))
        db.execute(
            "INSERT OR IGNORE INTO dropped_blocks (series_key, session, ordinal, reason) "
            "VALUES (?, ?, ?, ?)",
            (block.series_key, block.session, block.ordinal, reason),
        )
    if hole:
        record_hole(
            storage.root,
            storage.catalog,
            RecordedHole(
                session=block.session,
                series_key=block.series_key,
                start_ts=block.start_ts,
                end_ts=block.end_ts,
                min_seq=block.min_seq,
                max_seq=block.max_seq,
                reason=f"block {block.id} ({block.rows:,} events) dropped: {reason}",
            ),
        )
    return f"drop block {block.id} ({block.rows:,} events, {block.path}): {reason}{where}"


def drop_block(storage: Storage, block_id: int, *, dry_run: bool = False) -> MaintenanceReport:
    """Take one block out of the catalog; its span becomes a recorded hole.

    :raises StorageError: if there is no such block.
    """
    found = [b for b in storage.catalog.all_blocks() if b.id == block_id]
    if not found:
        raise StorageError(f"there is no block {block_id}", path=str(storage.catalog.path))
    block = found[0]
    line = f"drop block {block.id} ({block.rows:,} events, {block.path})"
    if dry_run:
        return MaintenanceReport(actions=(line,), dry_run=True)
    lock = _locked(storage, dry_run)
    try:
        action = _remove_block(storage, block, "dropped by `storage drop-block`", hole=True)
    finally:
        lock.release()  # type: ignore[attr-defined]
    return MaintenanceReport(actions=(action,), dry_run=False)


def drop_session(storage: Storage, session: str, *, dry_run: bool = False) -> MaintenanceReport:
    """Remove a recording session and its blocks (e.g. a duplicate recording): the blocks'
    files move to ``quarantine/dropped/``; no hole is recorded (the time was recorded twice,
    or is now simply not recorded).

    :raises StorageError: if there is no such session.
    """
    if storage.catalog.session(session) is None:
        known = ", ".join(s.id for s in storage.catalog.sessions()) or "none"
        raise StorageError(
            f"there is no session {session!r} (sessions: {known})", path=str(storage.catalog.path)
        )
    blocks = [b for b in storage.catalog.all_blocks() if b.session == session]
    if dry_run:
        rows = sum(b.rows for b in blocks)
        return MaintenanceReport(
            actions=(f"drop session {session}: {len(blocks)} block(s), {rows:,} events",),
            dry_run=True,
        )
    lock = _locked(storage, dry_run)
    try:
        actions = [_remove_block(storage, b, f"session {session} dropped", False) for b in blocks]
        with storage.catalog.transaction() as db:
            for table in ("sessions", "session_series", "series_cover", "holes", "dropped_blocks"):
                column = "id" if table == "sessions" else "session"
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (session,))
        actions.append(f"drop session {session}")
    finally:
        lock.release()  # type: ignore[attr-defined]
    return MaintenanceReport(actions=tuple(actions), dry_run=False)


def repair(storage: Storage, *, dry_run: bool = False) -> MaintenanceReport:
    """Make ``verify`` pass again without hiding anything.

    Publishes an unrecovered WAL (like ``recover``); takes missing, corrupt and mismatching
    blocks out of the catalog (files to quarantine) and records their spans as holes; records
    block ordinals missing from the catalog as holes. Block files the catalog does not know
    are left for ``rebuild-catalog``.
    """
    report = storage.verify()
    actions: list[str] = []
    if any(p.kind == "wal" for p in report.problems):
        actions.append("recover the WAL left by a crashed recorder")
    by_id = {b.id: b for b in storage.catalog.all_blocks()}
    bad = sorted(
        {
            p.block
            for p in report.problems
            if p.kind in ("missing", "corrupt", "mismatch", "schema") and p.block in by_id
        }
    )
    gaps = _gaps(storage)
    if dry_run:
        actions += [f"drop block {i} ({by_id[i].path}) and record its span as a hole" for i in bad]
        actions += [
            f"record the missing ordinal(s) {o} of session {s} as a hole" for _, s, o in gaps
        ]
        return MaintenanceReport(actions=tuple(actions), dry_run=True)
    if actions:
        recovery = storage.recover()
        actions = [f"recover: {recovery.describe()}"]
    lock = _locked(storage, dry_run)
    try:
        for block_id in bad:
            problem = next(p for p in report.problems if p.block == block_id)
            actions.append(
                _remove_block(storage, by_id[block_id], f"{problem.kind}: repaired", hole=True)
            )
        for series_key, session, ordinals in gaps:
            actions.append(_record_gap(storage, series_key, session, ordinals))
    finally:
        lock.release()  # type: ignore[attr-defined]
    return MaintenanceReport(actions=tuple(actions), dry_run=False)


def _gaps(storage: Storage) -> list[tuple[str, str, list[int]]]:
    present: dict[tuple[str, str], set[int]] = {}
    for block in storage.catalog.all_blocks():
        present.setdefault((block.series_key, block.session), set()).add(block.ordinal)
    dropped = storage.catalog.dropped_ordinals()
    gaps = []
    for entry in storage.catalog.session_series():
        key = (entry.series_key, entry.session)
        missing = sorted(
            set(range(entry.blocks)) - present.get(key, set()) - dropped.get(key, set())
        )
        if missing:
            gaps.append((entry.series_key, entry.session, missing))
    return gaps


def _record_gap(storage: Storage, series_key: str, session: str, ordinals: list[int]) -> str:
    from featurizer.storage._reader import plan_series

    info = storage.catalog.series(series_key)
    assert info is not None
    holes = [h for h in plan_series(storage.catalog, info, None, None).holes if session in h.reason]
    with storage.catalog.transaction() as db:
        db.executemany(
            "INSERT OR IGNORE INTO dropped_blocks (series_key, session, ordinal, reason) "
            "VALUES (?, ?, ?, ?)",
            [(series_key, session, o, "missing from the catalog") for o in ordinals],
        )
    for hole in holes:
        record_hole(
            storage.root,
            storage.catalog,
            RecordedHole(
                session=session,
                series_key=series_key,
                start_ts=hole.start,
                end_ts=hole.end,
                min_seq=None,
                max_seq=None,
                reason=f"block ordinal(s) {ordinals} missing from the catalog (repaired)",
            ),
        )
    return f"record ordinal(s) {ordinals} of session {session} ({info.label}) as a hole"
