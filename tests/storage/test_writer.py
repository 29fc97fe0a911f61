"""BlockWriter, compactors, the catalog and the reader: blocks, sessions, ranges, holes."""

from __future__ import annotations

import itertools
import math
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurizer import Feature
from featurizer.storage import (
    DataHoleWarning,
    MemoryBasedCompactor,
    NoDataError,
    OpenBlockState,
    OverlapError,
    Storage,
    StorageError,
    TimeBasedCompactor,
    _writer,
)
from featurizer.testing import ExampleTicker
from tests.storage.storage_support import assert_bit_identical

TICKER = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
OTHER = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "T"})


def ticks(start: float, count: int, step: float = 1.0) -> list[dict[str, float]]:
    return [
        {
            "timestamp": start + i * step,
            "receipt_timestamp": start + i * step,
            "bid": 100.0 + i,
            "ask": 101.0 + i,
        }
        for i in range(count)
    ]


def store(
    storage: Storage, events: list[dict[str, float]], feature: Feature = TICKER, **options: object
) -> None:
    with storage.writer([feature], **options) as writer:  # type: ignore[arg-type]
        record = writer.event_callback(feature)
        for event in events:
            record(event)


# compactors --------------------------------------------------------------------------------


def _apply(compactor: object, batches: list[list[float]], row_bytes: int) -> list[list[float]]:
    """Feed batches of timestamps through a compactor like the writer does: the blocks."""
    blocks: list[list[float]] = []
    current: list[float] = []
    max_ts = None
    for batch in batches:
        state = OpenBlockState(
            rows=len(current),
            nbytes=len(current) * row_bytes,
            first_ts=current[0] if current else None,
            max_ts=max_ts,
        )
        cuts = compactor.cut_points(state, batch, len(batch) * row_bytes)  # type: ignore[attr-defined]
        assert cuts == sorted(cuts) and all(0 <= c <= len(batch) for c in cuts)
        start = 0
        for cut in cuts:
            current.extend(batch[start:cut])
            if current:
                blocks.append(current)
            current = []
            start = cut
        current.extend(batch[start:])
        if batch:
            max_ts = max(batch) if max_ts is None else max(max_ts, *batch)
    if current:
        blocks.append(current)
    return blocks


timestamp_batches = st.lists(
    st.lists(st.integers(0, 400).map(lambda x: x / 4), max_size=30).map(sorted), max_size=8
).map(lambda batches: [sorted(b) for b in batches])


@settings(max_examples=200)
@given(batches=timestamp_batches, cap=st.integers(1, 12))
def test_memory_compactor_caps_every_block(batches: list[list[float]], cap: int) -> None:
    ordered = sorted(t for b in batches for t in b)
    batches = _chunk_like(batches, ordered)
    blocks = _apply(MemoryBasedCompactor(max_block_bytes=cap * 10), batches, 10)
    assert [t for b in blocks for t in b] == ordered
    assert all(len(b) <= cap for b in blocks)
    assert all(len(b) == cap for b in blocks[:-1])


@settings(max_examples=200)
@given(batches=timestamp_batches, cap=st.integers(1, 50), bucket=st.sampled_from([1.0, 2.5, 10.0]))
def test_time_compactor_never_mixes_buckets(
    batches: list[list[float]], cap: int, bucket: float
) -> None:
    ordered = sorted(t for b in batches for t in b)
    batches = _chunk_like(batches, ordered)
    blocks = _apply(TimeBasedCompactor(bucket=bucket, max_block_bytes=cap * 10), batches, 10)
    assert [t for b in blocks for t in b] == ordered
    assert all(len(b) <= cap for b in blocks)
    for block in blocks:
        assert math.floor(block[0] / bucket) == math.floor(block[-1] / bucket), block
    for a, b in itertools.pairwise(blocks):
        if len(a) < cap:
            assert math.floor(a[-1] / bucket) != math.floor(b[0] / bucket)


def _chunk_like(batches: list[list[float]], ordered: list[float]) -> list[list[float]]:
    out, i = [], 0
    for batch in batches:
        out.append(ordered[i : i + len(batch)])
        i += len(batch)
    return out


# writer and catalog ------------------------------------------------------------------------


def test_blocks_sessions_and_ranges(tmp_path: Path) -> None:
    events = ticks(1_704_067_200.0, 500)
    with Storage(tmp_path) as storage:
        store(storage, events, compactor=MemoryBasedCompactor(max_block_bytes=2_000))
        blocks = storage.catalog.blocks(TICKER.key)
        assert len(blocks) > 5
        assert [b.ordinal for b in blocks] == list(range(len(blocks)))
        assert all(a.max_seq < b.min_seq for a, b in itertools.pairwise(blocks))
        assert all(
            b.path.startswith("blocks/example_ticker/") and "date=2024-01-01" in b.path
            for b in blocks
        )
        (session,) = storage.catalog.sessions()
        assert session.status == "closed"
        assert (session.first_ts, session.last_ts) == (
            events[0]["timestamp"],
            events[-1]["timestamp"],
        )
        assert_bit_identical(storage.read_events(TICKER), events, "all")
        start, end = events[100]["timestamp"], events[350]["timestamp"]
        assert_bit_identical(storage.read_events(TICKER, start, end), events[100:350], "range")
        table = storage.read_table(TICKER, start, end)
        assert table.num_rows == 250 and "__seq__" in table.column_names
        assert storage.holes(TICKER) == []
        assert storage.find_series(TICKER.key[:8]).key == TICKER.key
        assert storage.find_series("example_ticker.x.S").key == TICKER.key
        with pytest.raises(NoDataError, match="stored:"):
            storage.find_series("nope")


def test_a_gap_between_sessions_is_a_hole_and_overlaps_are_errors(tmp_path: Path) -> None:
    first = ticks(1000.0, 10)
    second = ticks(2000.0, 10)
    with Storage(tmp_path) as storage:
        store(storage, first)
        store(storage, second)
        holes = storage.holes(TICKER)
        assert len(holes) == 1
        assert (holes[0].start, holes[0].end) == (1009.0, 2000.0)
        assert "not recorded" in holes[0].describe() and "example_ticker.x.S" in holes[0].describe()
        assert storage.holes(TICKER, 0.0, 1005.0)[0].reason == "before the first recording"
        assert storage.holes(TICKER, 2005.0, 3000.0)[-1].reason == "after the last recording"
        assert storage.holes(TICKER, 1001.0, 1005.0) == []
        assert_bit_identical(storage.read_events(TICKER), first + second, "two sessions")
        with pytest.warns(DataHoleWarning, match="1 hole"):
            replay = storage.replay([TICKER])
        assert_bit_identical([e for _, e in replay.events()], first + second, "replay")
        with pytest.raises(NoDataError, match="hole"):
            storage.replay([TICKER], holes="error")
        with pytest.raises(StorageError, match=r"OverlapError: .*already stored"):
            store(storage, ticks(1005.0, 3))  # refused before anything is acknowledged
        assert_bit_identical(storage.read_events(TICKER), first + second, "after the refusal")
        store(storage, ticks(1005.0, 3), allow_overlap=True)  # an explicit choice
        (overlap,) = [p for p in storage.verify().problems if p.kind == "overlap"]
        assert overlap.severe and "drop-session" in overlap.message
        with pytest.raises(OverlapError, match="duplicate"):
            storage.replay([TICKER], holes="ignore")
        assert len(list(storage.replay([TICKER], start=1500.0, holes="ignore").events())) == 10


def test_a_block_missing_from_the_catalog_is_a_hole(tmp_path: Path) -> None:
    events = ticks(0.0, 300)
    with Storage(tmp_path) as storage:
        store(storage, events, compactor=MemoryBasedCompactor(max_block_bytes=2_000))
        blocks = storage.catalog.blocks(TICKER.key)
        victim = blocks[2]
        with storage.catalog.transaction() as db:
            db.execute("DELETE FROM blocks WHERE id = ?", (victim.id,))
        (hole,) = storage.holes(TICKER)
        assert (hole.start, hole.end) == (blocks[1].end_ts, blocks[3].start_ts)
        assert "missing from the catalog" in hole.reason
        report = storage.verify()
        assert not report.ok
        assert any(p.kind == "gap" for p in report.problems)
        assert any(p.kind == "orphan" and victim.path in p.message for p in report.problems)


def test_no_data_in_range_and_unknown_source(tmp_path: Path) -> None:
    with Storage(tmp_path) as storage:
        store(storage, ticks(1_704_067_200.0, 10))
        with pytest.raises(NoDataError, match="no stored data from 2025") as error:
            storage.replay([TICKER], start=1_735_689_600.0, holes="ignore")
        assert error.value.series is not None and "example_ticker.x.S" in error.value.series
        assert "it has data from 2024-01-01T00:00:00Z" in str(error.value)
        with pytest.raises(NoDataError, match="not stored in this root") as missing:
            storage.replay([OTHER])
        assert "example_ticker.x.T" in str(missing.value)


def test_backpressure_bounds_pending_events(tmp_path: Path) -> None:
    events = ticks(0.0, 20_000, step=0.01)
    peak = [0]
    with Storage(tmp_path) as storage:
        with storage.writer([TICKER], max_pending=500, sync_interval=5.0) as writer:
            record = writer.event_callback(TICKER)
            for event in events:
                record(event)
                peak[0] = max(peak[0], writer.pending)
        assert peak[0] <= 500
        assert len(storage.read_events(TICKER)) == len(events)


def test_sync_acknowledges_and_reports(tmp_path: Path) -> None:
    acknowledged: list[int] = []
    with Storage(tmp_path) as storage:
        writer = storage.writer(
            [TICKER, OTHER], sync_interval=60.0, on_acknowledged=acknowledged.append
        )
        a, b = writer.event_callback(TICKER), writer.event_callback(OTHER)
        for event in ticks(0.0, 10):
            a(event)
            b(event)
        assert writer.sync() == 20
        assert acknowledged[-1] == 20
        writer.stop()
        writer.stop()
        blocks = storage.catalog.blocks(TICKER.key) + storage.catalog.blocks(OTHER.key)
        seqs = sorted(s for b in blocks for s in (b.min_seq, b.max_seq))
        assert seqs[0] == 0 and seqs[-1] == 19


@pytest.mark.parametrize("byte_indices", [256, 1])
def test_writer_from_several_threads_keeps_per_series_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, byte_indices: int
) -> None:
    """(With ``byte_indices`` 1, the writer takes the path of more than 256 series.)"""
    monkeypatch.setattr(_writer, "_BYTE_INDICES", byte_indices)
    with Storage(tmp_path) as storage:
        with storage.writer([TICKER, OTHER], sync_interval=0.005) as writer:

            def produce(feature: Feature) -> None:
                record = writer.event_callback(feature)
                for event in ticks(0.0, 5_000):
                    record(event)

            threads = [threading.Thread(target=produce, args=(f,)) for f in (TICKER, OTHER)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        for feature in (TICKER, OTHER):
            assert_bit_identical(storage.read_events(feature), ticks(0.0, 5_000), feature.name)


def test_sync_waits_for_the_events_a_wal_cycle_is_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events already taken by a WAL cycle (no longer in the buffers) are waited for too."""
    writing, release = threading.Event(), threading.Event()
    original = _writer.WalWriter.write

    def held_write(self: _writer.WalWriter, records: list[bytes], max_seq: int) -> None:
        writing.set()
        assert release.wait(60.0)
        original(self, records, max_seq)

    monkeypatch.setattr(_writer.WalWriter, "write", held_write)
    with Storage(tmp_path) as storage:
        writer = storage.writer([TICKER], sync_interval=60.0)
        record = writer.event_callback(TICKER)
        for event in ticks(0.0, 10):
            record(event)
        writer._wake.set()  # (a cycle takes the ten events and blocks in its WAL write)
        assert writing.wait(60.0)
        with pytest.raises(StorageError, match="timed out"):
            writer.sync(timeout=0.2)
        release.set()
        assert writer.sync() == 10
        writer.stop()
