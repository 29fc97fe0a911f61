"""The exchanges the cryptofeed emitter serves, and what it must know about each.

cryptofeed normalises trades, tickers and books across exchanges, but not everything the
emitter needs: its ``Ticker`` has no sizes (they are in the exchange's raw message), and which
stream a malformed message belonged to can only be read from the exchange's own format. An
exchange is supported once both are known and its book resets are observable (the Binance
family resets through ``Binance._reset``); adding one means adding an :class:`ExchangeSupport`
and a test against a fake of it.

This module does not import cryptofeed: it is read at discovery time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = [
    "CHANNELS",
    "GAPS_SOURCE",
    "SUPPORTED_EXCHANGES",
    "ExchangeSupport",
    "binance_attribute_message",
    "binance_ticker_sizes",
]

CHANNELS = ("ticker", "trades", "l2_book")
"""Data-source definitions served from cryptofeed channels (the names are the same in both)."""

GAPS_SOURCE = "feed_gaps"
"""The data-source definition of gap events (see :class:`~featurizer_cryptofeed.FeedGapsSource`)."""


def binance_ticker_sizes(raw: Any) -> tuple[float, float]:
    """Best bid and ask sizes from a Binance ``bookTicker`` payload (``B`` and ``A``).

    >>> binance_ticker_sizes({"b": "1.0", "B": "2.5", "a": "1.1", "A": "0.5"})
    (2.5, 0.5)
    """
    return float(raw["B"]), float(raw["A"])


_BINANCE_CHANNELS = {"aggTrade": "trades", "bookTicker": "ticker", "depth": "l2_book"}


def binance_attribute_message(message: str | bytes) -> tuple[str, str] | None:
    """The ``(exchange symbol, channel)`` a Binance combined-stream message belongs to.

    Used only for messages that failed to parse, to find the stream that lost data.

    :returns: e.g. ``("BTCUSDT", "trades")``, or ``None`` if the message names no stream.

    >>> binance_attribute_message('{"stream": "btcusdt@depth@100ms", "data": {"U": "x"}}')
    ('BTCUSDT', 'l2_book')
    >>> binance_attribute_message("not json") is None
    True
    """
    try:
        stream = json.loads(message)["stream"]
        pair, _, channel = stream.partition("@")
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    normalized = _BINANCE_CHANNELS.get(channel.split("@", 1)[0])
    if not pair or normalized is None:
        return None
    return pair.upper(), normalized


@attrs.frozen(kw_only=True)
class ExchangeSupport:
    """What the emitter needs to serve one cryptofeed exchange.

    :param name: the cryptofeed exchange id, e.g. ``"BINANCE"``.
    :param feed_class: ``"module:Class"`` of its cryptofeed feed (imported when used).
    :param ticker_sizes: best bid and ask sizes from the ticker's raw message.
    :param attribute_message: the stream a raw websocket message belongs to, if any.
    """

    name: str
    feed_class: str
    ticker_sizes: Callable[[Any], tuple[float, float]]
    attribute_message: Callable[[str | bytes], tuple[str, str] | None]

    def load_feed_class(self) -> type:
        """Import the cryptofeed feed class."""
        import importlib

        module_name, _, class_name = self.feed_class.partition(":")
        cls: type = getattr(importlib.import_module(module_name), class_name)
        return cls


SUPPORTED_EXCHANGES: Mapping[str, ExchangeSupport] = {
    support.name: support
    for support in (
        ExchangeSupport(
            name="BINANCE",
            feed_class="cryptofeed.exchanges.binance:Binance",
            ticker_sizes=binance_ticker_sizes,
            attribute_message=binance_attribute_message,
        ),
        ExchangeSupport(
            name="BINANCE_US",
            feed_class="cryptofeed.exchanges.binance_us:BinanceUS",
            ticker_sizes=binance_ticker_sizes,
            attribute_message=binance_attribute_message,
        ),
    )
}
"""Supported exchanges by cryptofeed id (the ``exchange`` param, matched case-insensitively)."""
