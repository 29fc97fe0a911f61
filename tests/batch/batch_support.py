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


def config(*entries: tuple[str, str, dict[str, Any]]) -> FeaturizerConfig:
    """A config of ``(name, definition, params)`` entries on the BTC-USDT data sources."""
    return FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "name": name,
                    "feature_definition": definition,
                    "params": {**params, "data_source": SYMBOL},
                }
                for name, definition, params in entries
            ]
        }
    )


REFERENCE = config(
    ("mid", "mid_price", {}),
    ("vol", "volatility", {"window": "60s"}),
    ("tvi", "trade_volume_imbalance", {"window": "60s"}),
)


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


WINDOWED = config(
    ("mid", "mid_price", {}),
    ("spread", "relative_spread", {}),
    ("vol", "volatility", {"window": "20s"}),
    ("tvi", "trade_volume_imbalance", {"window": "20s"}),
    ("vwap", "vwap", {"window": "10s"}),
    ("bars", "ohlcv", {"interval": "5s"}),
)
