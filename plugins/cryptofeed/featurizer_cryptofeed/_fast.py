"""Fast paths: events straight from an exchange's parsed message, skipping cryptofeed's objects.

cryptofeed turns every trade and ticker into ``Decimal`` values and a ``Trade``/``Ticker``
object, then awaits a callback; the emitter then turns them into floats and a dict. Where the
message is simple, a fast path reads the floats from the message itself, with the same
checks, and cryptofeed's parsing method for that channel is replaced on the feed instance
(its JSON decoding, dispatch, books and sequence checks are untouched). Measured by
``benchmarks/cryptofeed_emitter.py``; the exact-value tests of the Binance family run through it.

Binance family (``bookTicker``, ``aggTrade`` and ``depthUpdate``, as cryptofeed's
``Binance._ticker``, ``_trade`` and ``_book`` read them): prices and sizes are decimal
strings; trade time ``T`` and event time ``E`` are milliseconds; ``m`` (buyer is maker) makes
the aggressor a seller; ``a`` is the aggregate trade id. Book updates keep cryptofeed's
protocol: a missing book is fetched with cryptofeed's own REST snapshot (which reaches the
emitter as the snapshot event) and every update goes through cryptofeed's update-id check
(``_check_update_id``, which resets the books on a gap); only the update's levels are read
as floats into the delta event, instead of into cryptofeed's ``Decimal`` book, which the
emitter never reads after the snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["binance_book_path", "binance_fast_paths", "bybit_fast_paths"]

_UPDATED: dict[str, Any] = {}
"""Set as cryptofeed's ``OrderBook.delta`` once an update was applied after a snapshot: its
update-id check treats a book whose ``delta`` is ``None`` as just snapshotted."""

Deliver = Callable[[Any, dict[str, Any]], None]
Bad = Callable[[Any, Any, Exception], None]


def binance_fast_paths(
    *,
    symbols: Mapping[str, str],
    tickers: Mapping[str, Any],
    sized: Mapping[str, Any],
    trades: Mapping[str, Any],
    deliver: Deliver,
    bad_event: Bad,
    unsubscribed: Callable[[], None],
) -> dict[str, Callable[..., Any]]:
    """The replacements of a Binance-family feed's ``_ticker`` and ``_trade`` methods.

    :param symbols: exchange symbol (``BTCUSDT``) to normalised symbol.
    :param tickers: the ``ticker`` streams by normalised symbol.
    :param sized: the ``book_ticker`` streams by normalised symbol.
    :param trades: the ``trades`` streams by normalised symbol.
    :param deliver: ``deliver(stream, event)``.
    :param bad_event: ``bad_event(stream, raw message, error)``: a malformed message.
    :param unsubscribed: counts a message for a stream nobody subscribed to.
    :returns: ``{"_ticker": coroutine function, "_trade": coroutine function}``.
    """
    isfinite = math.isfinite

    async def ticker(msg: Any, receipt: float) -> None:
        symbol = symbols.get(msg["s"])
        plain = tickers.get(symbol)  # type: ignore[arg-type]
        with_sizes = sized.get(symbol)  # type: ignore[arg-type]
        if plain is None and with_sizes is None:
            unsubscribed()
            return
        try:
            timestamp = msg["E"] / 1000.0 if "E" in msg else receipt
            bid = float(msg["b"])
            ask = float(msg["a"])
            if not (isfinite(timestamp + receipt + bid + ask) and bid > 0.0 and ask > 0.0):
                raise ValueError(f"ticker bid {bid!r}, ask {ask!r}, timestamp {timestamp!r}")
            if with_sizes is not None:
                bid_size = float(msg["B"])
                ask_size = float(msg["A"])
                if not isfinite(bid_size + ask_size):
                    raise ValueError(f"ticker sizes {bid_size!r}, {ask_size!r}")
        except Exception as error:
            for stream in (plain, with_sizes):
                if stream is not None:
                    bad_event(stream, msg, error)
            return
        if plain is not None:
            deliver(
                plain,
                {"timestamp": timestamp, "receipt_timestamp": receipt, "bid": bid, "ask": ask},
            )
        if with_sizes is not None:
            deliver(
                with_sizes,
                {
                    "timestamp": timestamp,
                    "receipt_timestamp": receipt,
                    "bid": bid,
                    "ask": ask,
                    "bid_size": bid_size,
                    "ask_size": ask_size,
                },
            )

    async def trade(msg: Any, receipt: float) -> None:
        stream = trades.get(symbols.get(msg["s"]))  # type: ignore[arg-type]
        if stream is None:
            unsubscribed()
            return
        try:
            timestamp = msg["T"] / 1000.0
            price = float(msg["p"])
            amount = float(msg["q"])
            if not isfinite(timestamp + receipt + price + amount):
                raise ValueError(f"non-finite trade {price!r} x {amount!r} at {timestamp!r}")
            event = {
                "timestamp": timestamp,
                "receipt_timestamp": receipt,
                "price": price,
                "amount": amount,
                "side": "sell" if msg["m"] else "buy",
                "trade_id": str(msg["a"]),
            }
        except Exception as error:
            bad_event(stream, msg, error)
            return
        deliver(stream, event)

    return {"_ticker": ticker, "_trade": trade}


def binance_book_path(
    *,
    feed: Any,
    symbols: Mapping[str, str],
    books: Mapping[str, Any],
    deliver: Deliver,
    bad_book: Callable[[Any, Exception], None],
    unsubscribed: Callable[[str], None],
) -> dict[str, Callable[..., Any]]:
    """The replacement of a Binance-family feed's ``_book`` method.

    :param feed: the feed (its ``_l2_book``, ``_snapshot`` and ``_check_update_id``).
    :param symbols: exchange symbol to normalised symbol.
    :param books: the ``l2_book`` streams by normalised symbol.
    :param deliver: ``deliver(stream, event)``.
    :param bad_book: ``bad_book(stream, error)``: the update could not be read (the emitter
        marks a gap and drops that book, so that it is fetched again).
    :param unsubscribed: counts an update of a book nobody subscribed to (it is dropped: it
        must not make cryptofeed fetch that book, nor reset every book at its next gap).
    :returns: ``{"_book": coroutine function}``.
    """
    isfinite = math.isfinite

    async def book(msg: Any, pair: str, receipt: float) -> None:
        symbol = symbols.get(pair)
        stream = books.get(symbol)  # type: ignore[arg-type]
        if stream is None:
            unsubscribed(pair)
            return
        if symbol not in feed._l2_book:  # cryptofeed replaces the dict when it resets
            await feed._snapshot(pair)
        if feed._check_update_id(symbol, msg):
            return
        try:
            bids = tuple([(float(price), float(size)) for price, size in msg["b"]])
            asks = tuple([(float(price), float(size)) for price, size in msg["a"]])
            timestamp = msg["E"] / 1000.0
            total = timestamp + receipt
            for price, size in bids:
                total += price + size
            for price, size in asks:
                total += price + size
            if not isfinite(total):
                raise ValueError(f"non-finite book update {bids!r} {asks!r} at {timestamp!r}")
        except Exception as error:
            bad_book(stream, error)
            return
        feed._l2_book[symbol].delta = _UPDATED
        sequence = stream.sequence + 1
        stream.sequence = sequence
        deliver(
            stream,
            {
                "timestamp": timestamp,
                "receipt_timestamp": receipt,
                "bids": bids,
                "asks": asks,
                "sequence": sequence,
                "is_snapshot": False,
                "gap": False,
            },
        )

    return {"_book": book}


def bybit_fast_paths(
    *,
    feed: Any,
    symbols: Mapping[str, str],
    tickers: Mapping[str, Any],
    sized: Mapping[str, Any],
    trades: Mapping[str, Any],
    books: Mapping[str, Any],
    deliver: Deliver,
    bad_event: Bad,
    bad_book: Callable[[Any, Exception], None],
    unsubscribed: Callable[[], None],
) -> dict[str, Callable[..., Any]]:
    """The replacements of a Bybit feed's ticker, ``_trade`` and ``_book`` methods.

    Bybit v5 (as cryptofeed's ``Bybit`` reads it): prices and sizes are decimal strings,
    times (``ts``, trade ``T``) milliseconds; ticker messages after the first carry only what
    changed and are merged into the last one, as cryptofeed does; book snapshots go through
    cryptofeed (they replace its book), book deltas become delta events directly. Spot
    symbols are converted as cryptofeed does (``BTCUSDT`` -> ``BTC/USDT``).

    :returns: ``{"_ticker_open_interest_funding_index": ..., "_trade": ..., "_book": ...}``.
    """
    isfinite = math.isfinite
    merged: dict[str, dict[str, Any]] = {}
    cryptofeed_book = feed._book

    def spot_name(name: str) -> str | None:
        converted: str | None = feed.convert_to_spot_name(feed, name)
        return converted

    async def ticker(msg: Any, receipt: float, conn: Any) -> None:
        update = msg["data"]
        name = update["symbol"]
        if msg["type"] == "snapshot" or name not in merged:
            merged[name] = dict(update)
        else:
            merged[name].update(update)
        update = merged[name]
        symbol = symbols.get(name)
        plain = tickers.get(symbol)  # type: ignore[arg-type]
        with_sizes = sized.get(symbol)  # type: ignore[arg-type]
        if plain is None and with_sizes is None:
            unsubscribed()
            return
        try:
            timestamp = int(msg["ts"]) / 1000.0
            bid = float(update["bid1Price"])
            ask = float(update["ask1Price"])
            if not (isfinite(timestamp + receipt + bid + ask) and bid > 0.0 and ask > 0.0):
                raise ValueError(f"ticker bid {bid!r}, ask {ask!r}, timestamp {timestamp!r}")
            if with_sizes is not None:
                bid_size = float(update["bid1Size"])
                ask_size = float(update["ask1Size"])
                if not isfinite(bid_size + ask_size):
                    raise ValueError(f"ticker sizes {bid_size!r}, {ask_size!r}")
        except Exception as error:
            for stream in (plain, with_sizes):
                if stream is not None:
                    bad_event(stream, msg, error)
            return
        if plain is not None:
            deliver(
                plain,
                {"timestamp": timestamp, "receipt_timestamp": receipt, "bid": bid, "ask": ask},
            )
        if with_sizes is not None:
            deliver(
                with_sizes,
                {
                    "timestamp": timestamp,
                    "receipt_timestamp": receipt,
                    "bid": bid,
                    "ask": ask,
                    "bid_size": bid_size,
                    "ask_size": ask_size,
                },
            )

    async def trade(msg: Any, receipt: float, market: str) -> None:
        data = msg["data"]
        if not isinstance(data, list):
            return
        for row in data:
            name = row["s"]
            if market == "spot":
                name = spot_name(name)
                if not name:
                    return
            stream = trades.get(symbols.get(name))  # type: ignore[arg-type]
            if stream is None:
                unsubscribed()
                continue
            try:
                timestamp = int(row["T"]) / 1000.0
                price = float(row["p"])
                amount = float(row["v"])
                if not isfinite(timestamp + receipt + price + amount):
                    raise ValueError(f"non-finite trade {price!r} x {amount!r} at {timestamp!r}")
                event = {
                    "timestamp": timestamp,
                    "receipt_timestamp": receipt,
                    "price": price,
                    "amount": amount,
                    "side": "buy" if row["S"] == "Buy" else "sell",
                    "trade_id": str(row["i"]),
                }
            except Exception as error:
                bad_event(stream, row, error)
                continue
            deliver(stream, event)

    async def book(msg: Any, receipt: float, market: str) -> None:
        if msg["type"] != "delta":
            await cryptofeed_book(msg, receipt, market)  # a snapshot: cryptofeed's book
            return
        data = msg["data"]
        name = msg["topic"].split(".")[-1]
        if market == "spot":
            name = spot_name(data["s"])
            if not name:
                return
        symbol = symbols.get(name)
        stream = books.get(symbol)  # type: ignore[arg-type]
        if stream is None:
            unsubscribed()
            return
        if symbol not in feed._l2_book:
            raise KeyError(f"a {symbol} book delta before its snapshot")
        try:
            bids = tuple([(float(price), float(size)) for price, size in data["b"]])
            asks = tuple([(float(price), float(size)) for price, size in data["a"]])
            timestamp = int(msg["ts"]) / 1000.0
            total = timestamp + receipt
            for price, size in bids:
                total += price + size
            for price, size in asks:
                total += price + size
            if not isfinite(total):
                raise ValueError(f"non-finite book update {bids!r} {asks!r} at {timestamp!r}")
        except Exception as error:
            bad_book(stream, error)
            return
        sequence = stream.sequence + 1
        stream.sequence = sequence
        deliver(
            stream,
            {
                "timestamp": timestamp,
                "receipt_timestamp": receipt,
                "bids": bids,
                "asks": asks,
                "sequence": sequence,
                "is_snapshot": False,
                "gap": False,
            },
        )

    return {"_ticker_open_interest_funding_index": ticker, "_trade": trade, "_book": book}
