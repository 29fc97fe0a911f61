"""Offline replay: the generator, splits with warm-up, the offline emitter and its plugin."""

from __future__ import annotations

import io
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurizer import ConfigError, EmitterError, FeaturizerConfig
from featurizer._plugins import get_plugins
from featurizer._runner import RunOptions, run
from featurizer._sinks import flatten_grouped
from featurizer.cli._replay_cmd import Progress
from featurizer.offline import OfflineFeatureStreamGenerator, derived_warmup, split
from featurizer.storage import (
    CorruptBlockError,
    DataHoleWarning,
    MemoryBasedCompactor,
    NoDataError,
    Storage,
    record,
)
from featurizer.testing import CollectingSink
from tests.storage.storage_support import assert_bit_identical, config, entry

pytest.importorskip("featurizer_synthetic")
featurizer_offline = pytest.importorskip("featurizer_offline")

WINDOWED = [
    entry("mid", "mid_price", "BTC-USDT"),
    entry("vol", "volatility", "BTC-USDT", window="5s"),
    entry("tvi", "trade_volume_imbalance", "BTC-USDT", window="3s"),
    entry("vwap", "vwap", "ETH-USDT", window="4s"),
    entry("bars", "ohlcv", "ETH-USDT", interval="2s"),
    entry("spread", "relative_spread", "ETH-USDT"),
]


class Recorded(tuple):  # type: ignore[type-arg]
    """``(root, config, live rows)`` with a short repr (hypothesis prints arguments)."""

    def __repr__(self) -> str:
        return f"Recorded({self[0]!s}, {len(self[2])} rows)"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FeaturizerConfig, list]:
    """A synthetic market (two symbols, ~60 s of event time) recorded with windowed features."""
    root = tmp_path_factory.mktemp("offline")
    cfg = config(WINDOWED)
    live = CollectingSink()
    with Storage(root) as storage:
        record(
            cfg,
            RunOptions(emitter="synthetic", max_events=12_000, seed=21),
            storage,
            sink=live,
            compactor=MemoryBasedCompactor(max_block_bytes=40_000),
        )
    return Recorded((root, cfg, live.rows))


def test_generator_protocol(recorded: tuple[Path, FeaturizerConfig, list]) -> None:
    root, cfg, live_rows = recorded
    generator = OfflineFeatureStreamGenerator(cfg, root)
    first = generator.next()
    assert generator.has_next() and generator.has_next()
    assert [f.name for f, _ in first] == ["mid", "vol", "tvi", "vwap", "bars", "spread"]
    rows = [flatten_grouped(first), *generator.rows()]
    assert not generator.has_next()
    with pytest.raises(StopIteration):
        generator.next()
    assert_bit_identical(rows, live_rows, "generator")
    assert generator.outputs_out == len(rows) and generator.holes == []


def test_per_timestamp_keeps_the_last_vector_of_each_timestamp(
    recorded: tuple[Path, FeaturizerConfig, list],
) -> None:
    root, cfg, live_rows = recorded
    rows = list(OfflineFeatureStreamGenerator(cfg, root, per="timestamp").rows())
    expected = [
        row
        for i, row in enumerate(live_rows)
        if i + 1 == len(live_rows) or live_rows[i + 1]["timestamp"] != row["timestamp"]
    ]
    assert len(expected) < len(live_rows), "the recording should have equal timestamps"
    assert_bit_identical(rows, expected, "per timestamp")


@settings(max_examples=6, deadline=None)
@given(n=st.integers(1, 7), skew=st.sampled_from([0.0, 0.3]))
def test_splits_with_warmup_concatenate_to_the_whole(
    recorded: tuple[Path, FeaturizerConfig, list], n: int, skew: float
) -> None:
    root, cfg, live_rows = recorded
    with Storage.open(root) as storage:
        parts = split(cfg, n, storage=storage)
        assert len(parts) == n
        assert all(a.end_date == b.start_date for a, b in itertools.pairwise(parts))
        assert all(p.warmup == derived_warmup(_outputs(cfg)) == 10.0 for p in parts)
        rows: list[dict[str, Any]] = []
        for part in parts:
            rows.extend(OfflineFeatureStreamGenerator(part, storage).rows())
    assert_bit_identical(rows, live_rows, f"{n} splits")


def test_warmup_is_extended_when_an_output_is_stale(
    recorded: tuple[Path, FeaturizerConfig, list],
) -> None:
    root, cfg, live_rows = recorded
    middle = live_rows[len(live_rows) // 2]["timestamp"]
    generator = OfflineFeatureStreamGenerator(cfg, root, start=middle, warmup=0.001)
    rows = list(generator.rows())
    assert 1 <= generator.restarts <= 3
    assert_bit_identical(rows, [r for r in live_rows if r["timestamp"] >= middle], "extended")
    too_short = list(OfflineFeatureStreamGenerator(cfg, root, start=middle, warmup=0).rows())
    assert len(too_short) < len(rows)


def test_split_needs_a_range(recorded: tuple[Path, FeaturizerConfig, list]) -> None:
    _, cfg, _ = recorded
    with pytest.raises(ConfigError, match="splitting needs start_date"):
        split(cfg, 2)
    with pytest.raises(ConfigError, match="positive integer"):
        split(cfg, 0)


def _outputs(cfg: FeaturizerConfig) -> list:
    from featurizer import construct_features_from_configs

    return construct_features_from_configs(cfg)


# the offline emitter --------------------------------------------------------------------------


def test_offline_plugin_is_found_through_its_distribution() -> None:
    plugins = get_plugins()
    (info,) = [i for i in plugins.describe() if i.name == "offline"]
    assert info.distribution == "featurizer-offline"
    assert "featurizer_register_emitters" in info.hooks and "featurizer_before_run" in info.hooks
    spec = plugins.emitters()["offline"]
    assert spec.emitter_class is featurizer_offline.OfflineEventEmitter
    assert spec.serves("ticker") and spec.serves("any_other_stored_source")
    assert spec.exchanges == ()


def test_pace_replays_at_a_multiple_of_recorded_speed(
    recorded: tuple[Path, FeaturizerConfig, list],
) -> None:
    root, cfg, _ = recorded
    sink = CollectingSink()
    start = 1_704_067_200.0
    options = RunOptions(
        emitter="offline",
        pace=8.0,
        emitter_options={"storage": str(root), "start": start, "end": start + 4.0},
    )
    began = time.perf_counter()
    summary = run(cfg, options, sink)
    elapsed = time.perf_counter() - began
    assert summary.stopped_by == "completed" and summary.events_in > 100
    assert 0.4 <= elapsed < 5.0, elapsed
    fast = run(
        cfg,
        RunOptions(emitter="offline", emitter_options={"storage": str(root)}, max_events=500),
        CollectingSink(),
    )
    assert fast.events_in == 500


def test_stop_interrupts_a_slow_replay(recorded: tuple[Path, FeaturizerConfig, list]) -> None:
    root, cfg, _ = recorded
    from featurizer import FeatureStreamGraph, construct_features_from_configs

    graph = FeatureStreamGraph(construct_features_from_configs(cfg))
    emitter = featurizer_offline.OfflineEventEmitter.from_options(
        {"storage": str(root), "pace": 0.01}
    )
    got: list[Any] = []
    for source in graph.get_ins():
        emitter.register_callback(source, got.append)
    emitter.start()
    deadline = time.monotonic() + 30.0  # (a busy machine may take a while to the first event)
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got, "the replay emitted nothing in 30 s"
    began = time.perf_counter()
    emitter.stop()
    assert time.perf_counter() - began < 2.0
    assert emitter.wait(1.0) and emitter.failure() is None
    assert 1 <= len(got) < 50
    with pytest.raises(EmitterError, match="twice"):
        emitter.start()


def test_missing_source_fails_before_anything_is_written(
    recorded: tuple[Path, FeaturizerConfig, list], tmp_path: Path
) -> None:
    root, _, _ = recorded
    cfg = config([entry("mid", "mid_price", "DOGE-USDT")])
    out = tmp_path / "out.jsonl"
    from featurizer.cli import main

    assert (
        main(
            [
                "run",
                "--emitter",
                "offline",
                "--storage",
                str(root),
                "--out",
                str(out),
                _write(tmp_path, cfg),
            ]
        )
        == 1
    )
    assert not out.exists() and list(tmp_path.glob("*.partial")) == []
    with pytest.raises(NoDataError, match="DOGE-USDT"):
        run(
            cfg,
            RunOptions(emitter="offline", emitter_options={"storage": str(root)}),
            CollectingSink(),
        )


def _write(tmp_path: Path, cfg: FeaturizerConfig) -> str:
    import json

    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps({"feature_configs": [dict(e) for e in _entries(cfg)]}))
    return str(path)


def _entries(cfg: FeaturizerConfig) -> list[dict[str, Any]]:
    return [
        {"name": e.name, "feature_definition": e.feature_definition, "params": dict(e.params)}
        for e in cfg.feature_configs
    ]


def test_a_block_damaged_mid_replay_stops_the_run(tmp_path: Path) -> None:
    cfg = config(WINDOWED[:2])
    with Storage(tmp_path / "root") as storage:
        record(
            cfg,
            RunOptions(emitter="synthetic", max_events=3_000, seed=1),
            storage,
            compactor=MemoryBasedCompactor(max_block_bytes=5_000),
        )
        source = next(s for s in storage.series() if s.kind == "data_source")
        blocks = storage.catalog.blocks(source.key)
        path = storage.root / blocks[len(blocks) // 2].path
        data = bytearray(path.read_bytes())
        data[-20] ^= 1
        path.write_bytes(bytes(data))
    sink = CollectingSink()
    with pytest.raises(CorruptBlockError, match="checksum mismatch") as error:
        run(
            cfg,
            RunOptions(emitter="offline", emitter_options={"storage": str(tmp_path / "root")}),
            sink,
        )
    assert error.value.path == str(path)


def test_holes_are_warned_about_and_never_filled(tmp_path: Path) -> None:
    cfg = config(WINDOWED[:1])
    later = 1_704_070_000.0
    live_rows = []
    with Storage(tmp_path) as storage:
        for start_time in (None, later):
            live = CollectingSink()
            record(
                cfg,
                RunOptions(
                    emitter="synthetic",
                    max_events=300,
                    seed=2,
                    emitter_options={"start_time": start_time},
                ),
                storage,
                sink=live,
            )
            live_rows.extend(live.rows)
        first, second = storage.catalog.sessions()
        with pytest.warns(DataHoleWarning, match="not recorded") as caught:
            generator = OfflineFeatureStreamGenerator(cfg, storage)
        assert f"between sessions {first.id} and {second.id}" in str(caught[0].message)
        (hole,) = generator.holes
        assert (hole.start, hole.end) == (first.last_ts, second.first_ts)
        rows = list(generator.rows())
        assert not [r for r in rows if first.last_ts < r["timestamp"] < second.first_ts]
        assert_bit_identical(rows, live_rows, "two sessions around a hole")


# progress ---------------------------------------------------------------------------------


def test_progress_line_on_terminals_and_logs() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    now = [0.0]
    tty = Tty()
    bar = Progress(1_000_000, tty, clock=lambda: now[0])
    bar.update(10)
    assert tty.getvalue() == ""
    now[0] = 10.0
    bar.update(250_000)
    assert tty.getvalue().startswith("\rreplayed 250,000 events (25.0%)  25,000 events/s  ETA 0:30")
    now[0] = 10.1
    bar.update(260_000)
    assert tty.getvalue().count("\r") == 1
    bar.finish(1_000_000)
    assert tty.getvalue().endswith("\n")
    log = io.StringIO()
    quiet = Progress(0, log, clock=lambda: now[0])
    now[0] = 100.0
    quiet.update(5)
    assert log.getvalue() == ""
    forced = Progress(0, log, enabled=True, clock=lambda: now[0])
    now[0] = 200.0
    forced.update(5)
    assert log.getvalue() == "replayed 5 events  0 events/s\n"


def test_record_cli_stores_what_is_selected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from featurizer.cli import main

    cfg_path = _write(tmp_path, config(WINDOWED[:2]))
    assert (
        main(
            [
                "record",
                cfg_path,
                "--storage",
                str(tmp_path / "s"),
                "--max-events",
                "500",
                "--store",
                "vol",
                "--store",
                "data_sources",
                "--compactor",
                "time",
                "--bucket",
                "1s",
                "--sync-interval",
                "10ms",
            ]
        )
        == 0
    )
    with Storage.open(tmp_path / "s") as storage:
        names = sorted(s.name for s in storage.series())
        assert names == ["ticker.synthetic.BTC-USDT", "vol"]
        assert len(storage.catalog.blocks(storage.find_series("vol").key)) >= 4
    assert (
        main(
            [
                "record",
                cfg_path,
                "--storage",
                str(tmp_path / "t"),
                "--max-events",
                "5",
                "--store",
                "nothing_like_this",
            ]
        )
        == 1
    )
    assert "features_to_store[0]" in capsys.readouterr().err


def test_threads_are_not_left_behind(recorded: tuple[Path, FeaturizerConfig, list]) -> None:
    root, cfg, _ = recorded
    before = threading.active_count()
    generator = OfflineFeatureStreamGenerator(cfg, root)
    generator.next()
    generator.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before
