"""The property that matters: features replayed offline from recorded data sources equal the
features recorded live, bit for bit, through the same graph code path."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurizer import FeatureStreamGraph, FeaturizerConfig, construct_features_from_configs
from featurizer._runner import RunOptions, run
from featurizer._sinks import flatten_grouped
from featurizer.cli import main
from featurizer.offline import OfflineFeatureStreamGenerator
from featurizer.storage import MemoryBasedCompactor, Storage, TimeBasedCompactor, record
from featurizer.testing import CollectingSink
from tests.storage.storage_support import SYMBOLS, assert_bit_identical, config, entry

featurizer_synthetic = pytest.importorskip("featurizer_synthetic")

_WINDOWS = st.sampled_from(["1s", "5s", "30s"])


_MENU = ("mid", "spread", "vol", "tvi", "vwap", "ohlcv", "book", "obi", "midl2")


def _menu_entry(draw: st.DrawFn, name: str, symbol: str) -> dict[str, Any]:
    tag = f"{name}_{symbol.split('-', maxsplit=1)[0].lower()}"
    if name == "mid":
        return entry(tag, "mid_price", symbol)
    if name == "spread":
        return entry(tag, "relative_spread", symbol)
    if name == "vol":
        return entry(tag, "volatility", symbol, window=draw(_WINDOWS))
    if name == "tvi":
        return entry(tag, "trade_volume_imbalance", symbol, window=draw(_WINDOWS))
    if name == "vwap":
        return entry(tag, "vwap", symbol, window=draw(_WINDOWS))
    if name == "ohlcv":
        return entry(tag, "ohlcv", symbol, interval=draw(st.sampled_from(["2s", "10s"])))
    if name == "book":
        return entry(tag, "l2_snapshot", symbol, depth=draw(st.sampled_from([1, 3])))
    if name == "obi":
        return entry(tag, "order_book_imbalance", symbol, depth=2)
    return entry(tag, "mid_price_l2", symbol)


@st.composite
def feature_entries(draw: st.DrawFn) -> list[dict[str, Any]]:
    symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=2, unique=True))
    entries: list[dict[str, Any]] = []
    for symbol in symbols:
        chosen = draw(st.lists(st.sampled_from(_MENU), min_size=1, max_size=4, unique=True))
        entries.extend(_menu_entry(draw, name, symbol) for name in chosen)
    return entries


def _live_source_events(cfg: FeaturizerConfig, seed: int, max_events: int) -> dict[str, list]:
    """The data-source events the synthetic emitter produces for this config (regenerated)."""
    graph = FeatureStreamGraph(construct_features_from_configs(cfg))
    emitter = featurizer_synthetic.SyntheticEventEmitter.from_options(
        {"seed": seed, "max_events": max_events}
    )
    got: dict[str, list] = {}
    for source in graph.get_ins():
        emitter.register_callback(source, got.setdefault(source.key, []).append)
    emitter.run()
    return got


def check_kappa(
    cfg: FeaturizerConfig, seed: int, max_events: int, compactor: Any, store_every_node: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        live = CollectingSink()
        outputs = construct_features_from_configs(cfg)
        graph = FeatureStreamGraph(outputs)
        selectors = [node.key for node in graph.nodes()] if store_every_node else None
        with Storage(root) as storage:
            summary = record(
                cfg,
                RunOptions(emitter="synthetic", max_events=max_events, seed=seed),
                storage,
                sink=live,
                compactor=compactor,
                sync_interval=0.02,
                features_to_store=selectors,
            )
            assert summary.run.events_in == max_events
            stored = graph.nodes() if store_every_node else [*graph.get_ins(), *graph.get_outs()]
            assert sorted(summary.series) == sorted({f.name for f in stored})
            # 1. the data sources were stored exactly as emitted
            regenerated = _live_source_events(cfg, seed, max_events)
            for source in graph.get_ins():
                assert_bit_identical(
                    storage.read_events(source), regenerated[source.key], f"source {source.name}"
                )
            # 2. replay through OfflineFeatureStreamGenerator; every stored feature equal
            generator = OfflineFeatureStreamGenerator(cfg, storage)
            replayed: dict[str, list] = {}
            for node in stored:
                if not node.is_data_source:
                    generator.set_callback(
                        node, lambda f, e: replayed.setdefault(f.key, []).append(e)
                    )
            rows = [flatten_grouped(grouped) for grouped in generator]
            assert generator.events_in == max_events
            for node in stored:
                if not node.is_data_source:
                    assert_bit_identical(
                        replayed.get(node.key, []),
                        storage.read_events(node),
                        f"feature {node.name}",
                    )
            # 3. the combined vectors equal the live ones
            assert_bit_identical(rows, live.rows, "generator rows vs live rows")
            # 4. `featurizer run --emitter offline`: the live runner, same rows
            offline = CollectingSink()
            run(cfg, RunOptions(emitter="offline", emitter_options={"storage": str(root)}), offline)
            assert_bit_identical(offline.rows, live.rows, "offline emitter rows vs live rows")
            assert storage.verify().ok


@settings(max_examples=12, deadline=None)
@given(
    entries=feature_entries(),
    seed=st.integers(0, 10_000),
    max_events=st.integers(50, 2_500),
    compactor=st.one_of(
        st.builds(MemoryBasedCompactor, max_block_bytes=st.sampled_from([3_000, 30_000, 10**7])),
        st.builds(
            TimeBasedCompactor,
            bucket=st.sampled_from([0.5, 3.0, 3600.0]),
            max_block_bytes=st.sampled_from([5_000, 10**7]),
        ),
    ),
    store_every_node=st.booleans(),
)
def test_replayed_features_equal_live_recorded_ones(
    entries: list[dict[str, Any]],
    seed: int,
    max_events: int,
    compactor: Any,
    store_every_node: bool,
) -> None:
    check_kappa(config(entries), seed, max_events, compactor, store_every_node)


def test_quickstart_config_bit_for_bit() -> None:
    cfg = FeaturizerConfig.from_yaml(Path(__file__).parents[2] / "examples" / "quickstart.yaml")
    check_kappa(
        cfg,
        seed=11,
        max_events=6_000,
        compactor=MemoryBasedCompactor(max_block_bytes=50_000),
        store_every_node=True,
    )


def test_cli_record_replay_and_run_offline_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path = tmp_path / "features.yaml"
    cfg_path.write_text(
        json.dumps(
            {
                "feature_configs": [
                    entry("mid", "mid_price", "BTC-USDT"),
                    entry("vol", "volatility", "BTC-USDT", window="5s"),
                    entry("tvi", "trade_volume_imbalance", "BTC-USDT", window="5s"),
                ],
                "storage": {"root": "data", "compactor": "time", "bucket": "10s"},
            }
        )
    )
    live = tmp_path / "live.jsonl"
    assert (
        main(["record", str(cfg_path), "--max-events", "3000", "--seed", "5", "--out", str(live)])
        == 0
    )
    err = capsys.readouterr().err
    assert "recorded" in err and "bytes/event" in err
    assert (tmp_path / "data" / "catalog.sqlite").is_file()
    replayed = tmp_path / "replayed.jsonl"
    assert main(["replay", str(cfg_path), "--out", str(replayed), "--no-progress"]) == 0
    offline = tmp_path / "offline.jsonl"
    assert main(["run", str(cfg_path), "--emitter", "offline", "--out", str(offline)]) == 0
    assert live.read_bytes() == replayed.read_bytes() == offline.read_bytes()
    assert main(["storage", "ls", "--config", str(cfg_path)]) == 0
    out = capsys.readouterr().out
    assert "ticker.synthetic.BTC-USDT" in out and "vol" in out
    assert main(["storage", "info", "vol", "--config", str(cfg_path), "--blocks"]) == 0
    out = capsys.readouterr().out
    assert "definition: volatility" in out and "block " in out
    parquet = tmp_path / "replayed.parquet"
    assert (
        main(
            [
                "replay",
                str(cfg_path),
                "--out",
                str(parquet),
                "--start",
                "2024-01-01T00:00:10Z",
                "--end",
                "2024-01-01T00:00:20Z",
            ]
        )
        == 0
    )
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    times = table.column("timestamp").to_pylist()
    assert times and min(times) >= 1_704_067_210.0 and max(times) < 1_704_067_220.0
    rows = [json.loads(line) for line in live.read_text().splitlines()]
    expected = [r for r in rows if 1_704_067_210.0 <= r["timestamp"] < 1_704_067_220.0]
    assert table.to_pylist() == expected
