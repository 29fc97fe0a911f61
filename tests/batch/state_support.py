"""Comparing per-event state objects (the windows the features keep) field by field."""

from __future__ import annotations

import collections
import math
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, collections.deque):
        return [_plain(v) for v in value]
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):  # in insertion order, NaN keys comparable
        return [(_plain(k), _plain(v)) for k, v in value.items()]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if hasattr(value, "__slots__") and not isinstance(value, int | float | str | bool):
        return state_fields(value)
    return (type(value).__name__, value)


def state_fields(state: Any) -> dict[str, Any]:
    """Every slot of a state object, recursively, as plain comparable data (types included)."""
    slots = [s for cls in type(state).__mro__ for s in getattr(cls, "__slots__", ())]
    return {slot: _plain(getattr(state, slot)) for slot in slots}


def assert_states_equal(batch: Any, live: Any) -> None:
    """The batch-carried state equals the per-event state, slot by slot."""
    if batch is None or live is None:
        assert batch is live
        return
    assert type(batch) is type(live)
    assert state_fields(batch) == state_fields(live)
