"""Trade features equal their brute-force references: trade_volume_imbalance, vwap, ohlcv."""

from __future__ import annotations

from featurizer_features import OHLCV, VWAP, TradesSource, TradeVolumeImbalance, reference
from hypothesis import given
from hypothesis import strategies as st

from featurizer.testing.strategies import trade_streams
from tests.features.features_support import PROPERTY, assert_same, feature, run, source

WINDOWS = st.sampled_from([0.25, 1.0, 2.5, 60.0])
"""Multiples of 0.25 s: window edges and bucket boundaries fall exactly on timestamps."""

#: Equal amounts on both sides make exactly balanced windows (imbalance 0) frequent.
BALANCED = trade_streams(amounts=st.sampled_from([0.1, 1e-30, 3e20]))


@PROPERTY
@given(trades=trade_streams() | BALANCED, window=WINDOWS)
def test_trade_volume_imbalance_matches_reference(trades: list[dict], window: float) -> None:
    src = source(TradesSource)
    tvi = feature(TradeVolumeImbalance, {"window": window}, trades=src)
    expected = reference.trade_volume_imbalance(trades, window=window)
    assert_same(run([tvi], src, trades)[tvi], expected)


@PROPERTY
@given(trades=trade_streams() | BALANCED, window=WINDOWS)
def test_vwap_matches_reference(trades: list[dict], window: float) -> None:
    src = source(TradesSource)
    vwap = feature(VWAP, {"window": window}, trades=src)
    assert_same(run([vwap], src, trades)[vwap], reference.vwap(trades, window=window))


@PROPERTY
@given(trades=trade_streams(), interval=WINDOWS)
def test_ohlcv_matches_reference(trades: list[dict], interval: float) -> None:
    src = source(TradesSource)
    bars = feature(OHLCV, {"interval": interval}, trades=src)
    assert_same(run([bars], src, trades)[bars], reference.ohlcv(trades, interval=interval))


def _trade(ts: float, price: float, amount: float, side: str = "buy") -> dict:
    return {
        "timestamp": ts,
        "receipt_timestamp": ts + 0.5,
        "price": price,
        "amount": amount,
        "side": side,
        "trade_id": str(ts),
    }


def test_ohlcv_bar_is_emitted_by_the_next_bucket_first_trade() -> None:
    src = source(TradesSource)
    bars = feature(OHLCV, {"interval": "1m"}, trades=src)
    trades = [
        _trade(60.0, 10.0, 1.0),  # bucket 60 opens exactly on its boundary
        _trade(90.0, 12.0, 1.0),
        _trade(119.75, 9.0, 2.0),
        _trade(300.0, 11.0, 1.0),  # buckets 120..240 are empty: no bars for them
        _trade(300.0, 11.5, 1.0),
    ]
    (bar,) = run([bars], src, trades)[bars]
    assert bar == {
        "timestamp": 300.0,
        "receipt_timestamp": 300.5,
        "open": 10.0,
        "high": 12.0,
        "low": 9.0,
        "close": 9.0,
        "volume": 4.0,
        "vwap": 10.0,
        "count": 3,
        "bucket_start": 60.0,
    }


def test_tvi_is_exactly_zero_when_balanced() -> None:
    src = source(TradesSource)
    tvi = feature(TradeVolumeImbalance, {"window": 10.0}, trades=src)
    trades = [_trade(0.0, 1.0, 0.1), _trade(1.0, 1.0, 0.2, "sell"), _trade(2.0, 1.0, 0.1)]
    assert [e["tvi"] for e in run([tvi], src, trades)[tvi]][-1] == 0.0


def test_vwap_emits_nothing_for_zero_volume() -> None:
    src = source(TradesSource)
    vwap = feature(VWAP, {"window": 1.0}, trades=src)
    trades = [_trade(0.0, 5.0, 0.0), _trade(0.5, 7.0, 2.0), _trade(10.0, 9.0, 0.0)]
    assert [e["vwap"] for e in run([vwap], src, trades)[vwap]] == [7.0]
