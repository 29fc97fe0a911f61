"""Helpers of the batch tests: the per-event path as the reference, event builders."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from featurizer import Feature, FeatureStreamGraph, FeaturizerConfig
from featurizer._config import construct_features_from_configs
from featurizer._sinks import flatten_grouped

SYMBOL = {"exchange": "synthetic", "symbol": "BTC-USDT"}


def config_dict(*entries: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """The config document of ``(name, definition, params)`` entries on BTC-USDT sources."""
    return {
        "feature_configs": [
            {
                "name": name,
                "feature_definition": definition,
                "params": {**params, "data_source": SYMBOL},
            }
            for name, definition, params in entries
        ]
    }


def config(*entries: tuple[str, str, dict[str, Any]]) -> FeaturizerConfig:
    """A config of ``(name, definition, params)`` entries on the BTC-USDT data sources."""
    return FeaturizerConfig.from_dict(config_dict(*entries))


REFERENCE_ENTRIES = (
    ("mid", "mid_price", {}),
    ("vol", "volatility", {"window": "60s"}),
    ("tvi", "trade_volume_imbalance", {"window": "60s"}),
)
REFERENCE = config(*REFERENCE_ENTRIES)


def features_of(cfg: FeaturizerConfig) -> list[Feature]:
    return construct_features_from_configs(cfg)


def sources_by_name(features: Sequence[Feature]) -> dict[str, Feature]:
    """``ticker``/``trades``/``l2_book`` -> data source feature."""
    return {f.definition_name: f for f in FeatureStreamGraph(features).get_ins()}


def per_event_rows(
    features: Sequence[Feature],
    events: Sequence[tuple[Feature, dict[str, Any]]],
    per: str = "event",
    graph: FeatureStreamGraph | None = None,
) -> list[dict[str, Any]]:
    """The reference: the live per-event graph's combined vectors, flattened."""
    out: list[Any] = []
    graph = graph or FeatureStreamGraph(features, combine_outputs=True)
    graph.set_combined_callback(out.append)
    for item in events:
        graph.emit_named_data_event(item)
    rows = [flatten_grouped(grouped) for grouped in out]
    if per == "timestamp":
        kept = [
            row for row, nxt in itertools.pairwise(rows) if row["timestamp"] != nxt["timestamp"]
        ]
        rows = kept + rows[-1:]
    return rows


def same(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of values (floats by their bits, NaN equal to NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def assert_rows_equal(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Same rows, same columns in the same order, values bit for bit."""
    assert len(got) == len(want), (len(got), len(want))
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert same(g, w), f"row {i} differs:\n batch     {g}\n per-event {w}"


def market_events(
    features: Sequence[Feature], count: int, seed: int = 7
) -> list[tuple[Feature, dict[str, Any]]]:
    """``count`` events of the synthetic market for the data sources of ``features``.

    Each event keeps only the fields its definition declares (so recordings match the
    schemas whatever optional fields the emitter adds).
    """
    import itertools

    from featurizer_synthetic.market import SyntheticMarket

    from featurizer._events import full_schema

    sources = FeatureStreamGraph(features).get_ins()
    by_key = {(s.definition_name, s.params["symbol"]): s for s in sources}
    market = SyntheticMarket(list(by_key), seed=seed)
    out = []
    for key, event in itertools.islice(market.events(), count):
        source = by_key[key]
        fields = full_schema(source.definition.event_schema())
        out.append((source, {name: event[name] for name in fields}))
    return out


def store_events(
    root: Any, events: Sequence[tuple[Feature, dict[str, Any]]], block_bytes: int = 200_000
) -> None:
    """Record ``events`` into a storage root through a block writer (small blocks)."""
    from featurizer.storage import MemoryBasedCompactor, Storage

    sources = list(dict.fromkeys(feature for feature, _ in events))
    with (
        Storage(root) as storage,
        storage.writer(sources, compactor=MemoryBasedCompactor(max_block_bytes=block_bytes)) as w,
    ):
        callbacks = {feature: w.event_callback(feature) for feature in sources}
        for feature, event in events:
            callbacks[feature](event)


def replay_rows(cfg: FeaturizerConfig, root: Any, **options: Any) -> list[dict[str, Any]]:
    """The rows of ``featurizer replay`` (the offline generator) over a stored range."""
    from featurizer.offline import OfflineFeatureStreamGenerator

    with OfflineFeatureStreamGenerator(cfg, root, **options) as generator:
        return list(generator.rows())


WINDOWED_DICT = config_dict(
    ("mid", "mid_price", {}),
    ("spread", "relative_spread", {}),
    ("vol", "volatility", {"window": "20s"}),
    ("tvi", "trade_volume_imbalance", {"window": "20s"}),
    ("vwap", "vwap", {"window": "10s"}),
    ("bars", "ohlcv", {"interval": "5s"}),
)
WINDOWED = FeaturizerConfig.from_dict(WINDOWED_DICT)


def reference_events(
    features: Sequence[Feature], count: int, seed: int = 7
) -> list[tuple[Feature, dict[str, Any]]]:
    """The reference workload's events (~65% ticker, ~35% trades, ~20 events/s), quickly.

    Ticker events carry exactly the fields the ticker definition declares.
    """
    import random

    sources = sources_by_name(features)
    ticker, trades = sources["ticker"], sources["trades"]
    sizes = "bid_size" in ticker.definition.event_schema()
    rng = random.Random(seed)
    ts = 1_700_000_000.0
    mid = 30_000.0
    out: list[tuple[Feature, dict[str, Any]]] = []
    for i in range(count):
        ts += rng.expovariate(20.0)
        if rng.random() < 0.65:
            mid += rng.choice((-0.5, 0.0, 0.5))
            half = 0.25 * rng.randint(1, 3)
            event = {
                "timestamp": ts,
                "receipt_timestamp": ts + 0.001,
                "bid": mid - half,
                "ask": mid + half,
            }
            if sizes:
                event.update(bid_size=1.0, ask_size=2.0)
            out.append((ticker, event))
        else:
            out.append(
                (
                    trades,
                    {
                        "timestamp": ts,
                        "receipt_timestamp": ts + 0.001,
                        "price": mid,
                        "amount": round(rng.expovariate(5.0), 6) + 1e-6,
                        "side": "buy" if rng.random() < 0.5 else "sell",
                        "trade_id": str(i),
                    },
                )
            )
    return out


def store_reference(
    root: Any, count: int, *, batch: int = 200_000, block_bytes: int = 2 * 1024 * 1024
) -> None:
    """Store ``count`` reference-workload events, generated and written ``batch`` at a time."""
    from featurizer.storage import MemoryBasedCompactor, Storage

    features = features_of(REFERENCE)
    sources = list(sources_by_name(features).values())
    compactor = MemoryBasedCompactor(max_block_bytes=block_bytes)
    with Storage(root) as storage, storage.writer(sources, compactor=compactor) as writer:
        callbacks = {feature: writer.event_callback(feature) for feature in sources}
        done = 0
        seed = 0
        ts_offset = 0.0
        while done < count:
            n = min(batch, count - done)
            events = reference_events(features, n, seed=seed)
            last = 0.0
            for feature, event in events:
                event["timestamp"] += ts_offset
                event["receipt_timestamp"] += ts_offset
                last = event["timestamp"]
                callbacks[feature](event)
            ts_offset = last - 1_700_000_000.0 + 1.0
            done += n
            seed += 1


PEAK_RSS_SCRIPT = """
import sys
from featurizer.cli import main
code = main(["backfill", sys.argv[1], "--storage", sys.argv[2], "--out", sys.argv[3],
             "--no-progress", *sys.argv[4:]])
# VmHWM: this process's own peak (ru_maxrss would include the parent's, kept over exec)
print(next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM:")))
sys.exit(code)
"""


def peak_rss_kib(config_path: Any, root: Any, out: Any, *options: str) -> int:
    """Peak RSS (KiB) of a fresh process running ``featurizer backfill`` on ``root``."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT, str(config_path), str(root), str(out), *options],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return int(done.stdout.strip().splitlines()[-1])
