"""Fast paths: events straight from an exchange's parsed message, skipping cryptofeed's objects.

cryptofeed turns every trade and ticker into ``Decimal`` values and a ``Trade``/``Ticker``
object, then awaits a callback; the emitter then turns them into floats and a dict. Where the
message is simple, a fast path reads the floats from the message itself, with the same
checks, and cryptofeed's parsing method for that channel is replaced on the feed instance
(its JSON decoding, dispatch, books and sequence checks are untouched). Measured by
``benchmarks/cryptofeed_emitter.py``; the exact-value tests of the Binance family run through it.

Binance family (``bookTicker`` and ``aggTrade``, as cryptofeed's ``Binance._ticker`` and
``Binance._trade`` read them): prices and sizes are decimal strings; trade time ``T`` and
event time ``E`` (futures tickers only) are milliseconds; ``m`` (buyer is maker) makes the
aggressor a seller; ``a`` is the aggregate trade id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["binance_fast_paths"]

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
