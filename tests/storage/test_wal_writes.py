"""A WAL write puts a cycle's records in the segment in order, whole, however few bytes each
system call takes, and fails loudly when the segment takes none; a record's payload is the
Arrow stream a stream writer writes, byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurizer.storage import _wal


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(st.binary(max_size=40), max_size=1100),
    most=st.integers(1, 64),
)
def test_every_byte_lands_in_order_whatever_each_writev_takes(
    tmp_path_factory: pytest.TempPathFactory, records: list[bytes], most: int
) -> None:
    path = tmp_path_factory.mktemp("wal") / "segment"
    calls = []

    def partial_writev(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        return os.write(fd, b"".join(bytes(b) for b in buffers)[:most])

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    real = _wal.os.writev
    _wal.os.writev = partial_writev  # type: ignore[assignment]
    try:
        _wal._write_all(fd, records)
    finally:
        _wal.os.writev = real  # type: ignore[assignment]
        os.close(fd)
    assert path.read_bytes() == b"".join(records)
    assert all(count <= 1024 for count in calls)


def test_a_segment_taking_nothing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_wal.os, "writev", lambda fd, buffers: 0)
    with open(tmp_path / "segment", "ab") as handle, pytest.raises(OSError, match="none"):
        _wal._write_all(handle.fileno(), [b"record"])


_COLUMNS = {
    "float": (pa.float64(), st.floats(allow_nan=True)),
    "int": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "str": (pa.string(), st.text(max_size=5) | st.none()),
    "levels": (
        pa.list_(pa.struct([("price", pa.float64()), ("size", pa.float64())])),
        st.lists(st.fixed_dictionaries({"price": st.floats(), "size": st.floats()}), max_size=3),
    ),
}


@settings(max_examples=40, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(sorted(_COLUMNS)), min_size=1, max_size=4),
    rows=st.integers(0, 20),
    metadata=st.none() | st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    data=st.data(),
)
def test_a_record_payload_is_the_stream_an_arrow_stream_writer_writes(
    tmp_path_factory: pytest.TempPathFactory,
    kinds: list[str],
    rows: int,
    metadata: dict[str, str] | None,
    data: st.DataObject,
) -> None:
    columns = [
        pa.array(
            data.draw(st.lists(_COLUMNS[kind][1], min_size=rows, max_size=rows)), _COLUMNS[kind][0]
        )
        for kind in kinds
    ]
    names = [f"{kind}{i}" for i, kind in enumerate(kinds)]
    batch = pa.RecordBatch.from_arrays(columns, names=names).replace_schema_metadata(metadata)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_batch(batch)
    meta = {"series": "s", "session": "x", "first_seq": 0, "cycle_first": 0, "cycle_rows": rows}
    path = tmp_path_factory.mktemp("wal") / "x-000000.wal"
    path.write_bytes(_wal.encode_record(batch, meta))
    (record,) = _wal.scan_segment(path)
    assert isinstance(record, _wal.WalRecord)
    assert path.read_bytes().endswith(sink.getvalue().to_pybytes())
    got = _wal.read_batch(path, record)  # (bit for bit: NaN payloads included)
    assert got.schema.equals(batch.schema, check_metadata=True)
    assert got.serialize().to_pybytes() == batch.serialize().to_pybytes()
