"""The event model.

An :data:`Event` is a plain ``dict``: ``timestamp`` and ``receipt_timestamp`` (float seconds since
the epoch) plus the fields of its definition's :meth:`~featurizer.DataDefinition.event_schema`.
A dict was chosen by measurement (``benchmarks/event_representation.py``): it is the cheapest
mapping to build and to read on the per-event hot path, cheaper than a frozen slotted class or a
named tuple wrapped as a mapping. Events are validated where they enter the system (emitters,
recorded data, tests), never at every node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from featurizer._errors import EventValidationError

if TYPE_CHECKING:
    from featurizer._feature import Feature

__all__ = [
    "TIMESTAMP_FIELDS",
    "Event",
    "GroupedNamedDataEvent",
    "NamedDataEvent",
    "Schema",
    "full_schema",
    "validate_event",
]

Event: TypeAlias = dict[str, Any]
"""One event: a dict with ``timestamp``, ``receipt_timestamp`` and the schema's fields."""

NamedDataEvent: TypeAlias = "tuple[Feature, Event]"
"""An event together with the feature (data source or feature node) that produced it."""

GroupedNamedDataEvent: TypeAlias = "tuple[NamedDataEvent, ...]"
"""The latest event of every output feature, in :meth:`FeatureStreamGraph.get_outs` order."""

Schema: TypeAlias = Mapping[str, type]
"""Field name to Python type. ``float`` fields accept ``int`` values too."""

TIMESTAMP_FIELDS: Schema = {"timestamp": float, "receipt_timestamp": float}


def full_schema(schema: Schema) -> dict[str, type]:
    """Return ``schema`` with the two timestamp fields every event carries prepended.

    :param schema: a definition's own fields.
    :returns: a new dict, timestamps first.
    """
    return {**TIMESTAMP_FIELDS, **schema}


def _matches(value: Any, expected: type) -> bool:
    if expected is float:
        return (type(value) is float or type(value) is int) and math.isfinite(value)
    if expected is int:
        return type(value) is int
    return isinstance(value, expected)


def validate_event(event: Any, schema: Schema, *, origin: str) -> Event:
    """Check that ``event`` carries every field of ``schema`` (timestamps included) with its type.

    Used at the boundaries (emitters, recorded data), not at every node.

    :param event: the candidate event.
    :param schema: the definition's own schema (timestamps are added).
    :param origin: what produced the event, for the error message (e.g. a data source's name).
    :returns: the event, unchanged.
    :raises EventValidationError: naming the origin, the field, the expected and received type.

    >>> validate_event({"timestamp": 1.0, "receipt_timestamp": 1.0, "bid": 1.0},
    ...                {"bid": float}, origin="ticker")["bid"]
    1.0
    """
    if not isinstance(event, Mapping):
        raise EventValidationError(
            f"{origin}: expected an event mapping, received {type(event).__name__} {event!r}",
            event=event,
        )
    for field, expected in full_schema(schema).items():
        if field not in event:
            raise EventValidationError(
                f"{origin}: event is missing field {field!r} (expected fields: "
                f"{', '.join(map(repr, full_schema(schema)))}); received {event!r}",
                event=event,
            )
        value = event[field]
        if not _matches(value, expected):
            raise EventValidationError(
                f"{origin}: field {field!r} expected a finite {expected.__name__}, received "
                f"{type(value).__name__} {value!r}",
                event=event,
            )
    return event if isinstance(event, dict) else dict(event)
