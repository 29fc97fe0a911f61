"""A writer whose background work runs in a child process stores exactly what the threaded one
stores, and fails, crashes and stops the same way.

The storage tests that exercise the writer through its public API are collected here a second
time (imported below) with ``process=True`` as the writer's default.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurizer._config import construct_features_from_configs
from featurizer._runner import RunOptions
from featurizer.storage import (
    OverlapError,
    Storage,
    StorageError,
    StorageLockedError,
    record,
    select_features,
)
from featurizer.storage._writer import BlockWriter
from featurizer.storage._writer_process import process_supported
from tests.storage.storage_support import assert_bit_identical, config, entry
from tests.storage.test_roundtrip import (  # noqa: F401  (collected again in process mode)
    test_empty_tuples_before_the_first_level_get_a_type_later,
    test_events_not_matching_the_schema_are_refused_naming_the_series,
    test_every_value_round_trips_bit_for_bit,
    test_key_order_of_the_first_event_is_kept,
    test_nan_payload_and_negative_zero_survive,
    test_one_block_of_untyped_and_typed_cycles_reads_back,
    test_one_writer_per_root,
)
from tests.storage.test_writer import (  # noqa: F401  (collected again in process mode)
    OTHER,
    TICKER,
    test_a_gap_between_sessions_is_a_hole_and_overlaps_are_errors,
    test_backpressure_bounds_pending_events,
    test_blocks_sessions_and_ranges,
    test_sync_acknowledges_and_reports,
    test_writer_from_several_threads_keeps_per_series_order,
    ticks,
)

pytestmark = pytest.mark.skipif(not process_supported(), reason="needs os.fork")

MARKET = config(
    [
        entry("mid", "mid_price", "BTC-USDT"),
        entry("vol", "volatility", "BTC-USDT", window="5s"),
        entry("tvi", "trade_volume_imbalance", "ETH-USDT", window="5s"),
        entry("book", "l2_snapshot", "ETH-USDT", depth=3),
    ],
    storage={"compactor": "memory", "block_size": "64KiB", "sync_interval": "20ms"},
)


@pytest.fixture(autouse=True)
def _process_by_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    defaults = BlockWriter.__init__.__kwdefaults__
    assert defaults is not None and defaults["process"] is False
    monkeypatch.setitem(defaults, "process", True)
    yield


def _stored(storage: Storage) -> dict[str, list[tuple[tuple[str, str], ...]]]:
    """Every recorded series' events, as comparable tuples (``repr`` keeps NaN payloads)."""
    features = select_features(MARKET, construct_features_from_configs(MARKET), None)
    return {
        f.name: [tuple(sorted((k, repr(v)) for k, v in e.items())) for e in storage.read_events(f)]
        for f in features
    }


def _wait_until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie nobody reaped counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] in {"Z", "X"}
    except FileNotFoundError:
        return True


def test_the_market_is_stored_as_the_threaded_writer_stores_it(tmp_path: Path) -> None:
    """Nested book levels, strings, extra ticker fields, several series: the same events."""
    stored = {}
    for process in (False, True):
        with Storage(tmp_path / str(process)) as storage:
            summary = record(
                MARKET,
                RunOptions(emitter="synthetic", max_events=20_000, seed=5),
                storage,
                writer_options={"process": process},
            )
            assert summary.blocks > 4 and summary.bytes > 0
            rows = {
                storage.catalog.series(key).name: stats[1]  # (the book's snapshots too)
                for key, stats in storage.catalog.series_stats().items()
            }
            assert any(name.endswith("#snapshots") for name in rows)
            stored[process] = (summary.acknowledged, _stored(storage), rows)
            (session,) = storage.catalog.sessions()
            assert session.status == "closed"
            assert storage.verify().ok
            assert not list((tmp_path / str(process) / "wal").glob("*.wal"))
    assert stored[True] == stored[False]
    assert sum(map(len, stored[True][1].values())) == stored[True][0]


def test_the_config_and_the_cli_choose_the_writer_process(tmp_path: Path) -> None:
    from featurizer.cli import main

    path = tmp_path / "market.yaml"
    path.write_text(
        "feature_configs:\n  - name: mid\n    feature_definition: mid_price\n"
        "    params: {data_source: {exchange: synthetic, symbol: BTC-USDT}}\n"
        "storage: {writer: process}\n"
    )
    seen: list[int | None] = []
    original = BlockWriter.stop

    def stop(self: BlockWriter) -> None:
        seen.append(self.process_id)
        original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BlockWriter, "stop", stop)
        defaults = BlockWriter.__init__.__kwdefaults__
        assert defaults is not None
        patch.setitem(defaults, "process", False)
        args = ["record", str(path), "--storage", str(tmp_path / "a"), "--max-events", "500"]
        assert main([*args, "--quiet"]) == 0
        args[3] = str(tmp_path / "b")
        assert main([*args, "--quiet", "--writer", "thread"]) == 0
    assert seen[0] is not None and seen[1] is None


class _Price(float):
    """A float subclass (as numpy's float64 is): ``marshal`` cannot hold it, ``pickle`` can."""


def test_values_marshal_cannot_hold_are_shipped_all_the_same(tmp_path: Path) -> None:
    from tests.storage.test_roundtrip import SOURCE

    events = [
        {
            "timestamp": float(i),
            "receipt_timestamp": float(i),
            "x": 0.5 * i,
            "n": i,
            "s": f"s{i}",
            "flag": i % 2 == 0,
            "levels": ((_Price(100.0 + i), 1.0), (99.0, _Price(2.0 * i))),
        }
        for i in range(50)
    ]
    with Storage(tmp_path) as storage:
        with storage.writer([SOURCE], sync_interval=0.005) as writer:
            record_event = writer.event_callback(SOURCE)
            for event in events:
                record_event(event)
        expected = [
            {**e, "levels": tuple(tuple(float(v) for v in level) for level in e["levels"])}
            for e in events
        ]
        assert_bit_identical(storage.read_events(SOURCE), expected, "pickled values")


@pytest.mark.parametrize(("field", "value"), [("writer", "proc"), ("compactor", "size")])
def test_a_wrong_choice_names_the_file_the_field_and_the_choices(
    tmp_path: Path, field: str, value: str
) -> None:
    from featurizer import FeaturizerConfig
    from featurizer._errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text(
        "feature_configs:\n  - name: mid\n    feature_definition: mid_price\n"
        "    params: {data_source: {exchange: synthetic, symbol: BTC-USDT}}\n"
        f"storage: {{{field}: {value}}}\n"
    )
    with pytest.raises(ConfigError, match=rf"bad.yaml.*storage\.{field}.*expected one of"):
        FeaturizerConfig.from_yaml(path)


def test_a_failure_in_the_child_reaches_the_caller_with_its_type(tmp_path: Path) -> None:
    with Storage(tmp_path) as storage:
        with storage.writer([TICKER]) as writer:
            record_tick = writer.event_callback(TICKER)
            for event in ticks(0.0, 100):
                record_tick(event)
        writer = storage.writer([TICKER])
        record_tick = writer.event_callback(TICKER)
        for event in ticks(50.0, 10):
            record_tick(event)
        with pytest.raises(StorageError):
            writer.sync(timeout=30.0)
        with pytest.raises(StorageError, match="already stored") as raised:
            writer.stop()
        assert isinstance(raised.value.__cause__, OverlapError)
        assert_bit_identical(storage.read_events(TICKER), ticks(0.0, 100), "the first session")


def test_a_killed_child_fails_the_writer_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    events = ticks(0.0, 3_000, step=0.01)
    with Storage(tmp_path) as storage:
        writer = storage.writer([TICKER, OTHER], sync_interval=60.0)
        pid = writer.process_id
        assert pid is not None
        a, b = writer.event_callback(TICKER), writer.event_callback(OTHER)
        for event in events[:2_000]:
            a(event)
            b(event)
        assert writer.sync() == 4_000
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(StorageError, match="killed by signal 9"):
            for event in events[2_000:]:
                a(event)
            writer.sync(timeout=30.0)
        with pytest.raises(StorageError, match="killed by signal 9"):
            writer.stop()
        report = storage.recover()
        assert report.segments >= 1
        for feature in (TICKER, OTHER):
            got = storage.read_events(feature)
            assert len(got) >= 2_000
            assert_bit_identical(got, events[: len(got)], feature.name)


def test_a_producer_held_by_backpressure_learns_that_the_child_died(tmp_path: Path) -> None:
    with Storage(tmp_path) as storage:
        writer = storage.writer([TICKER], max_pending=100, sync_interval=60.0)
        record_tick = writer.event_callback(TICKER)
        pid = writer.process_id
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(StorageError, match="killed by signal 9"):
            for event in ticks(0.0, 100_000):
                record_tick(event)
        with pytest.raises(StorageError, match="killed by signal 9"):
            writer.stop()


def test_the_recording_process_reads_what_its_writer_process_committed(tmp_path: Path) -> None:
    """Readers in the parent (its catalog connections reopened after the fork) see the
    child's commits while it records: a prefix of the events, never an error."""
    events = ticks(0.0, 4_000, step=1.0)
    with Storage(tmp_path) as storage:
        with storage.writer(
            [TICKER], sync_interval=0.005, max_block_lag=5.0, min_block_interval=0.0
        ) as writer:
            record_tick = writer.event_callback(TICKER)
            seen = 0
            for start in range(0, len(events), 500):
                for event in events[start : start + 500]:
                    record_tick(event)
                writer.sync()
                _wait_until(lambda: bool(storage.catalog.blocks(TICKER.key)), "a committed block")
                got = storage.read_events(TICKER)
                assert_bit_identical(got, events[: len(got)], "a prefix")
                assert len(got) >= seen
                seen = len(got)
            assert seen > 0
        assert_bit_identical(storage.read_events(TICKER), events, "all of them")


def test_a_fork_that_fails_names_the_fix_and_leaves_the_root_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from featurizer.storage import _writer_process

    def fail() -> int:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(_writer_process.os, "fork", fail)
    with Storage(tmp_path) as storage:
        with pytest.raises(StorageError, match="writer's threads"):
            storage.writer([TICKER])
        with storage.writer([TICKER], process=False) as writer:
            record_tick = writer.event_callback(TICKER)
            for event in ticks(0.0, 10):
                record_tick(event)
        assert_bit_identical(storage.read_events(TICKER), ticks(0.0, 10), "the next writer")


def test_the_child_ignores_interrupts_the_parent_decides(tmp_path: Path) -> None:
    with Storage(tmp_path) as storage:
        with storage.writer([TICKER]) as writer:
            pid = writer.process_id
            assert pid is not None
            record_tick = writer.event_callback(TICKER)
            for i, event in enumerate(ticks(0.0, 1_000)):
                record_tick(event)
                if i == 500:
                    writer.sync()
                    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                        os.kill(pid, signum)
            writer.sync()
        assert _gone(pid)
        assert_bit_identical(storage.read_events(TICKER), ticks(0.0, 1_000), "every event")


RECORDER = textwrap.dedent(
    """
    import sys
    from featurizer.storage import Storage
    from featurizer.testing import ExampleTicker
    from featurizer import Feature

    ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    with Storage(sys.argv[1]) as storage:
        writer = storage.writer([ticker], sync_interval=60.0, process=True)
        record = writer.event_callback(ticker)
        for i in range(int(sys.argv[2])):
            record({"timestamp": float(i), "receipt_timestamp": float(i),
                    "bid": 1.0 + i, "ask": 2.0 + i})
        acknowledged = writer.sync()
        sys.stdout.write(f"{writer.process_id} {acknowledged}\\n")
        sys.stdout.flush()
        for i in range(int(sys.argv[2]), 10 ** 9):  # (until killed)
            record({"timestamp": float(i), "receipt_timestamp": float(i),
                    "bid": 1.0 + i, "ask": 2.0 + i})
    """
)


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.integers(1, 5_000))
def test_a_killed_parent_ends_the_child_as_a_crash_and_loses_nothing_acknowledged(
    tmp_path_factory: pytest.TempPathFactory, events: int
) -> None:
    root = tmp_path_factory.mktemp("root")
    process = subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(root), str(events)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        child, acknowledged = map(int, line.split())
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert acknowledged == events
    _wait_until(lambda: _gone(child), "the writer process to exit after its parent")
    with Storage.open(root) as storage:
        _wait_until(lambda: _recovered(storage), "the root's lock")
        (session,) = storage.catalog.sessions()
        assert session.status == "recovered"
        got = storage.read_events(TICKER)
        assert len(got) >= acknowledged
        assert [e["timestamp"] for e in got] == [float(i) for i in range(len(got))]


def _recovered(storage: Storage) -> bool:
    try:
        storage.recover()
    except StorageLockedError:
        return False
    return True


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.integers(1, 800), min_size=1, max_size=5),
    kill_after=st.integers(0, 4),
    sync_interval=st.sampled_from([0.005, 60.0]),
)
def test_whatever_the_kill_point_every_synced_event_is_recovered_once(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[int],
    kill_after: int,
    sync_interval: float,
) -> None:
    """Batches of events, each synced; the child is killed after one of them (or never)."""
    root = tmp_path_factory.mktemp("root")
    events = ticks(0.0, sum(batches), step=0.5)
    synced = 0
    with Storage(root) as storage:
        writer = storage.writer([TICKER], sync_interval=sync_interval)
        record_tick = writer.event_callback(TICKER)
        pid = writer.process_id
        assert pid is not None
        killed = False
        try:
            start = 0
            for index, size in enumerate(batches):
                for event in events[start : start + size]:
                    record_tick(event)
                start += size
                synced = writer.sync()
                if index == kill_after:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                    break
            writer.stop()
        except StorageError:
            assert killed
            with pytest.raises(StorageError):
                writer.stop()
        assert synced >= (sum(batches[: kill_after + 1]) if killed else sum(batches))
        storage.recover()
        got = storage.read_events(TICKER)
        assert len(got) >= synced
        assert_bit_identical(got, events[: len(got)], "recovered once, in order")
