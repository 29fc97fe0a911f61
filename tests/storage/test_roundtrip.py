"""Events go into storage and come back bit for bit: every type, every block boundary."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurizer import DataSourceDefinition, Feature, Schema
from featurizer.storage import (
    NUMERIC_ENCODINGS,
    BlockFormat,
    MemoryBasedCompactor,
    SchemaMismatchError,
    Storage,
    StorageError,
    StorageLockedError,
    TimeBasedCompactor,
)
from tests.storage.storage_support import assert_bit_identical, bits


class Everything(DataSourceDefinition):
    """A data source with one field of every storable type."""

    name: ClassVar[str] = "storage_test_everything"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"x": float, "n": int, "s": str, "flag": bool, "levels": tuple}


SOURCE = Feature.create(Everything, {"exchange": "test", "symbol": "S"})

_nan_payloads = st.integers(1, 2**51 - 1).map(
    lambda payload: struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000000 | payload))[0]
)
any_float = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]),
    _nan_payloads,
)
levels = st.lists(st.tuples(any_float, any_float), max_size=4).map(tuple)


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(1, 120))
    ts = draw(st.sampled_from([0.0, 1_704_067_200.0]))
    events = []
    for _ in range(size):
        ts += draw(st.sampled_from([0.0, 0.001, 0.5, 7.0, 3600.0]))
        events.append(
            {
                "timestamp": ts,
                "receipt_timestamp": ts + draw(st.sampled_from([0.0, 1e-3])),
                "x": draw(any_float),
                "n": draw(st.integers(-(2**63), 2**63 - 1)),
                "s": draw(st.text(max_size=6)),
                "flag": draw(st.booleans()),
                "levels": draw(levels),
            }
        )
    return events


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=streams(),
    block_bytes=st.sampled_from([200, 2_000, 10**7]),
    by_time=st.booleans(),
    numeric_encoding=st.sampled_from(NUMERIC_ENCODINGS),
)
def test_every_value_round_trips_bit_for_bit(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[dict[str, Any]],
    block_bytes: int,
    by_time: bool,
    numeric_encoding: str,
) -> None:
    root = tmp_path_factory.mktemp("roundtrip")
    compactor = (
        TimeBasedCompactor(bucket=10.0, max_block_bytes=block_bytes)
        if by_time
        else MemoryBasedCompactor(max_block_bytes=block_bytes)
    )
    block_format = BlockFormat(numeric_encoding=numeric_encoding)
    with Storage(root, block_format=block_format) as storage:
        with storage.writer([SOURCE], compactor=compactor, sync_interval=0.01) as writer:
            record = writer.event_callback(SOURCE)
            for event in events:
                record(event)
        got = storage.read_events(SOURCE)
        assert_bit_identical(got, events, "round trip")
        assert all(list(event) == list(events[0]) for event in got), "key order changed"
        assert all(type(e["levels"]) is tuple for e in got)
        assert all(type(level) is tuple for e in got for level in e["levels"])
        report = storage.verify()
        assert report.ok, report.problems
        assert report.rows == len(events)
        blocks = storage.catalog.blocks(SOURCE.key)
        assert sum(b.rows for b in blocks) == len(events)
        if by_time:
            for block in blocks:
                assert math.floor(block.start_ts / 10.0) == math.floor(block.end_ts / 10.0), block
        for block in blocks:
            assert numeric_encodings(root / block.path) == (
                {"BYTE_STREAM_SPLIT", "DELTA_BINARY_PACKED"}
                if numeric_encoding == "split"
                else set()
            )


def numeric_encodings(path: Path) -> set[str]:
    """The non-default encodings of a block's float and integer columns."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    found = set()
    for group in range(metadata.num_row_groups):
        for index in range(metadata.num_columns):
            column = metadata.row_group(group).column(index)
            if column.physical_type in ("DOUBLE", "INT64"):
                found |= set(column.encodings) & {"BYTE_STREAM_SPLIT", "DELTA_BINARY_PACKED"}
    return found


def test_an_unknown_numeric_encoding_is_refused_naming_the_choices() -> None:
    with pytest.raises(
        ValueError, match="unknown numeric_encoding 'gorilla'; use one of split, plain"
    ):
        BlockFormat(numeric_encoding="gorilla")


def test_nan_payload_and_negative_zero_survive(tmp_path: Path) -> None:
    nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8DEADBEEF0001))[0]
    event = {
        "timestamp": 1.0,
        "receipt_timestamp": 1.0,
        "x": nan,
        "n": -(2**63),
        "s": "ünïcødé ✓",
        "flag": False,
        "levels": ((-0.0, 5e-324),),
    }
    with Storage(tmp_path) as storage:
        with storage.writer([SOURCE]) as writer:
            writer.append(SOURCE, event)
        (got,) = storage.read_events(SOURCE)
    assert struct.pack("<d", got["x"]) == struct.pack("<d", nan)
    assert bits(got) == bits(event)


def test_key_order_of_the_first_event_is_kept(tmp_path: Path) -> None:
    events = [
        {
            "levels": (),
            "flag": True,
            "s": "a",
            "n": 1,
            "x": 1.5,
            "receipt_timestamp": 2.0,
            "timestamp": 1.0,
        },
        {
            "timestamp": 2.0,
            "receipt_timestamp": 2.0,
            "x": 2.5,
            "n": 2,
            "s": "b",
            "flag": False,
            "levels": ((1.0, 2.0),),
        },
    ]
    with Storage(tmp_path) as storage:
        with storage.writer([SOURCE]) as writer:
            for event in events:
                writer.append(SOURCE, event)
        got = storage.read_events(SOURCE)
    assert [list(e) for e in got] == [list(events[0])] * 2
    assert_bit_identical(got, events, "key order")


def test_empty_tuples_before_the_first_level_get_a_type_later(tmp_path: Path) -> None:
    base = {"receipt_timestamp": 0.0, "x": 1.0, "n": 1, "s": "", "flag": True}
    early = [{**base, "timestamp": float(i), "levels": ()} for i in range(5)]
    late = [{**base, "timestamp": 10.0 + i, "levels": ((1.0, 2.0), (0.5, 3.0))} for i in range(5)]
    with Storage(tmp_path) as storage:
        with storage.writer([SOURCE], compactor=MemoryBasedCompactor(max_block_bytes=100)) as w:
            for event in early:
                w.append(SOURCE, event)
            w.sync()
            for event in late:
                w.append(SOURCE, event)
        assert_bit_identical(storage.read_events(SOURCE), early + late, "typed later")
        assert storage.verify().ok


def test_one_block_of_untyped_and_typed_cycles_reads_back(tmp_path: Path) -> None:
    """A block whose first WAL cycle had only empty tuples (no type yet) and whose later one
    has levels: the block's batches differ in type and are cast to the series' type."""
    base = {"receipt_timestamp": 0.0, "x": 1.0, "n": 1, "s": "", "flag": True}
    early = [{**base, "timestamp": float(i), "levels": ()} for i in range(5)]
    late = [{**base, "timestamp": 10.0 + i, "levels": ((1.0, 2.0), (0.5, 3.0))} for i in range(5)]
    with Storage(tmp_path) as storage:
        with storage.writer([SOURCE]) as writer:
            for event in early:
                writer.append(SOURCE, event)
            writer.sync()
            for event in late:
                writer.append(SOURCE, event)
        assert len(storage.catalog.blocks(SOURCE.key)) == 1
        assert_bit_identical(storage.read_events(SOURCE), early + late, "one block")
        assert storage.verify().ok


def test_events_not_matching_the_schema_are_refused_naming_the_series(tmp_path: Path) -> None:
    good = {
        "timestamp": 1.0,
        "receipt_timestamp": 1.0,
        "x": 1.0,
        "n": 1,
        "s": "",
        "flag": True,
        "levels": (),
    }
    with Storage(tmp_path) as storage:
        writer = storage.writer([SOURCE])
        writer.append(SOURCE, good)
        with pytest.raises(SchemaMismatchError, match="storage_test_everything") as error:
            writer.append(SOURCE, {**good, "x": "not a float"})
        assert "field 'x' (float)" in str(error.value) and "'not a float'" in str(error.value)
        with pytest.raises(StorageError, match="failed"):
            writer.stop()
        assert isinstance(writer.failure(), SchemaMismatchError)
        for bad, words in (
            ({**good, "surprise": 1}, "not in the schema: ['surprise']"),
            ({k: v for k, v in good.items() if k != "n"}, "missing: ['n']"),
            ({**good, "n": 2**70}, "field 'n' (int)"),
            ({**good, "levels": 5}, "field 'levels'"),
        ):
            writer = storage.writer([SOURCE])
            try:
                writer.append(SOURCE, bad)
                writer.sync()
            except StorageError as raised:
                assert words in str(raised), (words, str(raised))
                assert "storage_test_everything" in str(raised)
            else:
                raise AssertionError(f"{bad!r} was accepted")
            with pytest.raises(StorageError):
                writer.stop()
        assert_bit_identical(storage.read_events(SOURCE), [good], "only the good event")


def test_one_writer_per_root(tmp_path: Path) -> None:
    with Storage(tmp_path) as storage, storage.writer([SOURCE]):
        with pytest.raises(StorageLockedError, match="another process"):
            storage.writer([SOURCE])
        with pytest.raises(StorageLockedError):
            storage.recover()
