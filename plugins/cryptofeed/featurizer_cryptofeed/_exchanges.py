"""The exchanges the cryptofeed emitter serves, derived from cryptofeed itself.

Every exchange in cryptofeed's ``EXCHANGE_MAP`` that offers at least one of the ``ticker``,
``trades`` and ``l2_book`` websocket channels is served; the data sources of each follow from
its ``websocket_channels`` and its family (:mod:`featurizer_cryptofeed._families`): ``ticker``
(best bid and ask prices) where it has a ticker channel, ``book_ticker`` (the same with sizes)
where its family also knows where the raw message keeps the sizes, ``trades``, ``l2_book``, and
``feed_gaps`` everywhere.

cryptofeed is imported only when :func:`supported_exchanges` is first called (the plugin's
registration hook); without it the emitter is registered for the exchange ids of the pinned
release (:data:`PINNED_EXCHANGES`), so that a live config still reaches the emitter, which then
says to install cryptofeed.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping

import attrs

from featurizer_cryptofeed._families import ExchangeFamily, family_of

__all__ = [
    "CHANNELS",
    "DATA_SOURCES",
    "GAPS_SOURCE",
    "PINNED_EXCHANGES",
    "ExchangeSupport",
    "describe_exchanges",
    "supported_exchanges",
]

CHANNELS = ("ticker", "trades", "l2_book")
"""cryptofeed channels the emitter reads (named like the data sources they feed)."""

GAPS_SOURCE = "feed_gaps"
"""The data-source definition of gap events (see :class:`~featurizer_cryptofeed.FeedGapsSource`)."""

BOOK_TICKER = "book_ticker"
"""The ticker with sizes, fed by the ``ticker`` channel where the family knows the sizes."""

DATA_SOURCES = ("ticker", BOOK_TICKER, "trades", "l2_book", GAPS_SOURCE)
"""Every data-source definition the emitter can serve."""

PINNED_EXCHANGES = (
    "ASCENDEX",
    "ASCENDEX_FUTURES",
    "BEQUANT",
    "BINANCE",
    "BINANCE_DELIVERY",
    "BINANCE_FUTURES",
    "BINANCE_TR",
    "BINANCE_US",
    "BIT.COM",
    "BITFINEX",
    "BITFLYER",
    "BITGET",
    "BITHUMB",
    "BITMEX",
    "BITSTAMP",
    "BLOCKCHAIN",
    "BYBIT",
    "COINBASE",
    "CRYPTO.COM",
    "DELTA",
    "DERIBIT",
    "DYDX",
    "EXX",
    "FMFW",
    "GATEIO",
    "GATEIO_FUTURES",
    "GEMINI",
    "HITBTC",
    "HUOBI",
    "HUOBI_DM",
    "HUOBI_SWAP",
    "INDEPENDENT_RESERVE",
    "KRAKEN",
    "KRAKEN_FUTURES",
    "KUCOIN",
    "OKCOIN",
    "OKX",
    "PHEMEX",
    "POLONIEX",
    "PROBIT",
    "UPBIT",
)
"""The exchange ids of cryptofeed 2.4.1 (the pinned release), used only when it is missing;
a test checks they equal its ``EXCHANGE_MAP``."""


@attrs.frozen(kw_only=True)
class ExchangeSupport:
    """One exchange the emitter serves.

    :param name: the cryptofeed exchange id, e.g. ``"BINANCE"``.
    :param feed_class: ``"module:Class"`` of its cryptofeed feed (imported when used).
    :param channels: the cryptofeed channels of :data:`CHANNELS` it offers.
    :param family: what is specific to its wire protocol.
    :param keyed_channels: the channels cryptofeed 2.4.1 subscribes to only with API keys.
    """

    name: str
    feed_class: str
    channels: tuple[str, ...]
    family: ExchangeFamily
    keyed_channels: tuple[str, ...] = ()

    @property
    def data_sources(self) -> tuple[str, ...]:
        """The data-source definitions served on this exchange."""
        served = []
        if "ticker" in self.channels:
            served.append("ticker")
            if self.family.ticker_sizes is not None:
                served.append(BOOK_TICKER)
        served.extend(c for c in ("trades", "l2_book") if c in self.channels)
        served.append(GAPS_SOURCE)
        return tuple(served)

    def load_feed_class(self) -> type:
        """Import the cryptofeed feed class."""
        module_name, _, class_name = self.feed_class.partition(":")
        cls: type = getattr(importlib.import_module(module_name), class_name)
        return cls


@functools.cache
def supported_exchanges() -> Mapping[str, ExchangeSupport]:
    """Every served exchange by cryptofeed id, read from cryptofeed's ``EXCHANGE_MAP``.

    :returns: an empty mapping when cryptofeed is not installed.
    """
    try:
        from cryptofeed.exchanges import EXCHANGE_MAP
    except ImportError:
        return {}
    found = {}
    for name, cls in sorted(EXCHANGE_MAP.items()):
        channels = tuple(c for c in CHANNELS if c in (cls.websocket_channels or {}))
        if channels:
            family = family_of(name)
            found[name] = ExchangeSupport(
                name=name,
                feed_class=f"{cls.__module__}:{cls.__name__}",
                channels=channels,
                family=family,
                keyed_channels=tuple(
                    c for c in channels if family.needs_keys or cls.is_authenticated_channel(c)
                ),
            )
    return found


def describe_exchanges() -> list[str]:
    """One line per served exchange: its data sources and how gaps are detected there.

    >>> any(line.startswith("OKX") for line in describe_exchanges())
    True
    """
    exchanges = supported_exchanges()
    if not exchanges:
        return ["(cryptofeed is not installed: pip install featurizer-cryptofeed)"]
    return [
        f"{name:20} {', '.join(s for s in support.data_sources if s != GAPS_SOURCE):44} "
        f"gaps: {support.family.gap_detection}"
        + (
            f"; API keys needed for {', '.join(support.keyed_channels)}"
            if support.keyed_channels
            else ""
        )
        for name, support in exchanges.items()
    ]
