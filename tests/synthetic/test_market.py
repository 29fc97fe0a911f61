"""The synthetic market: determinism, schemas, time order and a consistent microstructure."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from featurizer_synthetic import (
    DEFAULT_START_TIME,
    ChannelRates,
    Instrument,
    SyntheticMarket,
)

from featurizer import validate_event
from tests.synthetic.synthetic_support import ALL_STREAMS, DEFINITIONS, SYMBOLS, BookReplica, take


def test_same_seed_same_events_and_different_seed_different_events() -> None:
    first = take(ALL_STREAMS, 5_000, seed=11)
    assert first == take(ALL_STREAMS, 5_000, seed=11)
    assert first != take(ALL_STREAMS, 5_000, seed=12)


def test_each_stream_is_independent_of_the_other_streams_generated() -> None:
    alone = take([("ticker", "BTC-USDT")], 1_000, seed=3)
    crowd = [
        pair for pair in take(ALL_STREAMS, 12_000, seed=3) if pair[0] == ("ticker", "BTC-USDT")
    ]
    assert len(crowd) >= 1_000
    assert crowd[:1_000] == alone


def test_instrument_constants_come_from_the_symbol_only() -> None:
    btc = Instrument.from_symbol("BTC-USDT")
    assert btc == Instrument.from_symbol("BTC-USDT")
    assert btc != Instrument.from_symbol("ETH-USDT")
    # Pinned: a change here changes every user's synthetic data.
    assert (btc.price_decimals, btc.size_decimals, btc.start_ticks) == (0, 5, 38480)
    assert 0.95 * 40_000 <= btc.start_price <= 1.05 * 40_000
    for symbol in (*SYMBOLS, "X", "DOGE-USD", "a-very-long-symbol-name"):
        instrument = Instrument.from_symbol(symbol)
        assert 0.05 <= instrument.start_price <= 100_000
        assert 1e-5 < instrument.tick_size / instrument.start_price <= 1e-4 * 1.0001


def test_every_event_matches_its_data_source_schema() -> None:
    for (channel, symbol), event in take(ALL_STREAMS, 5_000):
        assert symbol in SYMBOLS
        validate_event(event, DEFINITIONS[channel].event_schema(), origin=channel)
        if channel == "l2_book":
            for level in (*event["bids"], *event["asks"]):
                assert isinstance(level, tuple) and len(level) == 2
                assert all(type(value) is float for value in level)
            assert event["gap"] is False
        if channel == "trades":
            assert event["side"] in ("buy", "sell")


def test_timestamps_never_decrease_per_stream_and_merged() -> None:
    events = take(ALL_STREAMS, 5_000, start_time=1_000.0)
    assert events[0][1]["timestamp"] == 1_000.0
    times = [event["timestamp"] for _, event in events]
    assert times == sorted(times)
    last: dict[tuple[str, str], tuple[float, float]] = {}
    for stream, event in events:
        latency = event["receipt_timestamp"] - event["timestamp"]
        assert 0.0004 < latency < 0.0051
        previous = last.get(stream, (0.0, 0.0))
        assert event["timestamp"] >= previous[0]
        assert event["receipt_timestamp"] >= previous[1]
        last[stream] = (event["timestamp"], event["receipt_timestamp"])
    assert set(last) == set(ALL_STREAMS)


def test_default_start_time_is_2024_01_01_utc() -> None:
    ((_, event),) = take([("trades", "BTC-USDT")], 1)
    assert DEFAULT_START_TIME == 1_704_067_200.0
    assert DEFAULT_START_TIME < event["timestamp"] < DEFAULT_START_TIME + 10


def test_book_deltas_rebuild_the_internal_book_and_ticker_and_trades_match_it() -> None:
    market = SyntheticMarket(ALL_STREAMS, seed=5, depth=6)
    books = {symbol: BookReplica() for symbol in SYMBOLS}
    trade_ids: dict[str, int] = {}
    seen = Counter[str]()
    for (channel, symbol), event in itertools.islice(market.events(), 20_000):
        book = books[symbol]
        seen[channel] += 1
        if channel == "l2_book":
            assert event["is_snapshot"] is (book.sequence is None)
            book.apply(event)
            assert book.sides() == market.book(symbol)
            bids, asks = book.sides()
            assert len(bids) == len(asks) == 6
            assert bids[0][0] < asks[0][0]
            tick = market.instrument(symbol).tick_size
            assert round((bids[0][0] - bids[-1][0]) / tick) == 5  # consecutive ticks
            assert round((asks[-1][0] - asks[0][0]) / tick) == 5
        elif channel == "ticker":
            (bid, bid_size), (ask, ask_size) = book.best_bid(), book.best_ask()
            assert (event["bid"], event["ask"]) == (bid, ask)
            assert (event["bid_size"], event["ask_size"]) == (bid_size, ask_size)
            assert 1 <= round((ask - bid) / market.instrument(symbol).tick_size) <= 4
        else:
            if event["side"] == "buy":
                price, size = book.best_ask()
            else:
                price, size = book.best_bid()
            assert event["price"] == price
            assert 0.0 < event["amount"] <= size
            trade_id = int(event["trade_id"])
            assert trade_id == trade_ids.get(symbol, 0) + 1
            trade_ids[symbol] = trade_id
    assert seen["ticker"] > 3_000 and seen["trades"] > 1_500 and seen["l2_book"] > 9_000


def test_trades_take_whole_levels_sometimes_and_amounts_are_heavy_tailed() -> None:
    events = take([("trades", "ETH-USDT"), ("l2_book", "ETH-USDT")], 20_000, seed=2)
    amounts = sorted(e["amount"] for (channel, _), e in events if channel == "trades")
    sides = Counter(e["side"] for (channel, _), e in events if channel == "trades")
    median, p99 = amounts[len(amounts) // 2], amounts[int(0.99 * len(amounts))]
    assert p99 > 5 * median
    assert 0.4 < sides["buy"] / (sides["buy"] + sides["sell"]) < 0.6
    removals = sum(
        1
        for (channel, _), e in events
        if channel == "l2_book" and any(size == 0.0 for _, size in (*e["bids"], *e["asks"]))
    )
    assert removals > 0


def test_channel_mix_follows_the_rates() -> None:
    streams = [("ticker", "BTC-USDT"), ("trades", "BTC-USDT")]
    mix = Counter(channel for (channel, _), _ in take(streams, 20_000))
    assert 0.62 < mix["ticker"] / 20_000 < 0.68
    events = take(streams, 2_000, rates=ChannelRates(ticker=10.0, trades=10.0, l2_book=0.0))
    mix = Counter(channel for (channel, _), _ in events)
    assert 0.45 < mix["ticker"] / 2_000 < 0.55
    span = events[-1][1]["timestamp"] - events[0][1]["timestamp"]
    assert 80 < span < 120  # 2,000 events at 20 per second


def test_only_requested_streams_are_emitted() -> None:
    events = take([("trades", "ETH-USDT")], 500)
    assert {stream for stream, _ in events} == {("trades", "ETH-USDT")}
    assert SyntheticMarket([]).symbols == ()
    assert list(SyntheticMarket([]).events()) == []


def test_market_rejects_unknown_channels_and_second_iteration() -> None:
    with pytest.raises(ValueError, match=r"'ticker', 'trades', 'l2_book'.*'quotes'"):
        SyntheticMarket([("quotes", "BTC-USDT")])
    with pytest.raises(ValueError, match="depth"):
        SyntheticMarket([("ticker", "BTC-USDT")], depth=0)
    with pytest.raises(ValueError, match="both be zero"):
        ChannelRates(ticker=0.0, trades=0.0)
    with pytest.raises(ValueError, match="finite"):
        ChannelRates(l2_book=float("inf"))
    market = SyntheticMarket([("ticker", "BTC-USDT")])
    market.events()
    with pytest.raises(RuntimeError, match="once"):
        market.events()
    with pytest.raises(ValueError, match="not generated"):
        market.book("BTC-USDT")
