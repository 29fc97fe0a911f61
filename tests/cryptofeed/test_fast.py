"""The fast paths give exactly what cryptofeed's own parsing gives, on any message.

Two emitters subscribe to the same Binance (or Bybit) streams; one feed keeps its family's
fast paths (``featurizer_cryptofeed._fast``), the other has them removed, so that cryptofeed
builds its ``Trade``/``Ticker`` objects and the emitter converts those. Hypothesis writes
trade and ticker messages with any price and size text (valid decimals, exponents, spaces,
``NaN``, infinities, garbage, zero and negative values); both feeds get every message and
must deliver the same events and report the same gaps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from featurizer_cryptofeed import CryptofeedEventEmitter
from featurizer_cryptofeed._errors import ResyncRequired
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurizer import Event, Feature
from tests.cryptofeed.fake_binance import FakeBinance, generate_script
from tests.cryptofeed.fake_venue import FakeVenue, generate
from tests.cryptofeed.support import SOURCES
from tests.cryptofeed.tls import SelfSignedCertificate
from tests.cryptofeed.venues import Bybit

numbers = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-10, max_value=1e9).map(
        str
    ),
    st.sampled_from(["NaN", "nan", "inf", "-Infinity", "1e400", "1E-3", " 2.5 ", "oops", "", "0"]),
    st.integers(min_value=0, max_value=10**6).map(str),
)


def make_pair(
    options: dict[str, Any], exchange: str, symbol: str
) -> tuple[Any, Any, dict[str, list[Any]]]:
    """Two feeds over the same streams (fast paths kept, removed) and what each delivered."""
    received: dict[str, list[Any]] = {"fast": [], "plain": []}
    feeds = []
    for name in ("fast", "plain"):
        emitter = CryptofeedEventEmitter.from_options(options)
        events = received[name]
        for channel in ("ticker", "book_ticker", "trades", "feed_gaps"):
            feature = Feature.create(SOURCES[channel], {"exchange": exchange, "symbol": symbol})
            emitter.register_callback(
                feature, lambda event, c=channel, into=events: into.append((c, event))
            )
        feed = emitter._build_feed(emitter._exchanges[exchange])
        emitter._exchanges[exchange].feed = feed
        if name == "plain":
            for method in [m for m in vars(feed) if m.startswith("_") and callable(vars(feed)[m])]:
                del feed.__dict__[method]
        feeds.append(feed)
    return feeds[0], feeds[1], received


def comparable(events: list[tuple[str, Event]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for channel, event in events:
        if channel == "feed_gaps":  # stamped when the gap is found
            found.append((channel, {k: v for k, v in event.items() if "timestamp" not in k}))
        else:
            found.append((channel, event))
    return found


def test_binance_fast_paths_equal_cryptofeeds_parsing(
    fake_exchange: Callable[..., FakeBinance],
) -> None:
    fake = fake_exchange(generate_script(1, ("BTC-USDT",), 1))
    fast, plain, received = make_pair(fake.emitter_options(), "BINANCE", "BTC-USDT")
    assert set(vars(fast)) >= {"_ticker", "_trade", "_book"}
    connection = SimpleNamespace(uuid="BINANCE.ws.1", subscription={}, address="wss://x/stream")

    async def feed_both(message: str, receipt: float) -> None:
        for feed in (fast, plain):
            await feed.message_handler(message, connection, receipt)

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        kind=st.sampled_from(["aggTrade", "bookTicker"]),
        a=numbers,
        b=numbers,
        c=numbers,
        d=numbers,
        maker=st.booleans(),
        trade_id=st.integers(min_value=0, max_value=2**40),
        ms=st.integers(min_value=1_600_000_000_000, max_value=1_900_000_000_000),
    )
    def check(
        kind: str, a: str, b: str, c: str, d: str, maker: bool, trade_id: int, ms: int
    ) -> None:
        received["fast"].clear()
        received["plain"].clear()
        if kind == "aggTrade":
            data: dict[str, Any] = {
                "e": "aggTrade",
                "E": ms,
                "s": "BTCUSDT",
                "a": trade_id,
                "p": a,
                "q": b,
                "f": 1,
                "l": 1,
                "T": ms,
                "m": maker,
                "M": True,
            }
            stream = "btcusdt@aggTrade"
        else:
            data = {"u": trade_id, "s": "BTCUSDT", "b": a, "B": b, "a": c, "A": d}
            stream = "btcusdt@bookTicker"
        message = json.dumps({"stream": stream, "data": data})
        asyncio.run(feed_both(message, time.time()))
        assert comparable(received["fast"]) == comparable(received["plain"]), message

    check()


def test_bybit_fast_paths_equal_cryptofeeds_parsing(certificate: SelfSignedCertificate) -> None:
    venue = Bybit()
    books, actions = generate(1, tuple(venue.symbols), 1)
    fake = FakeVenue(venue, books, actions, certificate).start()
    try:
        fast, plain, received = make_pair(fake.emitter_options(), "BYBIT", "BTC-USDT-PERP")
        assert set(vars(fast)) >= {"_ticker_open_interest_funding_index", "_trade", "_book"}
        connection = SimpleNamespace(
            uuid="BYBIT.ws.1",
            subscription={"tickers": ["BTCUSDT"], "publicTrade": ["BTCUSDT"]},
            address="wss://x/v5/public/linear",
        )

        async def feed_both(message: str, receipt: float) -> bool:
            """Both feeds; whether the plain one asked for a new connection."""
            await fast.message_handler(message, connection, receipt)
            try:
                await plain.message_handler(message, connection, receipt)
            except ResyncRequired:
                return True
            return False

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(
            kind=st.sampled_from(["trade", "ticker snapshot", "ticker delta"]),
            a=numbers,
            b=numbers,
            c=numbers,
            d=numbers,
            buy=st.booleans(),
            trade_id=st.integers(min_value=0, max_value=2**40),
            ms=st.integers(min_value=1_600_000_000_000, max_value=1_900_000_000_000),
        )
        def check(
            kind: str, a: str, b: str, c: str, d: str, buy: bool, trade_id: int, ms: int
        ) -> None:
            received["fast"].clear()
            received["plain"].clear()
            if kind == "trade":
                row = {
                    "T": ms,
                    "s": "BTCUSDT",
                    "S": "Buy" if buy else "Sell",
                    "v": b,
                    "p": a,
                    "L": "PlusTick",
                    "i": f"t-{trade_id}",
                    "BT": False,
                }
                message = {
                    "topic": "publicTrade.BTCUSDT",
                    "type": "snapshot",
                    "ts": ms,
                    "data": [row],
                }
            else:
                data = {
                    "symbol": "BTCUSDT",
                    "bid1Price": a,
                    "bid1Size": b,
                    "ask1Price": c,
                    "ask1Size": d,
                }
                if kind == "ticker delta" and buy:
                    del data["ask1Size"]  # deltas carry only what changed
                message = {
                    "topic": "tickers.BTCUSDT",
                    "type": kind.split()[1],
                    "data": data,
                    "cs": 1,
                    "ts": ms,
                }
            text = json.dumps(message)
            if not asyncio.run(feed_both(text, time.time())):
                assert comparable(received["fast"]) == comparable(received["plain"]), text
                return
            # cryptofeed's Decimal parsing failed, so the plain feed cannot tell which stream
            # the message was: it renews the connection. The fast path knows: a gap on the
            # message's own streams, and nothing else.
            channels = ["trades"] if kind == "trade" else ["ticker", "book_ticker"]
            assert comparable(received["fast"]) == [
                ("feed_gaps", {"channel": c, "reason": "malformed_message"}) for c in channels
            ], text

        check()
    finally:
        fake.stop()
