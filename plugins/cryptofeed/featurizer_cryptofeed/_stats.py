"""Counters of the cryptofeed emitter, published as frozen values by ``stats()``.

The emitter's thread updates small mutable counters (plain attributes, no lock on the hot
path); :meth:`CryptofeedEventEmitter.stats` copies them into the frozen values below, which
are safe to hand to another thread (a metrics exporter polls them).
"""

from __future__ import annotations

import attrs

__all__ = ["EmitterStats", "ExchangeStats", "StreamStats"]


@attrs.frozen(kw_only=True)
class StreamStats:
    """Counters of one stream: an (exchange, symbol, channel) the emitter subscribed to.

    :param exchange: cryptofeed exchange name, e.g. ``"BINANCE"``.
    :param symbol: normalised symbol, e.g. ``"BTC-USDT"``.
    :param channel: ``"ticker"``, ``"trades"`` or ``"l2_book"``.
    :param events: events delivered (book snapshots, deltas and gap markers included).
    :param gaps: gaps recorded: disconnects, book resets after a sequence gap, lost messages.
    :param callback_errors: exceptions raised by the stream's callbacks (caught, counted).
    :param lag_last: ``receipt - exchange timestamp`` of the latest event, in seconds (``0``
        where the exchange sends no time).
    :param lag_max: the largest lag seen.
    :param lag_mean: the mean lag over every event.
    """

    exchange: str
    symbol: str
    channel: str
    events: int
    gaps: int
    callback_errors: int
    lag_last: float | None
    lag_max: float | None
    lag_mean: float | None


@attrs.frozen(kw_only=True)
class ExchangeStats:
    """Counters of one exchange's feed (all its connections).

    :param exchange: cryptofeed exchange name.
    :param connects: websocket connections established (first ones and reconnections).
    :param reconnects: connections established again after one had been established.
    :param disconnects: established connections that ended while the emitter was running.
    :param book_resets: times books were lost to an update-id or sequence gap or a checksum
        mismatch (or reset after an unattributable bad message).
    :param malformed_messages: messages that could not be parsed or converted (dropped).
    :param unsubscribed_messages: messages for streams nobody subscribed to (dropped).
    :param connect_failures: attempts to open a websocket connection that failed.
    """

    exchange: str
    connects: int
    reconnects: int
    disconnects: int
    book_resets: int
    malformed_messages: int
    unsubscribed_messages: int = 0
    connect_failures: int = 0


@attrs.frozen(kw_only=True)
class EmitterStats:
    """Everything the emitter counts, at one moment.

    :param running: whether the feed thread is running.
    :param events: events delivered on every stream.
    :param gaps: gaps recorded on every stream.
    :param reconnects: reconnections of every exchange.
    :param malformed_messages: malformed messages of every exchange.
    :param callback_errors: callback exceptions on every stream.
    :param exchanges: per-exchange counters, by exchange name.
    :param streams: per-stream counters, in registration order.
    """

    running: bool
    events: int
    gaps: int
    reconnects: int
    malformed_messages: int
    callback_errors: int
    exchanges: tuple[ExchangeStats, ...]
    streams: tuple[StreamStats, ...]

    def stream(self, exchange: str, symbol: str, channel: str) -> StreamStats:
        """The counters of one stream.

        :raises KeyError: if the emitter has no such stream.
        """
        for found in self.streams:
            if (found.exchange, found.symbol, found.channel) == (exchange.upper(), symbol, channel):
                return found
        raise KeyError((exchange, symbol, channel))

    def exchange(self, name: str) -> ExchangeStats:
        """The counters of one exchange.

        :raises KeyError: if the emitter has no feed for that exchange.
        """
        for found in self.exchanges:
            if found.exchange == name.upper():
                return found
        raise KeyError(name)
