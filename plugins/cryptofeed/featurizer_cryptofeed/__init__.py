"""Live exchange data for Featurizer: the cryptofeed emitter.

Registers the ``cryptofeed`` emitter, the default for ``ticker``, ``book_ticker``, ``trades``
and ``l2_book`` data sources on every exchange cryptofeed speaks that offers the channel
(:func:`supported_exchanges`, derived from cryptofeed's ``EXCHANGE_MAP``), and the
``book_ticker`` (ticker with sizes) and ``feed_gaps`` (where a live stream lost data) data
sources (the features for venues side by side, ``relative_spread_l2`` and ``basis``, are
standard features of ``featurizer-features``). cryptofeed is imported when the registration
hook runs (to list its exchanges) and when an emitter is used, never at import: discovery
works without it.
"""

from __future__ import annotations

from featurizer import DataSourceDefinition, EmitterSpec, hookimpl
from featurizer_cryptofeed._exchanges import (
    CHANNELS,
    DATA_SOURCES,
    GAPS_SOURCE,
    PINNED_EXCHANGES,
    ExchangeSupport,
    describe_exchanges,
    supported_exchanges,
)
from featurizer_cryptofeed._families import FAMILIES, GENERIC, ExchangeFamily, family_of
from featurizer_cryptofeed._options import CryptofeedOptions, Endpoints
from featurizer_cryptofeed._sources import GAP_REASONS, BookTickerSource, FeedGapsSource
from featurizer_cryptofeed._stats import EmitterStats, ExchangeStats, StreamStats
from featurizer_cryptofeed.emitter import CryptofeedEventEmitter

__all__ = [
    "CHANNELS",
    "DATA_SOURCES",
    "FAMILIES",
    "GAPS_SOURCE",
    "GAP_REASONS",
    "GENERIC",
    "PINNED_EXCHANGES",
    "BookTickerSource",
    "CryptofeedEventEmitter",
    "CryptofeedOptions",
    "EmitterStats",
    "Endpoints",
    "ExchangeFamily",
    "ExchangeStats",
    "ExchangeSupport",
    "FeedGapsSource",
    "StreamStats",
    "describe_exchanges",
    "family_of",
    "supported_exchanges",
]


@hookimpl
def featurizer_register_emitters() -> list[EmitterSpec]:
    """The ``cryptofeed`` emitter, default for every exchange cryptofeed speaks."""
    return [
        EmitterSpec(
            name="cryptofeed",
            emitter_class=CryptofeedEventEmitter,
            data_sources=DATA_SOURCES,
            exchanges=tuple(supported_exchanges()) or PINNED_EXCHANGES,
            description="live exchange data through cryptofeed: ticker, trades, L2 book, gaps",
        )
    ]


@hookimpl
def featurizer_register_data_source_definitions() -> list[type[DataSourceDefinition]]:
    """``book_ticker`` (ticker with sizes) and ``feed_gaps`` (gap events of live streams)."""
    return [BookTickerSource, FeedGapsSource]
