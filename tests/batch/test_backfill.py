"""Backfills from storage give the rows of the replay, bit for bit, and the replay's state."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from featurizer import FeaturizerConfig
from featurizer._sinks import flatten_grouped
from featurizer.batch import Backfill, backfill
from featurizer.offline import OfflineFeatureStreamGenerator
from tests.batch.batch_support import (
    REFERENCE,
    assert_rows_equal,
    features_of,
    market_events,
    replay_rows,
    store_events,
)
from tests.batch.state_support import assert_states_equal


@pytest.mark.parametrize("per", ["event", "timestamp"])
@pytest.mark.parametrize("chunk_rows", [700, 65_536])
def test_quickstart_dag_equals_the_replay(
    quickstart: tuple[Path, FeaturizerConfig], per: str, chunk_rows: int
) -> None:
    root, cfg = quickstart
    with Backfill(cfg, root, per=per, chunk_rows=chunk_rows) as job:
        names = {f.name for f in job.executor.kernel_nodes}
        table = job.table()
    assert {"mid_btc", "vol_btc", "tvi_btc", "spread_btc", "vwap_btc"} <= names
    assert {"book_btc", "obi_btc"} <= names  # the book, rebuilt from stored level lists
    assert_rows_equal(table.to_pylist(), replay_rows(cfg, root, per=per))


def test_a_sub_range_with_warm_up_equals_the_replay(
    quickstart: tuple[Path, FeaturizerConfig],
) -> None:
    root, cfg = quickstart
    full = backfill(cfg, root)
    stamps = full.column("timestamp").to_pylist()
    start, end = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    cfg = attrs.evolve(cfg, warmup=None)
    want = replay_rows(cfg, root, start=start, end=end, holes="ignore")
    with Backfill(cfg, root, start=start, end=end, holes="ignore") as job:
        got = job.table()
    assert want and got.num_rows == len(want)
    assert_rows_equal(got.to_pylist(), want)


def test_state_after_a_backfill_is_the_replays(quickstart: tuple[Path, FeaturizerConfig]) -> None:
    root, cfg = quickstart
    with Backfill(cfg, root, chunk_rows=1000) as job:
        job.table()
        states = job.states()
        kernels = job.executor.kernel_nodes
    with OfflineFeatureStreamGenerator(cfg, root) as generator:
        for _ in generator:
            pass
        for feature in kernels:
            assert_states_equal(states[feature], generator.graph.get_state(feature))
    assert any(states[f] is not None for f in kernels)


def test_reference_workload(tmp_path: Path) -> None:
    features = features_of(REFERENCE)
    store_events(tmp_path, market_events(features, 20_000, seed=11))
    got = backfill(REFERENCE, tmp_path, chunk_rows=4096)
    with OfflineFeatureStreamGenerator(REFERENCE, tmp_path) as generator:
        want = [flatten_grouped(g) for g in generator]
    assert_rows_equal(got.to_pylist(), want)
    assert got.column_names == ["timestamp", "mid.mid_price", "vol.volatility", "tvi.tvi"]


def test_to_pandas_is_one_call(windowed: tuple[Path, FeaturizerConfig]) -> None:
    pandas = pytest.importorskip("pandas")
    root, cfg = windowed
    frame = backfill(cfg, root, end=None).to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns)[:3] == ["timestamp", "mid.mid_price", "spread.relative_spread"]
    assert len(frame) > 10_000 and frame["timestamp"].is_monotonic_increasing


def test_without_kernels_the_rows_are_the_same(windowed: tuple[Path, FeaturizerConfig]) -> None:
    root, cfg = windowed
    with Backfill(cfg, root, kernels=False, chunk_rows=5000) as job:
        assert job.executor.kernel_nodes == []
        slow = job.table()
    assert slow.equals(backfill(cfg, root))


def test_a_book_rebuilt_from_its_snapshot_equals_the_replay(tmp_path: Path) -> None:
    """A start in the middle: the L2 source is read from its last snapshot before the start,
    as the replay reads it, and the book features (per event) see the same book."""
    from featurizer import FeaturizerConfig

    symbol = {"exchange": "synthetic", "symbol": "BTC-USDT"}
    cfg = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "name": "book",
                    "feature_definition": "l2_snapshot",
                    "params": {"depth": 3, "data_source": symbol},
                },
                {
                    "name": "mid",
                    "feature_definition": "mid_price",
                    "params": {"data_source": symbol},
                },
            ]
        }
    )
    events = market_events(features_of(cfg), 20_000, seed=4)
    store_events(tmp_path, events, block_bytes=60_000)
    start = events[len(events) // 2][1]["timestamp"]
    with Backfill(cfg, tmp_path, start=start, holes="ignore") as job:
        got = job.table()
        resumed = [r for r in job.replay.replay.resume if r is not None]
    assert resumed  # the book source starts at its snapshot, before the range
    assert_rows_equal(got.to_pylist(), replay_rows(cfg, tmp_path, start=start, holes="ignore"))
