"""The recording hot path: column buffers take every good event whole, and a malformed event
(refused with an error) leaves nothing behind, whatever field of it is wrong."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurizer.storage._codec import EventEncoder, require_pyarrow
from featurizer.storage._columns import ColumnBuffer
from featurizer.storage._errors import SchemaMismatchError

FIELDS = [
    ("timestamp", "float"),
    ("receipt_timestamp", "float"),
    ("count", "int"),
    ("price", "float"),
    ("side", "str"),
    ("level", "int"),
    ("flag", "bool"),
]
BAD = {"float": "x", "int": 2.5, "str": None, "bool": None}


def _event(i: int) -> dict[str, object]:
    return {
        "timestamp": float(i),
        "receipt_timestamp": i + 0.5,
        "count": i * 7,
        "price": -i / 3,
        "side": "buy" if i % 2 else "sell",
        "level": -i,
        "flag": i % 3 == 0,
    }


@settings(max_examples=60, deadline=None)
@given(plan=st.lists(st.one_of(st.none(), st.sampled_from([n for n, k in FIELDS if k != "str"]))))
def test_a_refused_event_leaves_nothing_behind(plan: list[str | None]) -> None:
    """``plan``: per event, ``None`` (a good one) or the field given a wrong type."""
    pa = require_pyarrow()
    schema = dict(FIELDS)
    buffer = ColumnBuffer("s", FIELDS, EventEncoder("s", schema, None))
    order: list[int] = []
    failures: list[BaseException] = []
    record = buffer.recorder(0, order, 10**9, lambda: None, failures.append)
    good = []
    for i, wrong in enumerate(plan):
        event = _event(i)
        if wrong is None:
            record(event)
            good.append(event)
            continue
        event[wrong] = BAD[schema[wrong]]
        if schema[wrong] == "bool":  # a bool column takes any object until it is encoded
            continue
        with pytest.raises(SchemaMismatchError, match=wrong):
            record(event)
    assert len(order) == len(good)
    batch = buffer.take(len(good), pa.array(range(len(good)), type=pa.int64()))
    got = batch.to_pylist()
    for row in got:
        del row["__seq__"]
    assert got == good
    assert all(not math.isnan(row["price"]) for row in got)
