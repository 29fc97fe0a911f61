"""The synthetic emitter: pushes a :class:`~featurizer_synthetic.SyntheticMarket` into a graph."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import Any

from featurizer import EmitterError, EmitterOption, Event, Feature, GeneratorEmitter
from featurizer._emitter import EmitterLimits
from featurizer_synthetic.market import CHANNELS, StreamKey, SyntheticMarket
from featurizer_synthetic.options import SyntheticOptions

__all__ = ["SyntheticEventEmitter"]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, str) else value


def _integer(value: Any) -> int:
    return int(value) if isinstance(value, str) else value


class SyntheticEventEmitter(GeneratorEmitter):
    """Emits a seeded, deterministic synthetic market for ``ticker``, ``trades`` and ``l2_book``.

    Any ``exchange`` param is accepted; the ``symbol`` param selects the instrument. Only the
    registered ``(channel, symbol)`` streams are generated, and each stream's events depend
    only on the seed and the market options: never on the pace, the wall clock or the other
    streams (see :mod:`featurizer_synthetic.market`). Several features on the same stream
    (e.g. two exchanges) receive the same event objects, which they must not modify.

    The emitter stops at the first bound reached: ``max_events`` events emitted (all streams
    together, so the output is a prefix of the same sequence every time) or ``duration``
    wall-clock seconds. Without a bound it runs until :meth:`stop`; with no registered data
    source it finishes at once. Threads, bounds, pacing and stopping are
    :class:`~featurizer.GeneratorEmitter`'s: this class only generates the market.

    The market is the same for the same options, so the emitter :attr:`replays_input`: a
    checkpointed run over it keeps no input log (a resumed run gets the same events again
    and skips those it had consumed).

    :param options: what to generate and when to stop (defaults: seed 0, unbounded, max pace).

    >>> from featurizer_features import TickerSource
    >>> ticker = Feature.create(TickerSource, {"exchange": "synthetic", "symbol": "BTC-USDT"})
    >>> emitter = SyntheticEventEmitter.from_options({"seed": 1, "max_events": 3})
    >>> received = []
    >>> emitter.register_callback(ticker, received.append)
    >>> emitter.run()
    3
    >>> [sorted(event) for event in received][0]
    ['ask', 'ask_size', 'bid', 'bid_size', 'receipt_timestamp', 'timestamp']
    """

    replays_input = True

    declared_options = (
        EmitterOption(name="start_time", help="timestamp of the first events (epoch or ISO-8601)"),
        EmitterOption(name="ticker_rate", parse=_number, help="ticker events per second"),
        EmitterOption(name="trades_rate", parse=_number, help="trades per second"),
        EmitterOption(name="l2_book_rate", parse=_number, help="L2 book updates per second"),
        EmitterOption(name="book_depth", parse=_integer, help="levels per side of the L2 book"),
    )

    def __init__(self, options: SyntheticOptions | None = None) -> None:
        super().__init__({})
        self.options = options or SyntheticOptions()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SyntheticEventEmitter:
        """Build from run options (see :meth:`SyntheticOptions.from_mapping` for the keys).

        :param options: the run options; unknown keys are ignored.
        :returns: the emitter.
        :raises ConfigError: for an invalid option value.
        """
        declared = {o.name: o for o in cls.declared_options}
        values = {
            key: declared[key].value(value, emitter="synthetic")
            if key in declared and isinstance(value, str) and key != "start_time"
            else value
            for key, value in options.items()
        }
        return cls(SyntheticOptions.from_mapping(values))

    def limits(self) -> EmitterLimits:
        """The bounds of :attr:`options`."""
        options = self.options
        return EmitterLimits(
            max_events=options.max_events,
            duration=options.duration,
            pace=options.pace,
            validate=options.validate,
        )

    def check_source(self, feature: Feature) -> None:
        """Accept ``ticker``, ``trades`` and ``l2_book`` sources with a ``symbol`` param.

        :raises EmitterError: for another definition or a missing symbol.
        """
        if feature.definition_name not in CHANNELS:
            raise EmitterError(
                f"the synthetic emitter serves data sources {', '.join(map(repr, CHANNELS))}; "
                f"received {feature.name!r} of definition {feature.definition_name!r}"
            )
        symbol = feature.params.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise EmitterError(
                f"synthetic emitter: data source {feature.name!r} needs a 'symbol' param, "
                f"received params {dict(feature.params)!r}"
            )

    def source_key(self, source: Feature) -> StreamKey:
        """Sources of the same channel and symbol share one stream (whatever the exchange)."""
        return (source.definition_name, str(source.params["symbol"]))

    def market(self) -> SyntheticMarket:
        """A fresh market for the registered streams, with this emitter's options.

        :returns: the market whose events :meth:`run` emits.
        """
        options = self.options
        return SyntheticMarket(
            {self.source_key(source) for source in self.sources},
            seed=options.seed,
            start_time=options.start_time,
            rates=options.rates,
            depth=options.book_depth,
        )

    def events(self) -> Iterator[tuple[Hashable, Event]]:
        """The market's events, from its beginning (each :meth:`run` starts over)."""
        return self.market().events()
