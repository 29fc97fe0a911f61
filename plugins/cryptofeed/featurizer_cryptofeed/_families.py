"""What differs between exchange families beyond what cryptofeed normalises: one place each.

cryptofeed normalises trades, tickers and books for every exchange it speaks, but three things
the emitter needs stay exchange-specific, and they live here, one :class:`ExchangeFamily` per
family of exchanges that share a wire protocol:

* **ticker sizes**: cryptofeed's ``Ticker`` has prices only. Where the exchange's raw ticker
  message carries the best bid and ask sizes, :attr:`ExchangeFamily.ticker_sizes` reads them,
  and the exchange serves the ``book_ticker`` data source (prices and sizes) besides
  ``ticker`` (prices).
* **gap detection**: how cryptofeed notices lost book data on that exchange (update ids and a
  REST snapshot on Binance, checksums on Kraken and OKX, sequence numbers on Deribit and
  Bitfinex, nothing but the connection elsewhere), whether the emitter must switch a check on
  (cryptofeed's ``checksum_validation`` is off by default), and how a lost book is recovered:
  a new REST snapshot of that book only (``snapshot``), or a new connection, whose
  subscription makes the exchange send new snapshots (``reconnect``).
* **attribution**: which stream a message that failed belongs to, read from the raw message,
  so that a gap is marked on that stream only.

Every other exchange of cryptofeed's ``EXCHANGE_MAP`` uses :data:`GENERIC`: no sizes, gaps
detected by the connection only, recovery by reconnecting. A test reads cryptofeed's source
to check that exactly the exchanges whose feed raises on a sequence gap or a bad checksum
claim it here. This module imports nothing from
cryptofeed: it is read at discovery time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = [
    "FAMILIES",
    "GENERIC",
    "ExchangeFamily",
    "binance_attribute_message",
    "binance_ticker_sizes",
    "bitmex_attribute_message",
    "bitmex_ticker_sizes",
    "bybit_ticker_sizes",
    "deribit_ticker_sizes",
    "family_of",
    "kraken_ticker_sizes",
    "okx_ticker_sizes",
]

RECOVERY = ("snapshot", "reconnect")
"""How a lost book is recovered: a REST snapshot of that book, or a new connection."""


def binance_ticker_sizes(raw: Any) -> tuple[float, float]:
    """Best bid and ask sizes from a Binance ``bookTicker`` payload (``B`` and ``A``).

    >>> binance_ticker_sizes({"b": "1.0", "B": "2.5", "a": "1.1", "A": "0.5"})
    (2.5, 0.5)
    """
    return float(raw["B"]), float(raw["A"])


def kraken_ticker_sizes(raw: Any) -> tuple[float, float]:
    """Sizes from a Kraken ``ticker`` frame: ``b``/``a`` are ``[price, whole lots, volume]``.

    >>> kraken_ticker_sizes([7, {"a": ["10.1", 1, "1.5"], "b": ["10.0", 2, "2.25"]}, "ticker",
    ...                      "XBT/USD"])
    (2.25, 1.5)
    """
    data = raw[1]
    return float(data["b"][2]), float(data["a"][2])


def okx_ticker_sizes(raw: Any) -> tuple[float, float]:
    """Sizes from one OKX ``tickers`` entry (``bidSz``, ``askSz``).

    >>> okx_ticker_sizes({"bidPx": "1", "bidSz": "3", "askPx": "2", "askSz": "4"})
    (3.0, 4.0)
    """
    return float(raw["bidSz"]), float(raw["askSz"])


def deribit_ticker_sizes(raw: Any) -> tuple[float, float]:
    """Sizes from a Deribit ``ticker`` notification (``best_bid_amount``, ``best_ask_amount``).

    >>> deribit_ticker_sizes({"params": {"data": {"best_bid_amount": 10, "best_ask_amount": 20}}})
    (10.0, 20.0)
    """
    data = raw["params"]["data"]
    return float(data["best_bid_amount"]), float(data["best_ask_amount"])


def bybit_ticker_sizes(raw: Any) -> tuple[float, float]:
    """Sizes from one Bybit ``tickers`` entry (``bid1Size``, ``ask1Size``).

    >>> bybit_ticker_sizes({"bid1Size": "1.5", "ask1Size": "2"})
    (1.5, 2.0)
    """
    return float(raw["bid1Size"]), float(raw["ask1Size"])


def bitmex_ticker_sizes(raw: Any) -> tuple[float, float]:
    """Sizes from one Bitmex ``quote`` row (``bidSize``, ``askSize``).

    >>> bitmex_ticker_sizes({"bidSize": 100, "askSize": 200})
    (100.0, 200.0)
    """
    return float(raw["bidSize"]), float(raw["askSize"])


_BINANCE_CHANNELS = {"aggTrade": "trades", "bookTicker": "ticker", "depth": "l2_book"}


def binance_attribute_message(message: str | bytes) -> tuple[str, str] | None:
    """The ``(exchange symbol, channel)`` a Binance combined-stream message belongs to.

    Used only for messages that failed, to find the stream that lost data.

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


_BITMEX_TABLES = {"orderBookL2": "l2_book", "trade": "trades", "quote": "ticker"}


def bitmex_attribute_message(message: str | bytes) -> tuple[str, str] | None:
    """The ``(exchange symbol, channel)`` of a BitMEX ``table`` message (its first row's).

    >>> bitmex_attribute_message('{"table": "orderBookL2", "action": "partial", '
    ...                          '"data": [{"symbol": "ETHUSD", "id": 1}]}')
    ('ETHUSD', 'l2_book')
    >>> bitmex_attribute_message('{"table": "orderBookL2", "data": []}') is None
    True
    """
    try:
        parsed = json.loads(message)
        channel = _BITMEX_TABLES.get(parsed["table"])
        symbol = parsed["data"][0]["symbol"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    if channel is None or not isinstance(symbol, str):
        return None
    return symbol, channel


@attrs.frozen(kw_only=True)
class ExchangeFamily:
    """What the emitter must know about a family of exchanges sharing a wire protocol.

    :param name: the family, e.g. ``"binance"``.
    :param exchanges: the cryptofeed exchange ids in it.
    :param gap_detection: how book data loss is detected there (one line, for the docs and
        ``featurizer plugins --verbose``).
    :param recovery: ``"snapshot"`` (a REST snapshot of the affected book) or ``"reconnect"``.
    :param checksum: switch on cryptofeed's book checksum validation (off by default there).
    :param ticker_sizes: best bid and ask sizes from a raw ticker message, if it has them.
    :param ticker_time_divisor: divides cryptofeed's ticker timestamp into seconds (Bybit's
        is in milliseconds: 1000).
    :param book_time_divisor: the same for its book timestamps.
    :param attribute_message: the ``(exchange symbol, channel)`` a raw message belongs to.
    :param needs_keys: cryptofeed signs even its public subscriptions with API keys here
        (besides the channels cryptofeed itself marks as authenticated).
    :param feed_fix: the name of a correction of cryptofeed's feed for this family, in
        ``featurizer_cryptofeed._feeds.FEED_FIXES`` (``"coinbase"``: its book snapshots read
        asks as ``"ask"``, which Coinbase sends as ``"offer"``).
    :param fast_path: the name of the fast path of its trades and tickers
        (:mod:`featurizer_cryptofeed._fast`), ``None`` for cryptofeed's objects.
    """

    name: str
    exchanges: tuple[str, ...]
    gap_detection: str
    recovery: str = attrs.field(default="reconnect", validator=attrs.validators.in_(RECOVERY))
    checksum: bool = False
    ticker_sizes: Callable[[Any], tuple[float, float]] | None = None
    ticker_time_divisor: float = 1.0
    book_time_divisor: float = 1.0
    attribute_message: Callable[[str | bytes], tuple[str, str] | None] | None = None
    needs_keys: bool = False
    feed_fix: str | None = None
    fast_path: str | None = None


GENERIC = ExchangeFamily(
    name="generic",
    exchanges=(),
    gap_detection="dropped connections only (cryptofeed checks no book sequence here); "
    "a book is recovered by reconnecting",
)
"""Every exchange without a family of its own."""

FAMILIES: tuple[ExchangeFamily, ...] = (
    ExchangeFamily(
        name="binance",
        exchanges=("BINANCE", "BINANCE_US", "BINANCE_TR", "BINANCE_FUTURES", "BINANCE_DELIVERY"),
        gap_detection="book update ids (U/u) against a REST snapshot; a gap resets the books "
        "(book_reset), a bad message resyncs its book from a new snapshot",
        recovery="snapshot",
        fast_path="binance",
        ticker_sizes=binance_ticker_sizes,
        attribute_message=binance_attribute_message,
    ),
    ExchangeFamily(
        name="kraken",
        exchanges=("KRAKEN",),
        gap_detection="CRC32 book checksums (checksum_mismatch); recovered by reconnecting",
        checksum=True,
        ticker_sizes=kraken_ticker_sizes,
    ),
    ExchangeFamily(
        name="okx",
        exchanges=("OKX", "OKCOIN"),
        gap_detection="CRC32 book checksums (checksum_mismatch); recovered by reconnecting",
        checksum=True,
        ticker_sizes=okx_ticker_sizes,
    ),
    ExchangeFamily(
        name="deribit",
        exchanges=("DERIBIT",),
        gap_detection="book change ids (prev_change_id) (sequence_gap); recovered by reconnecting",
        ticker_sizes=deribit_ticker_sizes,
    ),
    ExchangeFamily(
        name="bitfinex",
        exchanges=("BITFINEX",),
        gap_detection="per-connection sequence numbers (sequence_gap); recovered by reconnecting",
    ),
    ExchangeFamily(
        name="sequenced",
        exchanges=(
            "ASCENDEX",
            "ASCENDEX_FUTURES",
            "BEQUANT",
            "BIT.COM",
            "BLOCKCHAIN",
            "FMFW",
            "HITBTC",
            "INDEPENDENT_RESERVE",
            "KRAKEN_FUTURES",
            "POLONIEX",
        ),
        gap_detection="book sequence numbers (sequence_gap); recovered by reconnecting",
    ),
    ExchangeFamily(
        name="bitget",
        exchanges=("BITGET",),
        gap_detection="CRC32 book checksums (checksum_mismatch); recovered by reconnecting",
        checksum=True,
    ),
    ExchangeFamily(
        name="coinbase",
        exchanges=("COINBASE",),
        gap_detection="dropped connections only (cryptofeed checks no book sequence here); "
        "a book is recovered by reconnecting",
        needs_keys=True,
        feed_fix="coinbase",
    ),
    ExchangeFamily(
        name="bybit",
        exchanges=("BYBIT",),
        gap_detection="dropped connections only (cryptofeed checks no book sequence here); "
        "a book is recovered by reconnecting",
        fast_path="bybit",
        ticker_sizes=bybit_ticker_sizes,
        ticker_time_divisor=1000.0,
        book_time_divisor=1000.0,
    ),
    ExchangeFamily(
        name="bitmex",
        exchanges=("BITMEX",),
        gap_detection="dropped connections only (cryptofeed checks no book sequence here); "
        "a book is recovered by reconnecting",
        ticker_sizes=bitmex_ticker_sizes,
        attribute_message=bitmex_attribute_message,
    ),
)
"""Families with exchange-specific knowledge, each tested against a fake of its protocol."""

_BY_EXCHANGE: Mapping[str, ExchangeFamily] = {
    exchange: family for family in FAMILIES for exchange in family.exchanges
}


def family_of(exchange: str) -> ExchangeFamily:
    """The family of a cryptofeed exchange id (:data:`GENERIC` when it has none).

    >>> family_of("OKX").name, family_of("GEMINI").name
    ('okx', 'generic')
    """
    return _BY_EXCHANGE.get(exchange.upper(), GENERIC)
