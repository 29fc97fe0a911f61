"""Declared parameters of definitions: their kinds, defaults and validation."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import attrs

__all__ = ["Param", "parse_duration", "parse_pace", "parse_timestamp", "resolve_params"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86400),
    None: Fraction(1),
}
_KINDS = ("float", "int", "str", "bool", "duration")


def parse_duration(value: Any) -> float:
    """Parse a duration into float seconds.

    :param value: a number of seconds, or a string such as ``"500ms"``, ``"30s"``, ``"1m"``,
        ``"2h"``, ``"1d"``.
    :returns: the duration in seconds.
    :raises ValueError: if the value is not a positive duration.

    >>> parse_duration("1m"), parse_duration(2.5), parse_duration("250ms")
    (60.0, 2.5, 0.25)
    >>> parse_duration("700ms") == parse_duration("0.7s") == 0.7
    True
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 60, '30s' or '1m', received {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(
                f"expected a duration such as 60, '500ms', '30s', '1m', '2h' or '1d', "
                f"received {value!r}"
            )
        seconds = float(Fraction(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if not seconds > 0:
        raise ValueError(f"expected a positive duration, received {value!r}")
    return seconds


def parse_timestamp(value: Any) -> float:
    """Parse a point in time into float seconds since the epoch.

    :param value: epoch seconds (a number or a numeric string), an ISO-8601 date or time
        (UTC unless it carries an offset), or a :class:`datetime.datetime`.
    :returns: seconds since the epoch.
    :raises ValueError: saying what was expected and what was received.

    >>> parse_timestamp("2024-01-01T00:00:00Z"), parse_timestamp(5), parse_timestamp("5.5")
    (1704067200.0, 5.0, 5.5)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected epoch seconds or an ISO-8601 time, received {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"expected an ISO-8601 time such as '2024-01-01T00:00:00Z' or epoch "
                    f"seconds, received {value!r}"
                ) from None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number of seconds, received {value!r}")
        return float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    raise ValueError(
        f"expected epoch seconds or an ISO-8601 time, received {type(value).__name__} {value!r}"
    )


def parse_pace(value: Any) -> str | float:
    """Parse a replay pace: ``"max"`` (as fast as possible) or a positive speed factor.

    :param value: ``None`` or ``"max"``, or a number (``1.0`` is real time, ``10`` ten times
        faster), also as a string (``"2"``, from a command line or YAML quoted).
    :returns: ``"max"`` or the factor as a float.
    :raises ValueError: saying what was expected and what was received.

    >>> parse_pace(None), parse_pace(2), parse_pace("2"), parse_pace(" 0.5 ")
    ('max', 2.0, 2.0, 0.5)
    """
    if value is None or value == "max":
        return "max"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(
                f"expected 'max' or a positive speed factor, received {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected 'max' or a positive speed factor, received {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"expected 'max' or a positive, finite speed factor, received {value!r}")
    return float(value)


@attrs.frozen(kw_only=True)
class Param:
    """One declared parameter of a definition.

    :param kind: ``"float"``, ``"int"``, ``"str"``, ``"bool"`` or ``"duration"`` (normalised to
        float seconds, so ``60`` and ``"1m"`` give the same feature key).
    :param default: the value used when the config omits it; ``None`` makes it required.
    :param doc: one line shown in errors and in ``featurizer plugins --verbose``.
    :param choices: the allowed values, if the parameter is an enumeration.
    :param minimum: the smallest allowed value for numeric kinds (inclusive).
    """

    kind: str = attrs.field(validator=attrs.validators.in_(_KINDS))
    default: Any = None
    doc: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None

    def normalise(self, value: Any) -> Any:
        """Convert a raw config value to this parameter's canonical value.

        :param value: the raw value from YAML or Python.
        :returns: the canonical value (durations become float seconds).
        :raises ValueError: saying what was expected and what was received.
        """
        if self.kind == "duration":
            result: Any = parse_duration(value)
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"expected a number, received {value!r}")
            result = float(value)
        elif self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected an integer, received {value!r}")
            result = value
        elif self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, received {value!r}")
            result = value
        else:
            if not isinstance(value, str):
                raise ValueError(f"expected a string, received {value!r}")
            result = value
        if self.choices is not None and result not in self.choices:
            raise ValueError(
                f"expected one of {', '.join(map(repr, self.choices))}, received {value!r}"
            )
        if self.minimum is not None and result < self.minimum:
            raise ValueError(f"expected a value >= {self.minimum}, received {value!r}")
        return result


def resolve_params(declared: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``given`` against ``declared`` and fill in defaults.

    :param declared: the definition's parameter declarations.
    :param given: the raw values.
    :returns: canonical values for every declared parameter, in declaration order.
    :raises KeyError: for an unknown parameter (args: the name, the valid names).
    :raises ValueError: for a bad value or a missing required parameter (args: name, reason).
    """
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise KeyError(unknown[0], sorted(declared))
    resolved: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given:
            try:
                resolved[name] = param.normalise(given[name])
            except ValueError as error:
                raise ValueError(name, str(error)) from error
        elif param.default is None:
            raise ValueError(name, f"is required ({param.doc or param.kind})")
        else:
            resolved[name] = param.normalise(param.default)
    return resolved
