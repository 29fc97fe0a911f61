"""The real cryptofeed client against the fake Binance exchange on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from featurizer_cryptofeed import CryptofeedEventEmitter
from featurizer_features.l2_snapshot import L2Book

from featurizer import EmitterError, Event
from tests.cryptofeed.fake_binance import FakeBinance, generate_script, wait_until
from tests.cryptofeed.support import (
    books_settled,
    client_sockets,
    expected_sizes,
    expected_ticker,
    expected_trade,
    rebuild_book,
    source,
    subscribe,
    without,
)

SYMBOLS = ("BTC-USDT", "ETH-USDT")
CHANNELS = ("ticker", "trades", "l2_book")
Start = Callable[..., FakeBinance]
Make = Callable[..., CryptofeedEventEmitter]


def run_script(
    fake: FakeBinance,
    emitter: CryptofeedEventEmitter,
    received: dict[tuple[str, str], list[Event]],
) -> None:
    """Start the emitter, wait for the script to finish and every sent message to arrive
    (every trade and ticker, and the books' final state)."""
    emitter.start()
    assert fake.wait_finished(30), f"the script did not finish (sent {len(fake.sent)} steps)"
    books = books_settled(fake, received, {s for c, s in received if c == "l2_book"})

    def delivered() -> bool:
        for (channel, symbol), events in received.items():
            kind = {"ticker": "ticker", "trades": "trade"}.get(channel)
            if kind is not None and len(events) < len(fake.sent_of(kind, symbol)):
                return False
        return books()

    assert wait_until(delivered, 15), {k: len(v) for k, v in received.items()}
    time.sleep(0.05)  # a late duplicate would show up as a count mismatch
    time.sleep(0.05)  # a late extra event would show up as a count mismatch


def assert_trades_and_tickers_exact(
    fake: FakeBinance, received: dict[tuple[str, str], list[Event]]
) -> None:
    for symbol in SYMBOLS:
        trades = received[("trades", symbol)]
        assert [without(e, "receipt_timestamp") for e in trades] == [
            expected_trade(s) for s in fake.sent_of("trade", symbol)
        ]
        tickers = received[("ticker", symbol)]
        assert [without(e, "timestamp", "receipt_timestamp") for e in tickers] == [
            expected_ticker(s) for s in fake.sent_of("ticker", symbol)
        ]
        for event in trades + tickers:
            assert type(event["receipt_timestamp"]) is float
            assert abs(event["receipt_timestamp"] - time.time()) < 60
        for event in tickers:  # Binance's spot ticker carries no exchange time
            assert event["timestamp"] == event["receipt_timestamp"]
        sized = received.get(("book_ticker", symbol))
        if sized is not None:  # the same quotes, with the sizes
            assert [without(e, "bid_size", "ask_size") for e in sized] == tickers
            assert [(e["bid_size"], e["ask_size"]) for e in sized] == [
                expected_sizes(s) for s in fake.sent_of("ticker", symbol)
            ]


def assert_books_match_server(
    fake: FakeBinance, received: dict[tuple[str, str], list[Event]]
) -> None:
    for symbol in SYMBOLS:
        events = received[("l2_book", symbol)]
        assert events[0]["is_snapshot"], "a book stream starts with a snapshot"
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        assert rebuild_book(events) == fake.book(symbol)
        # the standard L2 snapshot feature, fed our events, ends on the server's top levels
        l2 = L2Book(depth=5)
        outputs = [out for out in map(l2.update, events) if out is not None]
        server = fake.book(symbol)
        assert outputs[-1]["bids"] == tuple(sorted(server["bids"].items(), reverse=True)[:5])
        assert outputs[-1]["asks"] == tuple(sorted(server["asks"].items())[:5])


def test_every_trade_and_ticker_arrives_once_with_its_values_and_the_book_matches(
    fake_exchange: Start, make_emitter: Make
) -> None:
    fake = fake_exchange(generate_script(7, SYMBOLS, 800))
    emitter = make_emitter(fake.emitter_options(cryptofeed_validate=True))
    received = subscribe(emitter, (*CHANNELS, "book_ticker"), SYMBOLS)
    run_script(fake, emitter, received)

    assert_trades_and_tickers_exact(fake, received)
    assert_books_match_server(fake, received)
    assert fake.lockstep_timeouts == []
    assert [symbol for symbol, _, _ in fake.snapshots] == list(SYMBOLS)
    stats = emitter.stats()
    assert (stats.gaps, stats.reconnects, stats.malformed_messages, stats.callback_errors) == (
        0,
        0,
        0,
        0,
    )
    assert stats.exchange("BINANCE").connects == 1
    assert stats.events == sum(len(v) for v in received.values())
    trades = stats.stream("BINANCE", "BTC-USDT", "trades")
    assert trades.events == len(received[("trades", "BTC-USDT")])
    # the script's exchange times are from 2023: the lag is their age
    assert trades.lag_last is not None and trades.lag_last > 3600
    assert emitter.failure() is None


def test_each_callback_receives_exactly_its_own_stream(
    fake_exchange: Start, make_emitter: Make
) -> None:
    """Regression: an earlier design sent every channel's events to the last callback."""
    symbols = ("BTC-USDT", "ETH-USDT", "SOL-USDT")
    fake = fake_exchange(generate_script(11, symbols, 600))
    emitter = make_emitter(fake.emitter_options())
    received = subscribe(emitter, CHANNELS, symbols)
    emitter.start()
    assert fake.wait_finished(30)
    assert wait_until(
        lambda: all(
            len(received[(c, s)]) >= len(fake.sent_of(k, s))
            for c, k in (("ticker", "ticker"), ("trades", "trade"))
            for s in symbols
        ),
        15,
    )
    assert wait_until(books_settled(fake, received, symbols), 15)
    time.sleep(0.05)
    fields = {
        "ticker": {"bid", "ask"},
        "trades": {"price", "amount", "side", "trade_id"},
        "l2_book": {"bids", "asks", "sequence", "is_snapshot", "gap"},
    }
    for (channel, symbol), events in received.items():
        assert events, (channel, symbol)
        for event in events:
            assert set(event) == {"timestamp", "receipt_timestamp", *fields[channel]}
        if channel == "trades":
            ids = {str(s.step.data["a"]) for s in fake.sent_of("trade", symbol)}
            assert [e["trade_id"] for e in events] == [
                str(s.step.data["a"]) for s in fake.sent_of("trade", symbol)
            ]
            assert {e["trade_id"] for e in events} <= ids
        elif channel == "ticker":
            assert len(events) == len(fake.sent_of("ticker", symbol))
            assert [e["bid"] for e in events] == [
                float(s.step.data["b"]) for s in fake.sent_of("ticker", symbol)
            ]
        else:
            assert rebuild_book(events) == fake.book(symbol)
    # prices of different symbols are far apart: no event crossed into another symbol's stream
    assert max(e["price"] for e in received[("trades", "SOL-USDT")]) < min(
        e["price"] for e in received[("trades", "ETH-USDT")]
    )


def test_two_callbacks_on_one_stream_each_get_every_event(
    fake_exchange: Start, make_emitter: Make
) -> None:
    fake = fake_exchange(generate_script(3, ("BTC-USDT",), 200))
    emitter = make_emitter(fake.emitter_options())
    first: list[Event] = []
    second: list[Event] = []
    emitter.register_callback(source("trades", "BTC-USDT"), first.append)
    emitter.register_callback(source("trades", "BTC-USDT"), second.append)
    emitter.start()
    assert fake.wait_finished(30)
    sent = fake.sent_of("trade", "BTC-USDT")
    assert wait_until(lambda: len(second) >= len(sent), 15)
    assert first == second
    assert [e["trade_id"] for e in first] == [str(s.step.data["a"]) for s in sent]


def test_a_sequence_gap_gives_gap_markers_and_then_a_correct_book(
    fake_exchange: Start, make_emitter: Make
) -> None:
    fake = fake_exchange(generate_script(5, SYMBOLS, 600, specials={300: ("gap", "BTC-USDT")}))
    emitter = make_emitter(fake.emitter_options())
    received = subscribe(emitter, (*CHANNELS, "feed_gaps"), SYMBOLS)
    run_script(fake, emitter, received)

    assert fake.lockstep_timeouts == []
    for symbol in SYMBOLS:  # cryptofeed resets every book of the feed
        events = received[("l2_book", symbol)]
        markers = [i for i, e in enumerate(events) if e["gap"]]
        assert len(markers) == 1, symbol
        marker = events[markers[0]]
        assert (marker["bids"], marker["asks"], marker["is_snapshot"]) == ((), (), False)
        assert events[markers[0] + 1]["is_snapshot"], "the book is rebuilt from a new snapshot"
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        assert rebuild_book(events) == fake.book(symbol)
        assert [(e["channel"], e["reason"]) for e in received[("feed_gaps", symbol)]] == [
            ("l2_book", "book_reset")
        ]
    assert_trades_and_tickers_exact(fake, received)
    stats = emitter.stats()
    assert stats.exchange("BINANCE").book_resets == 1
    assert (stats.reconnects, stats.malformed_messages) == (0, 0)
    assert stats.stream("BINANCE", "BTC-USDT", "l2_book").gaps == 1
    assert stats.stream("BINANCE", "BTC-USDT", "trades").gaps == 0
    assert len(fake.snapshots) == 4  # one per symbol at the start, one per symbol after the reset


def test_frames_of_streams_nobody_subscribed_to_are_counted_and_dropped(
    fake_exchange: Start, make_emitter: Make
) -> None:
    specials = {
        100: ("foreign_depth", "ETH-USDT"),
        200: ("foreign_depth", "ETH-USDT"),
        250: ("foreign_trade", "ETH-USDT"),
        300: ("foreign_depth", "ETH-USDT"),
    }
    fake = fake_exchange(generate_script(7, SYMBOLS, 400, specials=specials))
    emitter = make_emitter(fake.emitter_options())
    received = subscribe(emitter, (*CHANNELS, "feed_gaps"), ("BTC-USDT",))
    run_script(fake, emitter, received)

    events = received[("l2_book", "BTC-USDT")]
    assert not any(e["gap"] for e in events), "no book was reset"
    assert [e["is_snapshot"] for e in events].count(True) == 1
    assert rebuild_book(events) == fake.book("BTC-USDT")
    assert received[("feed_gaps", "BTC-USDT")] == []
    assert [e["trade_id"] for e in received[("trades", "BTC-USDT")]] == [
        str(s.step.data["a"]) for s in fake.sent_of("trade", "BTC-USDT")
    ]
    stats = emitter.stats()
    exchange = stats.exchange("BINANCE")
    assert (exchange.unsubscribed_messages, exchange.book_resets) == (4, 0)
    assert (stats.gaps, stats.malformed_messages) == (0, 0)
    assert [symbol for symbol, _, _ in fake.snapshots] == ["BTC-USDT"]


@pytest.mark.parametrize("mode", ["close", "abort"])
def test_a_dropped_connection_gives_gaps_on_every_stream_and_then_a_correct_book(
    fake_exchange: Start, make_emitter: Make, mode: str
) -> None:
    fake = fake_exchange(generate_script(9, SYMBOLS, 500, specials={250: ("disconnect", mode)}))
    emitter = make_emitter(fake.emitter_options())
    received = subscribe(emitter, (*CHANNELS, "feed_gaps"), SYMBOLS)
    run_script(fake, emitter, received)

    assert fake.connections == 2
    stats = emitter.stats()
    exchange = stats.exchange("BINANCE")
    assert (exchange.connects, exchange.reconnects, exchange.disconnects) == (2, 1, 1)
    for symbol in SYMBOLS:
        events = received[("l2_book", symbol)]
        markers = [i for i, e in enumerate(events) if e["gap"]]
        assert len(markers) == 1
        assert events[markers[0] + 1]["is_snapshot"]
        assert rebuild_book(events) == fake.book(symbol)
        gaps = received[("feed_gaps", symbol)]
        assert sorted(e["channel"] for e in gaps) == ["l2_book", "ticker", "trades"]
        assert {e["reason"] for e in gaps} == {"disconnect"}
        for channel in CHANNELS:
            assert stats.stream("BINANCE", symbol, channel).gaps == 1
    if mode == "close":  # a clean close loses nothing that was sent
        assert_trades_and_tickers_exact(fake, received)
    else:  # an aborted socket may lose what was in flight, never duplicate or alter it
        for symbol in SYMBOLS:
            expected = [expected_trade(s) for s in fake.sent_of("trade", symbol)]
            got = [without(e, "receipt_timestamp") for e in received[("trades", symbol)]]
            assert all(event in expected for event in got)
            assert len({e["trade_id"] for e in got}) == len(got)


def test_malformed_messages_are_counted_dropped_and_lose_no_other_stream(
    fake_exchange: Start, make_emitter: Make
) -> None:
    specials = {
        100: ("bad_trade", "BTC-USDT"),  # a price cryptofeed cannot parse
        200: ("nan_trade", "ETH-USDT"),  # parses, but is not a finite float
        300: ("bad_depth", "BTC-USDT"),  # fails half-way through a book update
        400: ("garbage",),  # not JSON: nobody knows whose message it was
    }
    fake = fake_exchange(generate_script(13, SYMBOLS, 600, specials=specials))
    emitter = make_emitter(fake.emitter_options())
    received = subscribe(emitter, (*CHANNELS, "feed_gaps"), SYMBOLS)
    run_script(fake, emitter, received)

    assert fake.lockstep_timeouts == []
    stats = emitter.stats()
    assert stats.malformed_messages == 4
    assert (stats.reconnects, fake.connections) == (0, 1), "the connection stayed up"
    assert_trades_and_tickers_exact(fake, received)  # bad trades are not among "trade" steps
    btc_gaps = [(e["channel"], e["reason"]) for e in received[("feed_gaps", "BTC-USDT")]]
    eth_gaps = [(e["channel"], e["reason"]) for e in received[("feed_gaps", "ETH-USDT")]]
    # bad trade; bad depth; garbage: every book reset and every other stream marked
    assert btc_gaps == [
        ("trades", "malformed_message"),
        ("l2_book", "malformed_message"),
        ("l2_book", "malformed_message"),
        ("ticker", "malformed_message"),
        ("trades", "malformed_message"),
    ]
    assert eth_gaps == [
        ("trades", "malformed_message"),
        ("l2_book", "malformed_message"),
        ("ticker", "malformed_message"),
        ("trades", "malformed_message"),
    ]
    for symbol in SYMBOLS:
        events = received[("l2_book", symbol)]
        markers = [i for i, e in enumerate(events) if e["gap"]]
        assert all(events[i + 1]["is_snapshot"] for i in markers)
        assert rebuild_book(events) == fake.book(symbol)
    assert len([e for e in received[("l2_book", "BTC-USDT")] if e["gap"]]) == 2
    assert len([e for e in received[("l2_book", "ETH-USDT")] if e["gap"]]) == 1


def test_a_raising_callback_is_counted_and_the_feed_goes_on(
    fake_exchange: Start, make_emitter: Make
) -> None:
    fake = fake_exchange(generate_script(17, SYMBOLS, 600))
    emitter = make_emitter(fake.emitter_options())
    calls: list[Event] = []

    def flaky(event: Event) -> None:
        calls.append(event)
        if len(calls) % 2 == 1:
            raise ZeroDivisionError(f"feature bug #{len(calls)}")

    emitter.register_callback(source("ticker", "BTC-USDT"), flaky)
    received = subscribe(emitter, ("trades", "l2_book"), SYMBOLS)
    received.update(subscribe(emitter, ("ticker",), ("ETH-USDT",)))
    emitter.start()
    assert fake.wait_finished(30)
    tickers = fake.sent_of("ticker", "BTC-USDT")
    assert wait_until(lambda: len(calls) >= len(tickers), 15)
    assert wait_until(
        lambda: all(len(received[("trades", s)]) >= len(fake.sent_of("trade", s)) for s in SYMBOLS),
        15,
    )
    assert wait_until(books_settled(fake, received, SYMBOLS), 15)

    assert [e["bid"] for e in calls] == [float(s.step.data["b"]) for s in tickers]
    stats = emitter.stats()
    assert stats.stream("BINANCE", "BTC-USDT", "ticker").callback_errors == (len(tickers) + 1) // 2
    assert stats.callback_errors == (len(tickers) + 1) // 2
    assert (stats.reconnects, stats.gaps, fake.connections) == (0, 0, 1)
    failure = emitter.failure()
    assert isinstance(failure, ZeroDivisionError) and str(failure) == "feature bug #1"
    for symbol in SYMBOLS:
        assert [e["trade_id"] for e in received[("trades", symbol)]] == [
            str(s.step.data["a"]) for s in fake.sent_of("trade", symbol)
        ]
        assert rebuild_book(received[("l2_book", symbol)]) == fake.book(symbol)
        assert not any(e["gap"] for e in received[("l2_book", symbol)])


def test_stop_is_prompt_idempotent_and_leaves_no_thread(
    fake_exchange: Start, make_emitter: Make, no_thread_left: Callable[[], set[threading.Thread]]
) -> None:
    fake = fake_exchange(generate_script(19, SYMBOLS, 300))
    emitter = make_emitter(fake.emitter_options())
    received = subscribe(emitter, CHANNELS, SYMBOLS)
    emitter.start()
    assert fake.wait_finished(30)
    assert wait_until(lambda: emitter.stats().events > 0 and emitter.running, 10)
    assert not emitter.wait(0.01), "a live feed does not end by itself"
    started = time.monotonic()
    emitter.stop()
    assert time.monotonic() - started < 5
    assert not emitter.running
    assert emitter.wait(0)
    emitter.stop()
    assert no_thread_left() == set()
    assert client_sockets((fake.ws_port, fake.http_port)) == []
    count = sum(len(v) for v in received.values())
    time.sleep(0.1)
    assert sum(len(v) for v in received.values()) == count, "nothing arrives after stop()"
    with pytest.raises(EmitterError, match="start\\(\\) called twice"):
        emitter.start()
    with pytest.raises(EmitterError, match="after start"):
        emitter.register_callback(source("ticker", "BTC-USDT"), print)


def test_stop_from_a_callback_and_before_start(
    fake_exchange: Start, make_emitter: Make, no_thread_left: Callable[[], set[threading.Thread]]
) -> None:
    fake = fake_exchange(generate_script(23, SYMBOLS, 300))
    idle = make_emitter(fake.emitter_options())
    idle.register_callback(source("ticker", "BTC-USDT"), print)
    idle.stop()
    idle.start()  # after stop(): does nothing, counts as finished
    assert idle.wait(0) and not idle.running

    emitter = make_emitter(fake.emitter_options())
    seen: list[Event] = []

    def stop_on_third(event: Event) -> None:
        seen.append(event)
        if len(seen) == 3:
            emitter.stop()

    emitter.register_callback(source("trades", "BTC-USDT"), stop_on_third)
    emitter.start()
    assert emitter.wait(5), "stop() from a callback ends the feed thread"
    assert 3 <= len(seen) < len(fake.sent_of("trade", "BTC-USDT")) + 1
    emitter.stop()
    assert no_thread_left() == set()


def test_stop_while_the_exchange_is_unreachable_is_prompt(
    make_emitter: Make, fake_exchange: Start, no_thread_left: Callable[[], set[threading.Thread]]
) -> None:
    """The feed is sleeping between reconnection attempts: stop() does not wait them out."""
    fake = fake_exchange(generate_script(29, SYMBOLS, 50))
    closed_port = _closed_port()
    options = fake.emitter_options(cryptofeed_retries=-1)
    options["cryptofeed_endpoints"]["BINANCE"]["websocket"] = f"wss://127.0.0.1:{closed_port}"
    emitter = make_emitter(options)
    emitter.register_callback(source("trades", "BTC-USDT"), print)
    emitter.start()
    # first attempt refused; the feed is now in cryptofeed's back-off sleep
    assert wait_until(lambda: emitter.stats().exchange("BINANCE").connect_failures >= 1, 10)
    started = time.monotonic()
    emitter.stop()
    assert time.monotonic() - started < 5
    # never reached: a failure, though stopped before the connect timeout
    assert "could not connect to BINANCE" in str(emitter.failure())
    assert "before the emitter was stopped" in str(emitter.failure())
    assert emitter.stats().exchange("BINANCE").connects == 0
    assert no_thread_left() == set()


def test_giving_up_after_the_retries_is_a_failure(make_emitter: Make, fake_exchange: Start) -> None:
    fake = fake_exchange(generate_script(31, SYMBOLS, 50))
    options = fake.emitter_options(cryptofeed_retries=0)
    options["cryptofeed_endpoints"]["BINANCE"]["websocket"] = f"wss://127.0.0.1:{_closed_port()}"
    emitter = make_emitter(options)
    emitter.register_callback(source("ticker", "BTC-USDT"), print)
    emitter.start()
    assert wait_until(lambda: emitter.failure() is not None, 10)
    failure = emitter.failure()
    assert isinstance(failure, EmitterError)
    assert "gave up on BINANCE" in str(failure) and "after 0 reconnection attempts" in str(failure)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_timestamps_and_lag_use_the_exchange_time(fake_exchange: Start, make_emitter: Make) -> None:
    now_ms = int(time.time() * 1000)
    fake = fake_exchange(generate_script(37, ("BTC-USDT",), 200, start_ms=now_ms, step_ms=1))
    emitter = make_emitter(fake.emitter_options())
    received = subscribe(emitter, ("trades", "l2_book"), ("BTC-USDT",))
    emitter.start()
    assert fake.wait_finished(30)
    sent = fake.sent_of("trade", "BTC-USDT")
    assert wait_until(lambda: len(received[("trades", "BTC-USDT")]) >= len(sent), 15)
    trades = received[("trades", "BTC-USDT")]
    assert [e["timestamp"] for e in trades] == [s.step.data["T"] / 1000.0 for s in sent]
    book = received[("l2_book", "BTC-USDT")]
    deltas = [e for e in book if not e["is_snapshot"]]
    depth_times = {s.step.data["E"] / 1000.0 for s in fake.sent_of("depth", "BTC-USDT")}
    assert deltas and all(e["timestamp"] in depth_times for e in deltas)
    assert book[0]["timestamp"] == book[0]["receipt_timestamp"]  # Binance snapshots carry no time
    lag = emitter.stats().stream("BINANCE", "BTC-USDT", "trades")
    assert lag.lag_max is not None and lag.lag_mean is not None and lag.lag_last is not None
    assert -1.0 < lag.lag_last <= lag.lag_max < 60.0
    assert all(e["receipt_timestamp"] >= e["timestamp"] - 1.0 for e in trades)


def test_validated_events_match_their_schemas(fake_exchange: Start, make_emitter: Make) -> None:
    from featurizer import validate_event

    fake = fake_exchange(generate_script(41, SYMBOLS, 300, specials={150: ("disconnect", "close")}))
    emitter = make_emitter(fake.emitter_options(cryptofeed_validate=True))
    received = subscribe(emitter, (*CHANNELS, "feed_gaps"), SYMBOLS)
    run_script(fake, emitter, received)
    assert emitter.stats().malformed_messages == 0
    for (channel, symbol), events in received.items():
        schema = source(channel, symbol).definition.event_schema()
        for event in events:
            validate_event(event, schema, origin=channel)
        if channel == "trades":
            assert {e["side"] for e in events} == {"buy", "sell"}


_FRESH_PROCESS = """
import pathlib, sys, tempfile, threading
from tests.cryptofeed.fake_binance import FakeBinance, generate_script
from tests.cryptofeed.support import client_sockets, subscribe
from tests.cryptofeed.tls import make_certificate
from featurizer_cryptofeed import CryptofeedEventEmitter

certificate = make_certificate(pathlib.Path(sys.argv[1]))
script = generate_script(43, ("BTC-USDT", "ETH-USDT"), 300, specials={150: ("disconnect", "close")})
with FakeBinance(script, certificate) as fake:
    before = {t.name for t in threading.enumerate()}
    emitter = CryptofeedEventEmitter.from_options(fake.emitter_options())
    received = subscribe(emitter, ("ticker", "trades", "l2_book"), ("BTC-USDT", "ETH-USDT"))
    emitter.start()
    assert fake.wait_finished(30)
    assert client_sockets((fake.ws_port, fake.http_port)) != []
    emitter.stop()
    assert client_sockets((fake.ws_port, fake.http_port)) == []
    assert emitter.stats().events > 0 and fake.connections == 2
    after = {t.name for t in threading.enumerate() if t.is_alive()}
print(sorted(after - before))
"""


def test_no_thread_outlives_the_emitter_in_a_fresh_process(tmp_path: Any) -> None:
    """Library-global threads (pycares starts one that never ends) only show in a fresh process."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_binance_us_speaks_the_same_protocol(fake_exchange: Start, make_emitter: Make) -> None:
    fake = fake_exchange(generate_script(47, ("BTC-USDT",), 200))
    options = fake.emitter_options()
    options["cryptofeed_endpoints"] = {
        "BINANCE_US": {"websocket": fake.ws_url, "rest": fake.rest_url}
    }
    emitter = make_emitter(options)
    received: dict[str, list[Event]] = {}
    for channel in CHANNELS:
        received[channel] = []
        emitter.register_callback(
            source(channel, "BTC-USDT", exchange="binance_us"), received[channel].append
        )
    emitter.start()
    assert fake.wait_finished(30)
    sent = fake.sent_of("trade", "BTC-USDT")
    assert wait_until(lambda: len(received["trades"]) >= len(sent), 15)
    assert wait_until(
        books_settled(fake, {("l2_book", "BTC-USDT"): received["l2_book"]}, ["BTC-USDT"]), 15
    )
    assert [without(e, "receipt_timestamp") for e in received["trades"]] == [
        expected_trade(s) for s in sent
    ]
    assert rebuild_book(received["l2_book"]) == fake.book("BTC-USDT")
    assert (
        emitter.stats().stream("BINANCE_US", "BTC-USDT", "ticker").events
        == len(received["ticker"])
        > 0
    )


@pytest.mark.slow
def test_soak_a_long_script_with_every_kind_of_trouble(
    fake_exchange: Start, make_emitter: Make
) -> None:
    """20,000 steps over four symbols with gaps, bad messages and disconnects sprinkled in."""
    import random

    symbols = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")
    rng = random.Random(2024)
    kinds = [
        ("gap",),
        ("bad_trade",),
        ("nan_trade",),
        ("bad_depth",),
        ("garbage",),
        ("disconnect", "close"),
    ]
    specials = {}
    for position in sorted(rng.sample(range(500, 20_000), 40)):
        kind = rng.choice(kinds)
        specials[position] = (
            kind if kind[0] in ("garbage", "disconnect") else (kind[0], rng.choice(symbols))
        )
    fake = fake_exchange(generate_script(2024, symbols, 20_000, specials=specials))
    emitter = make_emitter(fake.emitter_options(cryptofeed_validate=True))
    received = subscribe(emitter, (*CHANNELS, "feed_gaps"), symbols)
    emitter.start()
    assert fake.wait_finished(120)
    assert wait_until(books_settled(fake, received, symbols), 30)
    for symbol in symbols:
        sent = fake.sent_of("trade", symbol)
        count = len(sent)
        assert wait_until(lambda s=symbol, n=count: len(received[("trades", s)]) >= n, 30)
        assert [without(e, "receipt_timestamp") for e in received[("trades", symbol)]] == [
            expected_trade(s) for s in sent
        ]
    stats = emitter.stats()
    disconnects = sum(1 for k in specials.values() if k[0] == "disconnect")
    assert stats.exchange("BINANCE").reconnects == disconnects
    assert stats.callback_errors == 0
    assert fake.lockstep_timeouts == []
