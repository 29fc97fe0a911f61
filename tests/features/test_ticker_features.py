"""Ticker features equal their brute-force references: mid_price, relative_spread, volatility."""

from __future__ import annotations

from featurizer_features import MidPrice, RelativeSpread, TickerSource, Volatility, reference
from hypothesis import given
from hypothesis import strategies as st

from featurizer.testing.strategies import ticker_streams
from tests.features.features_support import PROPERTY, assert_same, feature, run, source

WINDOWS = st.sampled_from([0.25, 1.0, 2.5, 60.0])
"""Multiples of 0.25 s: window edges fall exactly on generated timestamps."""


@PROPERTY
@given(ticks=ticker_streams())
def test_mid_price_matches_reference(ticks: list[dict]) -> None:
    ticker = source(TickerSource)
    mid = feature(MidPrice, ticker=ticker)
    assert_same(run([mid], ticker, ticks)[mid], reference.mid_price(ticks))


@PROPERTY
@given(ticks=ticker_streams())
def test_relative_spread_matches_reference(ticks: list[dict]) -> None:
    ticker = source(TickerSource)
    spread = feature(RelativeSpread, ticker=ticker)
    assert_same(run([spread], ticker, ticks)[spread], reference.relative_spread(ticks))


@PROPERTY
@given(ticks=ticker_streams(), window=WINDOWS)
def test_volatility_matches_reference(ticks: list[dict], window: float) -> None:
    ticker = source(TickerSource)
    vol = feature(Volatility, {"window": window}, mid=feature(MidPrice, ticker=ticker))
    expected = reference.volatility(reference.mid_price(ticks), window=window)
    assert_same(run([vol], ticker, ticks)[vol], expected)


def _tick(ts: float, bid: float, ask: float) -> dict:
    return {
        "timestamp": ts,
        "receipt_timestamp": ts,
        "bid": bid,
        "ask": ask,
        "bid_size": 1.0,
        "ask_size": 1.0,
    }


def test_relative_spread_skips_zero_mid() -> None:
    ticker = source(TickerSource)
    spread = feature(RelativeSpread, ticker=ticker)
    ticks = [_tick(1.0, -1.0, 1.0), _tick(2.0, 99.0, 101.0)]
    assert [e["relative_spread"] for e in run([spread], ticker, ticks)[spread]] == [0.02]


def test_volatility_window_edge_is_exclusive() -> None:
    ticker = source(TickerSource)
    vol = feature(Volatility, {"window": 1.0}, mid=feature(MidPrice, ticker=ticker))
    # At t=2.0 the event at t=1.0 sits exactly on the edge (2.0 - 1.0) and is out.
    ticks = [_tick(1.0, 0.0, 2.0), _tick(1.75, 2.0, 4.0), _tick(2.0, 2.0, 4.0)]
    assert [e["volatility"] for e in run([vol], ticker, ticks)[vol]] == [0.0, 1.0, 0.0]
