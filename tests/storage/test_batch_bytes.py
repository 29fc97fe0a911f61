"""The size a WAL cycle's batch is counted with (open blocks, compactors) is pyarrow's
``nbytes``, up to one offset per offsets buffer, for every batch the cycle builds: numeric
columns from buffers or sliced from a cycle's arrival numbers, other columns whole."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurizer.storage._writer import recorded_bytes

pa = pytest.importorskip("pyarrow")

FLOATS = st.floats(allow_nan=True, allow_infinity=True)
NUMERIC = {"float": (pa.float64(), FLOATS), "int": (pa.int64(), st.integers(-(2**63), 2**63 - 1))}
WHOLE = {
    "bool": (pa.bool_(), st.booleans(), 0),
    "string": (pa.string(), st.text(max_size=5), 1),
    "levels": (
        pa.list_(pa.list_(pa.float64())),
        st.lists(st.lists(FLOATS, min_size=2, max_size=2), max_size=3),
        2,
    ),
}


@settings(max_examples=200, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(sorted([*NUMERIC, *WHOLE])), min_size=1, max_size=6),
    rows=st.integers(0, 40),
    data=st.data(),
)
def test_a_cycles_batch_is_counted_as_nbytes(
    kinds: list[str], rows: int, data: st.DataObject
) -> None:
    columns = []
    offsets = 0
    for kind in kinds:
        if kind in NUMERIC:
            data_type, values = NUMERIC[kind]
            before, after = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
            size = before + rows + after
            whole = pa.array(data.draw(st.lists(values, min_size=size, max_size=size)), data_type)
            if data.draw(st.booleans()):  # (as the arrival numbers: a slice of the cycle's)
                columns.append(whole.slice(before, rows))
            else:  # (as the recorder's columns: straight from a buffer)
                columns.append(
                    pa.Array.from_buffers(
                        data_type, rows, [None, whole.buffers()[1]], offset=before
                    )
                )
        else:
            data_type, values, offset_buffers = WHOLE[kind]
            columns.append(
                pa.array(data.draw(st.lists(values, min_size=rows, max_size=rows)), data_type)
            )
            offsets += offset_buffers
    batch = pa.RecordBatch.from_arrays(columns, names=[f"c{i}" for i in range(len(columns))])
    assert recorded_bytes(batch) == batch.nbytes + 4 * offsets
