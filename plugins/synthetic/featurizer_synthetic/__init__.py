"""A seeded, deterministic synthetic market emitter for Featurizer.

Registers the ``synthetic`` emitter: ``ticker``, ``trades`` and ``l2_book`` events for any
symbol, the default emitter for data sources on exchange ``synthetic`` and usable for any
exchange with ``--emitter synthetic``.
"""

from __future__ import annotations

from featurizer import EmitterSpec, hookimpl
from featurizer_synthetic.emitter import SyntheticEventEmitter
from featurizer_synthetic.instruments import Instrument
from featurizer_synthetic.market import (
    CHANNELS,
    DEFAULT_START_TIME,
    ChannelRates,
    StreamKey,
    SyntheticMarket,
)
from featurizer_synthetic.options import SyntheticOptions

__all__ = [
    "CHANNELS",
    "DEFAULT_START_TIME",
    "ChannelRates",
    "Instrument",
    "StreamKey",
    "SyntheticEventEmitter",
    "SyntheticMarket",
    "SyntheticOptions",
]


@hookimpl
def featurizer_register_emitters() -> list[EmitterSpec]:
    """The ``synthetic`` emitter."""
    return [
        EmitterSpec(
            name="synthetic",
            emitter_class=SyntheticEventEmitter,
            data_sources=CHANNELS,
            exchanges=("synthetic",),
            description="seeded, deterministic synthetic market: ticker, trades and L2 book",
        )
    ]
