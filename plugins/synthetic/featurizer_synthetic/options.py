"""The synthetic emitter's options, parsed from the run options every emitter receives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from featurizer import ConfigError, parse_duration, parse_pace, parse_timestamp
from featurizer_synthetic.market import DEFAULT_START_TIME, ChannelRates

__all__ = ["SyntheticOptions"]


def _seed(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, received {value!r}")
    return value


def _max_events(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer or None, received {value!r}")
    return value


def _duration(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected events per second (a number), received {value!r}")
    return float(value)


def _depth(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected an integer >= 1, received {value!r}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, received {value!r}")
    return value


_PARSERS: dict[str, Any] = {
    "seed": _seed,
    "max_events": _max_events,
    "duration": _duration,
    "pace": parse_pace,
    "start_time": parse_timestamp,
    "book_depth": _depth,
    "validate": _flag,
}
_RATE_OPTIONS = {"ticker_rate": "ticker", "trades_rate": "trades", "l2_book_rate": "l2_book"}


@attrs.frozen(kw_only=True)
class SyntheticOptions:
    """What the synthetic emitter generates and when it stops.

    :param seed: the market's seed; the same seed and options give the same events.
    :param max_events: stop after emitting this many events (all streams together).
    :param duration: stop after this many wall-clock seconds.
    :param pace: ``"max"`` (as fast as possible) or a speed factor: ``1.0`` follows the event
        timestamps in real time, ``10.0`` ten times faster. The events are the same either way.
    :param start_time: timestamp of the first events, seconds since the epoch.
    :param rates: mean events per second of event time, per symbol and channel.
    :param book_depth: levels per side of the L2 book.
    :param validate: check every event against its data source's schema before emitting it.
    """

    seed: int = 0
    max_events: int | None = None
    duration: float | None = None
    pace: str | float = "max"
    start_time: float = DEFAULT_START_TIME
    rates: ChannelRates = attrs.field(factory=ChannelRates)
    book_depth: int = 10
    validate: bool = False

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> SyntheticOptions:
        """Parse run options; keys this emitter does not know are ignored.

        Known keys: ``seed``, ``max_events``, ``duration`` (seconds or ``"30s"``), ``pace``,
        ``start_time`` (epoch seconds or ISO-8601), ``ticker_rate``, ``trades_rate``,
        ``l2_book_rate``, ``book_depth`` and ``validate``. ``None`` means the default.

        :param options: the run options.
        :returns: the parsed options.
        :raises ConfigError: naming the option, what was expected and what was received.

        >>> SyntheticOptions.from_mapping({"seed": 3, "pace": 2, "other": "x"}).pace
        2.0
        """
        values: dict[str, Any] = {}
        for name, parse in _PARSERS.items():
            if options.get(name) is not None:
                values[name] = _parsed(name, parse, options[name])
        rates: dict[str, float] = {}
        for name, field in _RATE_OPTIONS.items():
            if options.get(name) is not None:
                rates[field] = _parsed(name, _rate, options[name])
        if rates:
            try:
                values["rates"] = ChannelRates(**rates)
            except ValueError as error:
                raise ConfigError(f"synthetic emitter rates: {error}") from error
        return cls(**values)


def _parsed(name: str, parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as error:
        raise ConfigError(f"synthetic emitter option {name!r}: {error}") from error
