"""Live exchange data for Featurizer: the cryptofeed emitter.

Registers the ``cryptofeed`` emitter, the default for ``ticker``, ``trades`` and ``l2_book``
data sources on the exchanges in :data:`SUPPORTED_EXCHANGES`, and the ``feed_gaps`` data
source (where a live stream lost data). cryptofeed itself is imported only when an emitter
is used, so discovery and ``featurizer plugins`` work without it.
"""

from __future__ import annotations

from featurizer import DataSourceDefinition, EmitterSpec, hookimpl
from featurizer_cryptofeed._exchanges import (
    CHANNELS,
    GAPS_SOURCE,
    SUPPORTED_EXCHANGES,
    ExchangeSupport,
)
from featurizer_cryptofeed._options import CryptofeedOptions, Endpoints
from featurizer_cryptofeed._sources import GAP_REASONS, FeedGapsSource
from featurizer_cryptofeed._stats import EmitterStats, ExchangeStats, StreamStats
from featurizer_cryptofeed.emitter import CryptofeedEventEmitter

__all__ = [
    "CHANNELS",
    "GAPS_SOURCE",
    "GAP_REASONS",
    "SUPPORTED_EXCHANGES",
    "CryptofeedEventEmitter",
    "CryptofeedOptions",
    "EmitterStats",
    "Endpoints",
    "ExchangeStats",
    "ExchangeSupport",
    "FeedGapsSource",
    "StreamStats",
]


@hookimpl
def featurizer_register_emitters() -> list[EmitterSpec]:
    """The ``cryptofeed`` emitter."""
    return [
        EmitterSpec(
            name="cryptofeed",
            emitter_class=CryptofeedEventEmitter,
            data_sources=(*CHANNELS, GAPS_SOURCE),
            exchanges=tuple(SUPPORTED_EXCHANGES),
            description="live exchange data through cryptofeed: ticker, trades, L2 book, gaps",
        )
    ]


@hookimpl
def featurizer_register_data_source_definitions() -> list[type[DataSourceDefinition]]:
    """``feed_gaps``: gap events of live streams."""
    return [FeedGapsSource]
