"""Reference workload: framework vs a hand-written plain-Python loop, in the same process.

One symbol, about 65% ticker and 35% trade events. Outputs: mid price, population stddev of
mid over a trailing 60 s event-time window, trade volume imbalance over a trailing 60 s
window, and the combined vector on every update. Both sides compute identical values (checked
at the end) with the same exact windowed sums.

    python benchmarks/reference_workload.py --events 1000000

Prints events/s of each, their ratio, emit-to-output latency percentiles of the framework, and
a profile of where the framework's time goes.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import io
import math
import pstats
import random
import statistics
import time
from typing import Any

from featurizer import (
    Feature,
    FeatureStreamGraph,
    FeaturizerConfig,
    construct_features_from_configs,
)

CONFIG = {
    "feature_configs": [
        {
            "name": "mid",
            "feature_definition": "mid_price",
            "params": {"data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"}},
        },
        {
            "name": "vol",
            "feature_definition": "volatility",
            "params": {
                "window": "60s",
                "data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"},
            },
        },
        {
            "name": "tvi",
            "feature_definition": "trade_volume_imbalance",
            "params": {
                "window": "60s",
                "data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"},
            },
        },
    ]
}


def make_events(count: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """Deterministic ticker/trade events: ~65% tickers, ~35% trades, ~20 events/s."""
    rng = random.Random(seed)
    ts = 1_700_000_000.0
    mid = 30_000.0
    events = []
    for i in range(count):
        ts += rng.expovariate(20.0)
        if rng.random() < 0.65:
            mid += rng.choice((-0.5, 0.0, 0.5))
            spread = 0.5 * rng.randint(1, 3)
            events.append(
                (
                    "ticker",
                    {
                        "timestamp": ts,
                        "receipt_timestamp": ts + 0.001,
                        "bid": mid - spread / 2,
                        "ask": mid + spread / 2,
                        "bid_size": 1.0,
                        "ask_size": 2.0,
                    },
                )
            )
        else:
            events.append(
                (
                    "trades",
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
    return events


def plain_loop(
    events: list[tuple[str, dict[str, Any]]],
) -> tuple[int, tuple[float, float, float] | None]:
    """What a user would write by hand: one loop, exact windowed sums, combined tuple per update."""
    window = 60.0
    vol_items: collections.deque[tuple[float, int]] = collections.deque()
    vol_bits = 0
    vol_factor = 1.0
    s1 = s2 = 0
    tvi_items: collections.deque[tuple[float, int, bool]] = collections.deque()
    tvi_bits = 0
    tvi_factor = 1.0
    buy = sell = 0
    mid = vol = tvi = None
    outputs = 0
    last = None
    for kind, e in events:
        ts = e["timestamp"]
        if kind == "ticker":
            mid = (e["bid"] + e["ask"]) / 2.0
            scaled = mid * vol_factor
            value = int(scaled)
            if value != scaled:
                numerator, denominator = mid.as_integer_ratio()
                grow = denominator.bit_length() - 1 - vol_bits
                vol_items = collections.deque((t, v << grow) for t, v in vol_items)
                s1 <<= grow
                s2 <<= 2 * grow
                vol_bits += grow
                vol_factor = 2.0**vol_bits
                value = numerator
            vol_items.append((ts, value))
            s1 += value
            s2 += value * value
            horizon = ts - window
            while vol_items[0][0] <= horizon:
                old = vol_items.popleft()[1]
                s1 -= old
                s2 -= old * old
            n = len(vol_items)
            vol = math.sqrt((n * s2 - s1 * s1) / ((n * n) << (2 * vol_bits)))
        else:
            amount = e["amount"]
            scaled = amount * tvi_factor
            value = int(scaled)
            if value != scaled:
                numerator, denominator = amount.as_integer_ratio()
                grow = denominator.bit_length() - 1 - tvi_bits
                tvi_items = collections.deque((t, v << grow, b) for t, v, b in tvi_items)
                buy <<= grow
                sell <<= grow
                tvi_bits += grow
                tvi_factor = 2.0**tvi_bits
                value = numerator
            is_buy = e["side"] == "buy"
            tvi_items.append((ts, value, is_buy))
            if is_buy:
                buy += value
            else:
                sell += value
            horizon = ts - window
            while tvi_items[0][0] <= horizon:
                _, old, old_buy = tvi_items.popleft()
                if old_buy:
                    buy -= old
                else:
                    sell -= old
            total = buy + sell
            tvi = (buy - sell) / total if total else 0.0
        if mid is not None and tvi is not None:
            last = (mid, vol, tvi)
            outputs += 1
    return outputs, last


def build_graph() -> tuple[FeatureStreamGraph, dict[str, Feature], list[Any]]:
    features = construct_features_from_configs(FeaturizerConfig.from_dict(CONFIG))
    sink: list[Any] = [0, None]

    def on_combined(grouped: Any) -> None:
        sink[0] += 1
        sink[1] = grouped

    graph = FeatureStreamGraph(features, combine_outputs=True, combined_out_callback=on_combined)
    sources = {f.definition_name: f for f in graph.get_ins()}
    return graph, sources, sink


def framework(
    events: list[tuple[str, dict[str, Any]]],
) -> tuple[int, tuple[float, float, float] | None]:
    graph, sources, sink = build_graph()
    named = [(sources[kind], event) for kind, event in events]
    emit = graph.emit_named_data_event
    started = time.perf_counter()
    for item in named:
        emit(item)
    framework.elapsed = time.perf_counter() - started  # type: ignore[attr-defined]
    grouped = sink[1]
    values = (
        None
        if grouped is None
        else (grouped[0][1]["mid_price"], grouped[1][1]["volatility"], grouped[2][1]["tvi"])
    )
    return sink[0], values


def latencies(events: list[tuple[str, dict[str, Any]]], count: int) -> list[int]:
    graph, sources, _ = build_graph()
    emit = graph.emit_named_data_event
    clock = time.perf_counter_ns
    named = [(sources[kind], event) for kind, event in events[:count]]
    samples = []
    for item in named:
        t0 = clock()
        emit(item)
        samples.append(clock() - t0)
    return samples


def profile(events: list[tuple[str, dict[str, Any]]], count: int) -> str:
    graph, sources, _ = build_graph()
    named = [(sources[kind], event) for kind, event in events[:count]]
    profiler = cProfile.Profile()
    profiler.enable()
    for item in named:
        graph.emit_named_data_event(item)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(8)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    events = make_events(args.events)
    gc.disable()
    plain_times, framework_times = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        plain_out = plain_loop(events)
        plain_times.append(time.perf_counter() - started)
        framework_out = framework(events)
        framework_times.append(framework.elapsed)  # type: ignore[attr-defined]
    gc.enable()
    if plain_out != framework_out:
        raise SystemExit(f"values differ: plain {plain_out} vs framework {framework_out}")
    plain_rate = args.events / min(plain_times)
    framework_rate = args.events / min(framework_times)
    print(
        f"events: {args.events:,} (best of {args.repeats}); "
        f"outputs: {framework_out[0]:,}; values identical"
    )
    print(f"plain loop: {plain_rate:,.0f} events/s")
    print(f"framework:  {framework_rate:,.0f} events/s")
    print(f"ratio framework/plain: {framework_rate / plain_rate:.3f}")
    samples = latencies(events, min(args.events, 200_000))
    quantiles = statistics.quantiles(samples, n=100)
    print(
        f"emit-to-output latency: p50 {quantiles[49] / 1000:.2f} us, "
        f"p99 {quantiles[98] / 1000:.2f} us, max {max(samples) / 1000:.1f} us "
        "(200k events, includes timer cost)"
    )
    if not args.no_profile:
        print(profile(events, min(args.events, 200_000)))


if __name__ == "__main__":
    main()
