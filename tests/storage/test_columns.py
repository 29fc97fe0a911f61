"""The recording hot path: column buffers take every good event whole, and a malformed event
(refused with an error) leaves nothing behind, whatever field of it is wrong."""

from __future__ import annotations

import math
import struct
from array import array

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


class _Floaty:
    """A value with ``__float__`` and ``__index__`` (as numpy scalars have)."""

    def __float__(self) -> float:
        return 2.5

    def __index__(self) -> int:
        return 7


_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=2),
    st.just(_Floaty()),
    st.integers(1, 2**51 - 1).map(
        lambda payload: struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000000 | payload))[0]
    ),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.tuples(_VALUES, _VALUES), min_size=1, max_size=6))
def test_numeric_fields_are_taken_exactly_when_an_array_takes_them(
    values: list[tuple[object, object]],
) -> None:
    """The recorder packs numeric fields with ``struct``: it must accept and refuse exactly
    what ``array('d')``/``array('q')`` do, and store the same bits (NaN payloads, -0.0)."""
    pa = require_pyarrow()
    fields = [("timestamp", "float"), ("receipt_timestamp", "float"), ("x", "float"), ("n", "int")]
    buffer = ColumnBuffer("s", fields, EventEncoder("s", dict(fields), None))
    order: list[int] = []
    record = buffer.recorder(0, order, 10**9, lambda: None, lambda error: None)
    floats, ints = array("d"), array("q")
    for x, n in values:
        event = {"timestamp": 1.0, "receipt_timestamp": 2.0, "x": x, "n": n}
        try:
            expected_floats = array("d", [1.0, 2.0, x])  # type: ignore[list-item]
            expected_ints = array("q", [n])  # type: ignore[list-item]
        except (TypeError, OverflowError, ValueError):
            with pytest.raises(SchemaMismatchError, match="cannot be stored"):
                record(event)
            continue
        record(event)
        floats.extend(expected_floats)
        ints.extend(expected_ints)
    assert buffer.buffers["float"].tobytes() == floats.tobytes()
    assert buffer.buffers["int"].tobytes() == ints.tobytes()
    batch = buffer.take(len(order), pa.array(range(len(order)), type=pa.int64()))
    column = batch.column("x")  # (the bits, NaN payloads included: a slice of the buffer)
    stored = column.buffers()[1].to_pybytes()[8 * column.offset : 8 * (column.offset + len(order))]
    assert stored == floats[2::3].tobytes()
