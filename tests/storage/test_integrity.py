"""Storage never returns wrong data and never destroys data: corrupt WAL records, foreign
segments, lost or outdated catalogs, partial flushes and readers of a running recording."""

from __future__ import annotations

import hashlib
import itertools
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurizer import Feature
from featurizer.storage import (
    DataHoleWarning,
    Storage,
    StorageError,
    rebuild_catalog,
)
from featurizer.storage._maintenance import drop_session
from featurizer.storage._wal import WalRecord, scan_segment, segments
from featurizer.testing import ExampleTicker
from tests.storage.storage_support import assert_bit_identical

A = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
B = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "B"})

CRASHING_RECORDER = textwrap.dedent(
    """
    import os, sys
    from featurizer import Feature
    from featurizer.storage import Storage, MemoryBasedCompactor
    from featurizer.testing import ExampleTicker

    root, cycles, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    a = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
    b = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "B"})
    storage = Storage(root)
    writer = storage.writer([a, b], compactor=MemoryBasedCompactor(max_block_bytes=1 << 30),
                            sync_interval=60.0)
    record_a, record_b = writer.event_callback(a), writer.event_callback(b)
    t = start
    for cycle in range(cycles):
        for i in range(50):
            t += 0.01
            record_a({"timestamp": t, "receipt_timestamp": t, "bid": t, "ask": t + 1})
            record_b({"timestamp": t, "receipt_timestamp": t, "bid": -t, "ask": -t + 1})
        writer.sync()
    os._exit(0)  # a crash: everything acknowledged is in the WAL, nothing in blocks
    """
)


def _crash(root: Path, cycles: int = 20, start: float = 1000.0) -> None:
    subprocess.run(
        [sys.executable, "-c", CRASHING_RECORDER, str(root), str(cycles), str(start)],
        check=True,
        timeout=120,
    )


def _expected(cycles: int = 20, start: float = 1000.0) -> list[float]:
    out, t = [], start
    for _ in range(cycles * 50):
        t += 0.01
        out.append(t)
    return out


def _files(root: Path) -> dict[str, str]:
    """Every block file (wherever it is now, by name) with its hash."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in root.rglob("*.parquet")
    }


def _records(path: Path) -> list[WalRecord]:
    return [item for item in scan_segment(path) if isinstance(item, WalRecord)]


def test_a_corrupt_record_in_the_middle_is_a_hole_and_the_rest_is_recovered(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    _crash(root)
    (segment,) = segments(root / "wal")
    records = _records(segment)
    assert len(records) == 40  # 20 cycles of 2 series
    victim = records[4]  # cycle 2, series A
    data = bytearray(segment.read_bytes())
    data[victim.offset + victim.length - 20] ^= 0x40  # a flipped bit in its payload
    segment.write_bytes(bytes(data))
    with Storage(root) as storage:
        report = storage.recover()
        assert not report.ok and len(report.holes) == 1
        # the series interleave: A's 50 events of the cycle are every other arrival number
        assert victim.meta["max_seq"] == victim.first_seq + 2 * 49
        lost = set(range(victim.first_seq, victim.meta["max_seq"] + 1, 2))
        assert f"arrival numbers {victim.first_seq}..{victim.meta['max_seq']}" in report.holes[0]
        series_a = storage.find_series(A)
        a_events = [e["timestamp"] for e in storage.read_events(A)]
        b_events = [e["timestamp"] for e in storage.read_events(B)]
        assert b_events == _expected()  # nothing of the other series lost
        # exactly the corrupt record's 50 events of A are missing, in one run
        assert len(lost) == 50 and len(a_events) == 950
        missing = [ts for ts in _expected() if ts not in set(a_events)]
        assert missing == _expected()[100:150]
        (hole,) = storage.holes(series_a)
        assert hole.start == victim.meta["min_ts"] and hole.end == victim.meta["max_ts"]
        with pytest.warns(DataHoleWarning, match="corrupt WAL record"):
            storage.replay([A, B]).close()
    # the damaged segment is kept aside, not deleted
    assert not segments(root / "wal")
    assert list((root / "quarantine" / "wal").rglob("*.wal"))
    # the hole survives the loss of the catalog
    (root / "catalog.sqlite").unlink()
    for side in root.glob("catalog.sqlite-*"):
        side.unlink()
    rebuild_catalog(root)
    with Storage.open(root) as storage:
        (again,) = storage.holes(A)
        assert (again.start, again.end) == (hole.start, hole.end)


CUTTING_RECORDER = textwrap.dedent(
    """
    import os, sys, time
    from featurizer import Feature
    from featurizer.storage import Storage, MemoryBasedCompactor
    from featurizer.testing import ExampleTicker

    root = sys.argv[1]
    a = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
    b = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "B"})
    storage = Storage(root)
    writer = storage.writer([a, b], compactor=MemoryBasedCompactor(max_block_bytes=2400),
                            sync_interval=60.0, max_block_lag=None)
    record_a, record_b = writer.event_callback(a), writer.event_callback(b)
    t = 1000.0
    for cycle in range(4):
        for i in range(50):
            t += 0.01
            record_a({"timestamp": t, "receipt_timestamp": t, "bid": t, "ask": t + 1})
            record_b({"timestamp": t, "receipt_timestamp": t, "bid": -t, "ask": -t + 1})
        writer.sync()
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and len(storage.catalog.blocks(a.key)) < 3:
        time.sleep(0.01)
    os._exit(0)  # a crash: the WAL holds every cycle, blocks hold some of them
    """
)


def test_a_corrupt_record_partly_in_blocks_is_still_a_hole(tmp_path: Path) -> None:
    """A block cut in the middle of a WAL record: the record's events after the block are
    lost when the record is corrupt, and are reported, whatever the interleaving of series
    (a record's arrival numbers are not consecutive)."""
    root = tmp_path / "root"
    subprocess.run([sys.executable, "-c", CUTTING_RECORDER, str(root)], check=True, timeout=120)
    with Storage.open(root) as storage:
        committed = max(b.max_seq for b in storage.catalog.blocks(storage.find_series(A).key))
    (segment,) = segments(root / "wal")
    series_a = next(r.series for r in _records(segment) if r.first_seq == 0)
    (victim,) = [
        r
        for r in _records(segment)
        if r.series == series_a and r.first_seq <= committed < r.meta["max_seq"]
    ]
    assert victim.last_seq <= committed  # what the record's header alone used to claim
    data = bytearray(segment.read_bytes())
    data[victim.offset + victim.length - 20] ^= 0x40
    segment.write_bytes(bytes(data))
    with Storage(root) as storage:
        report = storage.recover()
        assert not report.ok and len(report.holes) == 1, report.describe()
        a_events = [e["timestamp"] for e in storage.read_events(A)]
        lost = (victim.meta["max_seq"] - committed) // 2  # A has every other number
        assert len(a_events) == 200 - lost and a_events == sorted(a_events)
        with pytest.warns(DataHoleWarning, match="corrupt WAL record"):
            storage.replay([A]).close()


def test_a_torn_tail_is_dropped_with_its_whole_unacknowledged_cycle(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _crash(root)
    (segment,) = segments(root / "wal")
    records = _records(segment)
    last_a = records[-2]  # the last cycle: A's record is complete, B's is torn
    with open(segment, "r+b") as handle:
        handle.truncate(records[-1].offset + 30)
    with Storage(root) as storage:
        report = storage.recover()
        assert report.ok and report.torn and report.dropped == 50
        a_events = [e["timestamp"] for e in storage.read_events(A)]
        b_events = [e["timestamp"] for e in storage.read_events(B)]
        # a complete cut: both series end at the last complete cycle
        assert a_events == b_events == _expected()[:950]
        assert last_a.first_seq > 0
    assert not list((root / "quarantine").rglob("*.wal"))


def test_foreign_wal_segments_are_refused(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    _crash(mine, cycles=2)
    with Storage(mine) as storage:
        storage.recover()
    _crash(other, cycles=3, start=5000.0)
    (foreign,) = segments(other / "wal")
    shutil.copy(foreign, mine / "wal" / foreign.name)
    with Storage(mine) as storage:
        report = storage.recover()
        assert not report.ok and "written by storage" in report.refused[0]
        assert [e["timestamp"] for e in storage.read_events(A)] == _expected(cycles=2)
        assert {s.id for s in storage.catalog.sessions()} == {
            s.session for s in storage.catalog.session_series()
        }
    assert list((mine / "quarantine" / "foreign").rglob("*.wal"))


def test_a_lost_or_emptied_catalog_is_an_error_and_can_be_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _crash(root, cycles=4)
    with Storage(root) as storage:
        storage.recover()
        want_a = storage.read_events(A)
        want_b = storage.read_events(B)
    before = _files(root)
    (root / "catalog.sqlite").write_bytes(b"")
    for side in root.glob("catalog.sqlite-*"):
        side.unlink()
    for attempt in (lambda: Storage.open(root), lambda: Storage(root)):
        with pytest.raises(StorageError, match="rebuild-catalog"):
            attempt()
    (root / "catalog.sqlite").unlink()
    with pytest.raises(StorageError, match="missing but the root holds 2 block"):
        Storage(root)
    assert not (root / "catalog.sqlite").exists()
    report = rebuild_catalog(root)
    assert (report.series, report.blocks, report.rows) == (2, 2, 400)
    with Storage.open(root) as storage:
        assert storage.read_events(A) == want_a and storage.read_events(B) == want_b
        assert storage.verify().ok
    assert _files(root) == before


def test_an_older_catalog_never_leads_to_deleted_or_overwritten_blocks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _crash(root, cycles=3)
    with Storage(root) as storage:
        storage.recover()
    backup = tmp_path / "catalog.backup"
    shutil.copy(root / "catalog.sqlite", backup)
    _crash(root, cycles=3, start=2000.0)
    with Storage(root) as storage:
        storage.recover()
    before = _files(root)
    for side in root.glob("catalog.sqlite-*"):
        side.unlink()
    shutil.copy(backup, root / "catalog.sqlite")  # the backup knows only the first session
    _crash(root, cycles=3, start=3000.0)
    with Storage(root) as storage:
        report = storage.recover()
        assert len(report.unadopted) == 2  # the second session's blocks: left in place
    after = _files(root)
    assert all(after.get(name) == digest for name, digest in before.items())
    rebuild = rebuild_catalog(root)
    assert rebuild.shared == ()  # the third session did not reuse the second's numbers
    with Storage.open(root) as storage:
        got = [e["timestamp"] for e in storage.read_events(A)]
        assert got == _expected(3) + _expected(3, 2000.0) + _expected(3, 3000.0)
        assert storage.verify().ok
        sessions = {b.session: b for b in storage.catalog.blocks(storage.find_series(A).key)}
        spans = sorted((b.min_seq, b.max_seq) for b in sessions.values())
        assert len(spans) == 3  # one block per session, their arrival numbers disjoint
        assert all(high < low for (_, high), (low, _) in itertools.pairwise(spans))


def test_a_recorder_never_reuses_the_arrival_numbers_of_blocks_its_catalog_does_not_know(
    tmp_path: Path,
) -> None:
    """With an older catalog in place, a new session starts after every block on disk (the
    unadopted ones and the quarantined ones too), not only after what the catalog knows."""
    root = tmp_path / "root"
    with Storage(root) as storage, storage.writer([A]) as writer:
        record = writer.event_callback(A)
        for i in range(10):
            record({"timestamp": float(i), "receipt_timestamp": 0.0, "bid": 1.0, "ask": 2.0})
    backup = tmp_path / "catalog.backup"
    shutil.copy(root / "catalog.sqlite", backup)
    with Storage(root) as storage:
        with storage.writer([A]) as writer:
            record = writer.event_callback(A)
            for i in range(10, 30):
                record({"timestamp": float(i), "receipt_timestamp": 0.0, "bid": 1.0, "ask": 2.0})
        second = max(b.max_seq for b in storage.catalog.all_blocks())
        assert second == 29
    for side in root.glob("catalog.sqlite-*"):
        side.unlink()
    shutil.copy(backup, root / "catalog.sqlite")
    with Storage(root) as storage:
        with storage.writer([A]) as writer:
            record = writer.event_callback(A)
            record({"timestamp": 100.0, "receipt_timestamp": 0.0, "bid": 1.0, "ask": 2.0})
        assert max(b.min_seq for b in storage.catalog.all_blocks()) == second + 1
        (block,) = [b for b in storage.catalog.all_blocks() if b.session == writer.session]
        drop_session(storage, writer.session)  # its block goes to quarantine/dropped
    with Storage(root) as storage:
        with storage.writer([A]) as writer:
            record = writer.event_callback(A)
            record({"timestamp": 200.0, "receipt_timestamp": 0.0, "bid": 1.0, "ask": 2.0})
        (last,) = [b for b in storage.catalog.all_blocks() if b.session == writer.session]
        assert last.min_seq == block.max_seq + 1


def test_a_recorder_never_reuses_the_arrival_numbers_of_a_refused_wal_segment(
    tmp_path: Path,
) -> None:
    """A crashed session of a series an older catalog does not know: recovery refuses its
    segment (kept in quarantine), and the next session starts after its arrival numbers."""
    root = tmp_path / "root"
    with Storage(root) as storage, storage.writer([A]) as writer:
        writer.event_callback(A)(
            {"timestamp": 1.0, "receipt_timestamp": 0.0, "bid": 1.0, "ask": 2.0}
        )
    backup = tmp_path / "catalog.backup"
    shutil.copy(root / "catalog.sqlite", backup)
    _crash(root, cycles=2, start=2000.0)  # series A and B, 200 events in the WAL only
    (segment,) = segments(root / "wal")
    last = max(r.meta["cycle_first"] + r.meta["cycle_rows"] - 1 for r in _records(segment))
    assert last == 200  # A's first event was 0
    for side in root.glob("catalog.sqlite-*"):
        side.unlink()
    shutil.copy(backup, root / "catalog.sqlite")  # knows A (one event) but not B
    with Storage(root) as storage:
        with storage.writer([A]) as writer:
            writer.event_callback(A)(
                {"timestamp": 5000.0, "receipt_timestamp": 0.0, "bid": 1.0, "ask": 2.0}
            )
        assert list((root / "quarantine" / "wal").rglob("*.wal"))
        (block,) = [b for b in storage.catalog.all_blocks() if b.session == writer.session]
        assert block.min_seq == last + 1


def _shared_root(root: Path, first: str, second: str, offset: int, later: bool) -> None:
    """A root as an older version left it: two sessions whose blocks of series A share
    arrival numbers (the second shifted by ``offset`` numbers, ``later`` in time or not)."""
    import pyarrow.compute as pc

    from featurizer.storage._blocks import write_block

    with Storage(root) as storage:
        with storage.writer([A]) as writer:
            record = writer.event_callback(A)
            for i in range(40):
                t = 1000.0 + i
                record({"timestamp": t, "receipt_timestamp": t, "bid": t, "ask": t})
        table = storage.read_table(A)
        info = storage.find_series(A)
        storage_id = storage.storage_id
        fmt = storage.format
    seqs = table.column("__seq__")
    shift = 500.0 if later else -500.0
    for session, delta, seq_shift in ((first, 0.0, 0), (second, shift, offset)):
        moved = table.set_column(
            table.schema.get_field_index("timestamp"),
            "timestamp",
            pc.add(table.column("timestamp"), delta),
        ).set_column(table.schema.get_field_index("__seq__"), "__seq__", pc.add(seqs, seq_shift))
        for ordinal in range(4):  # four blocks per session: any interleaving would show
            write_block(
                root, moved.slice(10 * ordinal, 10), info, session, ordinal, fmt, storage_id
            )


_SESSION_IDS = st.text("0123456789abcdef", min_size=8, max_size=8).map(
    lambda tag: f"20260101T000000-{tag}"
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sessions=st.lists(_SESSION_IDS, min_size=2, max_size=2, unique=True),
    offset=st.just(0) | st.integers(min_value=-39, max_value=39),
    later=st.booleans(),
)
def test_sessions_sharing_arrival_numbers_are_read_in_a_documented_order_whatever_their_names(
    tmp_path_factory: pytest.TempPathFactory, sessions: list[str], offset: int, later: bool
) -> None:
    """Whatever the session ids and block names (the order files are found in), a rebuilt
    catalog reads the sessions of a series whole, by first arrival number, then by first
    event time; and the rebuild reports the sharing."""
    first, second = sessions
    root = tmp_path_factory.mktemp("shared") / "root"
    _shared_root(root, first, second, offset, later)
    shutil.rmtree(root / "quarantine", ignore_errors=True)
    for name in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
        (root / name).unlink(missing_ok=True)
    for original in (root / "blocks").rglob("*.parquet"):
        if first not in original.name and second not in original.name:
            original.unlink()  # the writer's own block: only the two crafted ones remain
    report = rebuild_catalog(root)
    assert len(report.shared) == 1 and "both hold arrival numbers" in report.shared[0]
    own = [1000.0 + i for i in range(40)]
    shifted = [t + (500.0 if later else -500.0) for t in own]
    # the second session first when its numbers start earlier, or equally early and it is
    # earlier in time
    expected = shifted + own if offset < 0 or (offset == 0 and not later) else own + shifted
    with Storage.open(root) as storage:
        assert [e["timestamp"] for e in storage.read_events(A)] == expected
        order = [b.session for b in storage.catalog.blocks(storage.find_series(A).key)]
        assert order == (
            [second] * 4 + [first] * 4 if expected[0] != own[0] else [first] * 4 + [second] * 4
        )


def test_block_files_are_never_replaced(tmp_path: Path) -> None:
    from featurizer.storage._files import publish

    root = tmp_path / "root"
    publish(root, "blocks/x/1.parquet", b"first")
    with pytest.raises(StorageError, match="refusing to overwrite"):
        publish(root, "blocks/x/1.parquet", b"second")
    assert (root / "blocks/x/1.parquet").read_bytes() == b"first"
    assert not list((root / "tmp").iterdir())


def test_a_reader_during_a_recording_sees_a_consistent_cut(tmp_path: Path) -> None:
    """A commits a block every few events, B rarely: a reader must not merge A's longer
    tail with B's shorter one as if both were complete."""
    from featurizer.storage import MemoryBasedCompactor

    root = tmp_path / "root"
    storage = Storage(root)
    writer = storage.writer(
        [A, B], compactor=MemoryBasedCompactor(max_block_bytes=4096), sync_interval=0.005
    )
    record_a, record_b = writer.event_callback(A), writer.event_callback(B)
    stop = threading.Event()
    snapshots: list[tuple[float, list[tuple[str, float]]]] = []

    def read() -> None:
        deadline = time.monotonic() + 30.0
        with Storage.open(root, readonly=True) as reader:
            while not stop.is_set() and time.monotonic() < deadline and len(snapshots) < 20:
                try:
                    replay = reader.replay([A, B], holes="ignore")
                except StorageError:
                    continue  # nothing committed yet
                events = [(f.name, e["timestamp"]) for f, e in replay.events()]
                if replay.data_end is not None:
                    snapshots.append((replay.data_end, events))

    reader = threading.Thread(target=read)
    reader.start()
    t = 0.0
    for i in range(30_000):
        t += 0.001
        record_a({"timestamp": t, "receipt_timestamp": t, "bid": t, "ask": t})
        if i % 10 == 0:
            record_b({"timestamp": t, "receipt_timestamp": t, "bid": t, "ask": t})
        if i % 1000 == 0:
            writer.sync()
        if len(snapshots) >= 5:
            break
    writer.stop()
    stop.set()
    reader.join(timeout=60)
    final = [(f.name, e["timestamp"]) for f, e in storage.replay([A, B]).events()]
    storage.close()
    assert snapshots, "the reader never saw a running session"
    for data_end, events in snapshots:
        assert events == [item for item in final if item[1] < data_end]


def test_fields_beyond_the_schema_are_stored_never_dropped(tmp_path: Path) -> None:
    events = [
        {"timestamp": 1.0, "receipt_timestamp": 1.0, "bid": 1.0, "ask": 2.0, "bid_size": 0.5},
        {"timestamp": 2.0, "receipt_timestamp": 2.0, "bid": 1.5, "ask": 2.5, "bid_size": -0.0},
    ]
    with Storage(tmp_path / "root") as storage:
        with storage.writer([A]) as writer:
            record = writer.graph_callback(A)
            for event in events:
                record(A, event)
        got = storage.read_events(A)
        assert got == events and [list(e) for e in got] == [list(e) for e in events]
        assert str(got[1]["bid_size"]) == "-0.0"
        # a later recording of the series must carry the same fields
        writer = storage.writer([A])
        append = writer.event_callback(A)
        with pytest.raises(StorageError, match="bid_size"):
            append({"timestamp": 9.0, "receipt_timestamp": 9.0, "bid": 1.0, "ask": 2.0})
        with pytest.raises(StorageError, match="bid_size"):
            writer.stop()
        assert storage.read_events(A) == events


def test_a_source_with_nothing_committed_yet_limits_the_cut(tmp_path: Path) -> None:
    from featurizer.storage import MemoryBasedCompactor

    root = tmp_path / "root"
    storage = Storage(root)
    writer = storage.writer(
        [A, B], compactor=MemoryBasedCompactor(max_block_bytes=2048), max_block_lag=None
    )
    record_a, record_b = writer.event_callback(A), writer.event_callback(B)
    record_b({"timestamp": 5.0, "receipt_timestamp": 5.0, "bid": 1.0, "ask": 1.0})
    for i in range(2000):
        record_a({"timestamp": float(i), "receipt_timestamp": 0.0, "bid": 1.0, "ask": 1.0})
    writer.sync()
    deadline = time.monotonic() + 30
    while not storage.catalog.blocks(A.key) and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        with Storage.open(root, readonly=True) as reader:
            replay = reader.replay([A, B], holes="ignore")
            assert replay.data_end == 5.0 and replay.recording == writer.session
            assert [e["timestamp"] for _, e in replay.events()] == [0.0, 1.0, 2.0, 3.0, 4.0]
    finally:
        writer.stop()
        storage.close()


def test_new_block_directories_are_fsynced_into_their_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featurizer.storage import _files

    synced: list[Path] = []
    real = _files.fsync_dir
    monkeypatch.setattr(_files, "fsync_dir", lambda path: (synced.append(path), real(path)))
    root = tmp_path / "root"
    root.mkdir()
    _files.publish(root, "blocks/d/k/date=2024-01-01/1.parquet", b"x")
    block_dir = root / "blocks/d/k/date=2024-01-01"
    for directory in (root / "blocks", root / "blocks/d", root / "blocks/d/k", block_dir):
        assert directory.parent in synced, f"{directory} was not fsynced into its parent"
    assert synced[-1] == block_dir  # and the file's rename last


def test_a_slow_series_does_not_hold_the_cut_back_further_than_the_lag(tmp_path: Path) -> None:
    from featurizer.storage import MemoryBasedCompactor

    root = tmp_path / "root"
    storage = Storage(root)
    writer = storage.writer(
        [A, B], compactor=MemoryBasedCompactor(max_block_bytes=1 << 20), max_block_lag=50.0
    )
    record_a, record_b = writer.event_callback(A), writer.event_callback(B)
    record_b({"timestamp": 5.0, "receipt_timestamp": 5.0, "bid": 1.0, "ask": 1.0})
    record_a({"timestamp": 0.0, "receipt_timestamp": 0.0, "bid": 1.0, "ask": 1.0})
    writer.sync()
    for i in range(1, 201):
        record_a({"timestamp": float(i), "receipt_timestamp": 0.0, "bid": 1.0, "ask": 1.0})
    writer.sync()
    deadline = time.monotonic() + 30
    try:
        with Storage.open(root, readonly=True) as reader:
            while time.monotonic() < deadline:
                if reader.catalog.blocks(B.key) and reader.catalog.blocks(A.key):
                    break
                time.sleep(0.01)
            replay = reader.replay([A, B], holes="ignore")
            # both slow blocks were written once 50 s behind the newest event: the cut is
            # where the last batch of A begins, far past B's only event
            assert replay.data_end is not None and replay.data_end >= 1.0
            events = [(f.name, e["timestamp"]) for f, e in replay.events()]
            assert ("example_ticker.x.B", 5.0) in events
    finally:
        writer.stop()
        storage.close()


def _ticks(first: int, count: int) -> list[dict[str, float]]:
    return [
        {"timestamp": float(t), "receipt_timestamp": float(t), "bid": 1.0, "ask": 2.0}
        for t in range(first, first + count)
    ]


def _record_chunks(writer: Any, count: int, first: int = 0) -> None:
    """Record chunks ``first`` .. ``first + count - 1`` of 100 s of A and B, syncing each."""
    record_a, record_b = writer.event_callback(A), writer.event_callback(B)
    for chunk in range(first, first + count):
        for event in _ticks(100 * chunk, 100):
            record_a(event)
            record_b(event)
        writer.sync()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_recording_faster_than_real_time_writes_lagging_blocks_at_most_once_an_interval(
    tmp_path: Path,
) -> None:
    """Every chunk is 100 s of event time (the lag is 10 s): without the interval every WAL
    cycle would write a block of each series."""
    with Storage(tmp_path) as storage:
        writer = storage.writer([A, B], max_block_lag=10.0, min_block_interval=3600.0)
        try:
            _record_chunks(writer, 1)
            _wait_for(  # the first lag flush is not deferred
                lambda: all(storage.catalog.blocks(f.key) for f in (A, B)), "the first lag flush"
            )
            _record_chunks(writer, 4, first=1)
        finally:
            writer.stop()
        for feature in (A, B):
            lagging, last = storage.catalog.blocks(feature.key)  # the rest at the stop
            assert lagging.rows <= 100 and lagging.rows + last.rows == 500
            assert_bit_identical(storage.read_events(feature), _ticks(0, 500), feature.name)


def test_a_deferred_lag_flush_is_written_without_further_events(tmp_path: Path) -> None:
    with Storage(tmp_path) as storage:
        writer = storage.writer([A, B], max_block_lag=10.0, min_block_interval=1.0)
        try:
            _record_chunks(writer, 2)
            _wait_for(
                lambda: (
                    [sum(b.rows for b in storage.catalog.blocks(f.key)) for f in (A, B)]
                    == [200, 200]
                ),
                "the deferred lag flush",
            )
        finally:
            writer.stop()


def test_a_segment_without_any_readable_record_is_kept_not_dropped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with Storage(root):
        pass
    (root / "wal").mkdir()
    legacy = root / "wal" / "old-000000.wal"
    legacy.write_bytes(b"FZW1" + bytes(200))  # e.g. written by an older version
    with Storage(root) as storage:
        report = storage.recover()
    assert not report.ok and "no readable record" in report.refused[0]
    assert [p.name for p in (root / "quarantine").rglob("*.wal")] == ["old-000000.wal"]
