"""Long streams: the windowed features never drift from an exact recomputation.

Values change magnitude by many orders across regimes (where naive float running sums lose
all precision) and carry full 53-bit mantissas. At checkpoints the graph's latest output is
compared, bit for bit, with the reference recomputed over that moment's window only.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Iterator

import pytest
from featurizer_features import (
    VWAP,
    MidPrice,
    TickerSource,
    TradesSource,
    TradeVolumeImbalance,
    Volatility,
    reference,
)

from featurizer import Event, Feature, FeatureStreamGraph
from tests.features.features_support import feature, source

WINDOW = 30.0
#: Magnitudes of successive regimes: prices and amounts jump between them.
REGIMES = (1.0, 1e9, 1e-3, 3e15, 1e-12, 50_000.0)


def _stream(count: int, seed: int) -> Iterator[tuple[float, Event, Event]]:
    """``count`` (timestamp, ticker event, trade event) triples, deterministic for ``seed``."""
    rng = random.Random(seed)
    regime_length = max(1, count // 20)
    ts = 1_600_000_000.0
    for i in range(count):
        ts += rng.randrange(4) * 0.25
        scale = REGIMES[(i // regime_length) % len(REGIMES)]
        bid = scale * (1.0 + rng.random())
        amount = scale * rng.random() * (1e-6 if rng.random() < 0.01 else 1.0)
        tick = {
            "timestamp": ts,
            "receipt_timestamp": ts,
            "bid": bid,
            "ask": bid * 1.0001,
            "bid_size": 1.0,
            "ask_size": 1.0,
        }
        trade = {
            "timestamp": ts,
            "receipt_timestamp": ts,
            "price": bid,
            "amount": amount,
            "side": "buy" if rng.random() < 0.5 else "sell",
            "trade_id": str(i),
        }
        yield ts, tick, trade


def _window(recent: collections.deque[Event]) -> list[Event]:
    events = list(recent)
    window = reference.trailing_window(events, len(events) - 1, WINDOW)
    assert len(window) < len(events), "the kept history must reach past the window's start"
    return window


def _run(count: int, checkpoints: int) -> None:
    ticker, trades = source(TickerSource), source(TradesSource)
    vol = feature(Volatility, {"window": WINDOW}, mid=feature(MidPrice, ticker=ticker))
    tvi = feature(TradeVolumeImbalance, {"window": WINDOW}, trades=trades)
    vwap = feature(VWAP, {"window": WINDOW}, trades=trades)
    graph = FeatureStreamGraph([vol, tvi, vwap])
    latest: dict[Feature, Event] = {}
    for output in (vol, tvi, vwap):
        graph.set_callback(output, latest.__setitem__)
    on_tick, on_trade = graph.input_callback(ticker), graph.input_callback(trades)
    recent_ticks: collections.deque[Event] = collections.deque(maxlen=2000)
    recent_trades: collections.deque[Event] = collections.deque(maxlen=2000)
    every = count // checkpoints
    checked = 0
    for i, (_, tick, trade) in enumerate(_stream(count, seed=count)):
        on_tick(tick)
        on_trade(trade)
        recent_ticks.append(tick)
        recent_trades.append(trade)
        if (i + 1) % every == 0 or i + 1 == count:
            mids = [(t["bid"] + t["ask"]) / 2.0 for t in _window(recent_ticks)]
            window_trades = _window(recent_trades)
            assert latest[vol]["timestamp"] == tick["timestamp"]
            assert latest[vol]["volatility"].hex() == reference.population_stddev(mids).hex()
            assert latest[tvi]["tvi"].hex() == reference.imbalance(window_trades).hex()
            expected_vwap = reference.volume_weighted_price(window_trades)
            assert expected_vwap is not None
            assert latest[vwap]["vwap"].hex() == expected_vwap.hex()
            checked += 1
    assert checked >= checkpoints


def test_no_drift_over_a_million_events() -> None:
    _run(1_000_000, checkpoints=10)


@pytest.mark.slow
def test_no_drift_over_ten_million_events() -> None:
    _run(10_000_000, checkpoints=20)
