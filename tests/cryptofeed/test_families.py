"""Each exchange family's real wire protocol, from 127.0.0.1, through the real cryptofeed client.

For Kraken, OKX, Deribit, Bybit, BitMEX and Coinbase a fake venue (``venues.py``) serves the
instrument list over REST and book snapshots and updates (with the venue's sequence numbers or
checksums), tickers and trades over wss. Every ticker and trade sent must arrive exactly once
with its values, the book rebuilt from the emitter's events must equal the server's, and each
fault (a book update failing the venue's check, garbage, a dropped connection) must surface as
a gap on exactly the streams of the connection it broke, with the book recovered afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from featurizer_cryptofeed import CryptofeedEventEmitter

from featurizer import Event, Feature
from tests.cryptofeed.fake_binance import wait_until
from tests.cryptofeed.fake_venue import FakeVenue, generate, price_text, size_text
from tests.cryptofeed.support import SOURCES, rebuild_book
from tests.cryptofeed.tls import SelfSignedCertificate
from tests.cryptofeed.venues import VENUES

Make = Callable[..., CryptofeedEventEmitter]


@pytest.fixture
def serve(certificate: SelfSignedCertificate) -> Iterator[Callable[..., FakeVenue]]:
    started: list[FakeVenue] = []

    def start(
        venue: Any,
        steps: int,
        specials: dict[int, tuple[Any, ...]] | None = None,
        subscribed: int | None = None,
    ) -> FakeVenue:
        books, actions = generate(11, tuple(venue.symbols), steps, specials=specials)
        fake = FakeVenue(venue, books, actions, certificate, subscribed=subscribed).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys for the venues cryptofeed subscribes to only with keys (the fakes accept any)."""
    for exchange in ("DERIBIT", "COINBASE"):
        monkeypatch.setenv(f"FEATURIZER_CRYPTOFEED_{exchange}_KEY_ID", "test-key")
        monkeypatch.setenv(f"FEATURIZER_CRYPTOFEED_{exchange}_KEY_SECRET", "test-secret")


def subscribe_all(
    emitter: CryptofeedEventEmitter, venue: Any
) -> dict[tuple[str, str], list[Event]]:
    return subscribe_all_of(emitter, venue, list(venue.symbols))


def subscribe_all_of(
    emitter: CryptofeedEventEmitter, venue: Any, symbols: list[str]
) -> dict[tuple[str, str], list[Event]]:
    received: dict[tuple[str, str], list[Event]] = {}
    channels = [*venue.channels, "feed_gaps"]
    if venue.sizes:
        channels.append("book_ticker")
    for channel in channels:
        for symbol in symbols:
            events: list[Event] = []
            feature = Feature.create(
                SOURCES[channel], {"exchange": venue.exchange, "symbol": symbol}
            )
            emitter.register_callback(feature, events.append)
            received[(channel, symbol)] = events
    return received


def run(
    fake: FakeVenue, emitter: CryptofeedEventEmitter, received: dict[tuple[str, str], list[Event]]
) -> None:
    emitter.start()
    assert fake.finished.wait(30), (len(fake.sent), fake.lockstep_timeouts, emitter.failure())

    def delivered() -> bool:
        for (channel, symbol), events in received.items():
            kind = {"ticker": "ticker", "book_ticker": "ticker", "trades": "trade"}.get(channel)
            if kind is not None and len(events) < len(fake.sent_of(kind, symbol)):
                return False
            if channel == "l2_book" and rebuild_book(list(events)) != fake.book(symbol):
                return False
        return True

    assert wait_until(delivered, 15), {k: len(v) for k, v in received.items()}
    time.sleep(0.05)  # a late duplicate would show up as a count mismatch
    assert fake.lockstep_timeouts == []
    assert emitter.failure() is None


def check_values(venue: Any, fake: FakeVenue, received: dict[tuple[str, str], list[Event]]) -> None:
    check_values_of(venue, fake, received, list(venue.symbols))


def check_values_of(
    venue: Any, fake: FakeVenue, received: dict[tuple[str, str], list[Event]], symbols: list[str]
) -> None:
    for symbol in symbols:
        trades = received[("trades", symbol)]
        sent = fake.sent_of("trade", symbol)
        assert [(e["price"], e["amount"], e["side"], e["trade_id"]) for e in trades] == [
            (
                float(price_text(s.action.values[0])),
                float(size_text(s.action.values[1])),
                s.action.values[2],
                venue.expected_trade_id(s.action),
            )
            for s in sent
        ]
        for event, s in zip(trades, sent, strict=True):
            expected = venue.expected_timestamp(s.action, "trades")
            if venue.iso_times:
                assert event["timestamp"] == pytest.approx(expected, abs=1e-6)
            else:
                assert event["timestamp"] == expected
        if "ticker" not in venue.channels:
            continue
        sent = fake.sent_of("ticker", symbol)
        for channel in ("ticker", "book_ticker") if venue.sizes else ("ticker",):
            tickers = received[(channel, symbol)]
            assert [(e["bid"], e["ask"]) for e in tickers] == [
                (float(price_text(s.action.values[0])), float(price_text(s.action.values[1])))
                for s in sent
            ]
            if channel == "book_ticker":
                assert [(e["bid_size"], e["ask_size"]) for e in tickers] == [
                    (float(size_text(s.action.values[2])), float(size_text(s.action.values[3])))
                    for s in sent
                ]
            else:
                assert all(
                    set(e) == {"timestamp", "receipt_timestamp", "bid", "ask"} for e in tickers
                )
            for event, s in zip(tickers, sent, strict=True):
                expected = venue.expected_timestamp(s.action, "ticker")
                if expected is None:
                    assert event["timestamp"] == event["receipt_timestamp"]
                elif venue.iso_times:
                    assert event["timestamp"] == pytest.approx(expected, abs=1e-6)
                else:
                    assert event["timestamp"] == expected


@pytest.mark.parametrize("venue_class", VENUES, ids=lambda v: v.exchange)
def test_every_ticker_trade_and_book_update_arrives_exactly(
    venue_class: type, serve: Callable[..., FakeVenue], make_emitter: Make
) -> None:
    venue = venue_class()
    fake = serve(venue, 300)
    emitter = make_emitter(fake.emitter_options())
    received = subscribe_all(emitter, venue)
    run(fake, emitter, received)

    check_values(venue, fake, received)
    for symbol in venue.symbols:
        events = received[("l2_book", symbol)]
        assert [e["is_snapshot"] for e in events].count(True) == 1
        assert not any(e["gap"] for e in events)
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        assert received[("feed_gaps", symbol)] == []
    stats = emitter.stats()
    assert (stats.gaps, stats.reconnects, stats.malformed_messages) == (0, 0, 0)
    assert fake.connections == 1


@pytest.mark.parametrize("venue_class", VENUES, ids=lambda v: v.exchange)
def test_each_fault_is_a_gap_on_the_streams_it_broke_and_the_book_recovers(
    venue_class: type, serve: Callable[..., FakeVenue], make_emitter: Make
) -> None:
    venue = venue_class()
    first = next(iter(venue.symbols))
    specials: dict[int, tuple[Any, ...]] = {60: ("bad_book", first), 180: ("drop",)}
    reasons = [venue.fault_reason, "disconnect"]
    if venue.fault_reason != "malformed_message":  # else the bad book message was malformed
        specials[120] = ("garbage",)
        reasons.insert(1, "malformed_message")
    fake = serve(venue, 240, specials)
    emitter = make_emitter(fake.emitter_options())
    received = subscribe_all(emitter, venue)
    run(fake, emitter, received)

    check_values(venue, fake, received)  # nothing sent was lost or duplicated
    streams = [c for c in received if c[0] != "feed_gaps"]
    for symbol in venue.symbols:
        # one connection carries every stream: each fault broke all of them
        gaps = received[("feed_gaps", symbol)]
        for reason in set(reasons):
            assert sorted(g["channel"] for g in gaps if g["reason"] == reason) == sorted(
                [c for c, s in streams if s == symbol] * reasons.count(reason)
            ), (reason, gaps)
        assert len(gaps) == len(reasons) * len([c for c, s in streams if s == symbol])
        events = received[("l2_book", symbol)]
        markers = [i for i, e in enumerate(events) if e["gap"]]
        assert len(markers) == len(reasons)
        for i in markers:
            assert events[i + 1]["is_snapshot"], "the book is rebuilt from a new snapshot"
        assert rebuild_book(events) == fake.book(symbol)
    stats = emitter.stats()
    assert stats.reconnects == len(reasons) and fake.connections == len(reasons) + 1


@pytest.mark.parametrize("venue_class", VENUES, ids=lambda v: v.exchange)
def test_frames_of_a_symbol_nobody_subscribed_to_are_counted_and_dropped(
    venue_class: type, serve: Callable[..., FakeVenue], make_emitter: Make
) -> None:
    venue = venue_class()
    fake = serve(venue, 200, subscribed=1)  # the server sends every symbol's frames
    emitter = make_emitter(fake.emitter_options())
    first, other = list(venue.symbols)
    received = subscribe_all_of(emitter, venue, [first])
    run(fake, emitter, received)

    check_values_of(venue, fake, received, [first])
    stats = emitter.stats()
    assert (stats.gaps, stats.reconnects, stats.malformed_messages) == (0, 0, 0)
    # every trade and ticker of the other symbol reaches the emitter and is counted (BitMEX
    # book updates that come before the book's first snapshot are discarded by cryptofeed)
    assert stats.exchange(venue.exchange).unsubscribed_messages >= len(
        [s for s in fake.sent if s.action.symbol == other and s.action.kind in ("trade", "ticker")]
    )
    assert fake.connections == 1
