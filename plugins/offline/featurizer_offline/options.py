"""The offline emitter's options, parsed from the run options every emitter receives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from featurizer import ConfigError, parse_duration, parse_pace, parse_timestamp
from featurizer.storage import HOLE_POLICIES

__all__ = ["OfflineOptions"]


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer, received {value!r}")
    return value


def _holes(value: Any) -> str:
    if value not in HOLE_POLICIES:
        choices = ", ".join(map(repr, HOLE_POLICIES))
        raise ValueError(f"expected one of {choices}, received {value!r}")
    return str(value)


def _storage(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a directory path, received {value!r}")
    return value


_PARSERS: dict[str, Any] = {
    "storage": _storage,
    "start": parse_timestamp,
    "end": parse_timestamp,
    "pace": parse_pace,
    "max_events": _positive_int,
    "duration": parse_duration,
    "holes": _holes,
    "segment_rows": _positive_int,
    "prefetch": _positive_int,
}


@attrs.frozen(kw_only=True)
class OfflineOptions:
    """What the offline emitter replays, and how fast.

    :param storage: the storage root (``None``: the config's ``storage.root``, else
        ``$FEATURIZER_STORAGE``, else ``./featurizer-storage``).
    :param start: first timestamp to replay (``None``: the config's ``start_date``, else the
        beginning).
    :param end: replay events before this timestamp (``None``: ``end_date``, else the end).
    :param pace: ``"max"`` (as fast as possible) or a speed factor: ``1.0`` replays at the
        recorded speed, ``10.0`` ten times faster.
    :param max_events: stop after this many events.
    :param duration: stop after this many wall-clock seconds.
    :param holes: ``warn``, ``error`` or ``ignore`` holes in the range.
    :param segment_rows: events decoded at once per source.
    :param prefetch: decoded segments buffered per source (bounds memory).
    """

    storage: str | None = None
    start: float | None = None
    end: float | None = None
    pace: str | float = "max"
    max_events: int | None = None
    duration: float | None = None
    holes: str = "warn"
    segment_rows: int = 16_384
    prefetch: int = 8

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> OfflineOptions:
        """Parse run options; unknown keys are ignored and ``None`` means the default.

        :raises ConfigError: naming the option, what was expected and what was received.

        >>> OfflineOptions.from_mapping({"pace": 2, "seed": 1}).pace
        2.0
        """
        values: dict[str, Any] = {}
        for name, parse in _PARSERS.items():
            if options.get(name) is None:
                continue
            try:
                values[name] = parse(options[name])
            except ValueError as error:
                raise ConfigError(f"offline emitter option {name!r}: {error}") from None
        if "start" in values and "end" in values and not values["start"] < values["end"]:
            raise ConfigError(
                f"offline emitter: start {values['start']!r} must be before end {values['end']!r}"
            )
        return cls(**values)
