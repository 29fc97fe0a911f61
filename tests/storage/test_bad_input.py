"""Damaged storage: clear errors naming the series, the block and the path; never wrong rows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import pytest

from featurizer import DataSourceDefinition, Feature, Schema
from featurizer.cli import main
from featurizer.storage import (
    CorruptBlockError,
    MemoryBasedCompactor,
    MissingBlockError,
    SchemaMismatchError,
    Storage,
    StorageError,
)
from featurizer.storage._blocks import encode_block
from featurizer.storage._files import checksum
from featurizer.testing import ExampleTicker
from tests.storage.test_writer import TICKER, store, ticks


def _damaged_root(tmp_path: Path) -> tuple[Storage, list]:
    storage = Storage(tmp_path)
    store(
        storage,
        ticks(1_704_067_200.0, 3_000),
        compactor=MemoryBasedCompactor(max_block_bytes=20_000),
    )
    blocks = storage.catalog.blocks(TICKER.key)
    assert len(blocks) >= 4
    return storage, blocks


def _consume(storage: Storage) -> list:
    replay = storage.replay([TICKER], holes="ignore", segment_rows=64)
    got = []
    with pytest.raises(StorageError) as error:
        for _, event in replay.events():
            got.append(event)
    return [error.value, got]


def test_a_flipped_byte_is_a_checksum_error(tmp_path: Path) -> None:
    storage, blocks = _damaged_root(tmp_path)
    victim = blocks[2]
    path = tmp_path / victim.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    error, got = _consume(storage)
    assert isinstance(error, CorruptBlockError)
    assert error.series is not None and "example_ticker.x.S" in error.series
    assert error.block == victim.id and error.path == str(path)
    assert "checksum mismatch" in str(error) and str(path) in str(error)
    assert len(got) == sum(b.rows for b in blocks[:2])
    assert [e["timestamp"] for e in got] == [
        e["timestamp"] for e in ticks(1_704_067_200.0, len(got))
    ]
    with pytest.raises(CorruptBlockError, match="checksum"):
        storage.read_events(TICKER)
    report = storage.verify()
    assert not report.ok
    (problem,) = [p for p in report.problems if p.severe]
    assert problem.kind == "corrupt" and problem.block == victim.id and problem.path == str(path)
    storage.close()


def test_a_truncated_block(tmp_path: Path) -> None:
    storage, blocks = _damaged_root(tmp_path)
    path = tmp_path / blocks[0].path
    path.write_bytes(path.read_bytes()[:100])
    error, got = _consume(storage)
    assert isinstance(error, CorruptBlockError) and got == []
    assert "truncated" in str(error) and str(path) in str(error)
    assert storage.verify().problems[0].kind == "corrupt"
    storage.close()


def test_garbage_with_a_matching_checksum_is_not_parquet(tmp_path: Path) -> None:
    storage, blocks = _damaged_root(tmp_path)
    victim = blocks[1]
    path = tmp_path / victim.path
    garbage = os.urandom(victim.bytes)
    path.write_bytes(garbage)
    with storage.catalog.transaction() as db:
        db.execute("UPDATE blocks SET checksum = ? WHERE id = ?", (checksum(garbage), victim.id))
    error, _ = _consume(storage)
    assert isinstance(error, CorruptBlockError) and "not a readable Parquet file" in str(error)
    assert error.block == victim.id
    storage.close()


def test_a_catalog_row_pointing_at_a_missing_file(tmp_path: Path) -> None:
    storage, blocks = _damaged_root(tmp_path)
    path = tmp_path / blocks[3].path
    path.unlink()
    with pytest.raises(MissingBlockError) as error:
        storage.replay([TICKER])
    assert error.value.block == blocks[3].id and error.value.path == str(path)
    assert "does not exist" in str(error.value) and "example_ticker.x.S" in str(error.value)
    report = storage.verify()
    assert [p.kind for p in report.problems if p.severe] == ["missing"]
    storage.close()


def test_a_block_with_another_schema(tmp_path: Path) -> None:
    import pyarrow as pa

    storage, blocks = _damaged_root(tmp_path)
    victim = blocks[1]
    wrong = pa.table(
        {
            "timestamp": [1.0],
            "receipt_timestamp": [1.0],
            "bid": ["x"],
            "ask": [2.0],
            "__seq__": [victim.min_seq],
        }
    )
    series = storage.find_series(TICKER)
    data = encode_block(wrong, series, storage.format, {})
    path = tmp_path / victim.path
    path.write_bytes(data.to_pybytes())
    with storage.catalog.transaction() as db:
        db.execute(
            "UPDATE blocks SET checksum = ?, bytes = ?, rows = 1 WHERE id = ?",
            (checksum(data.to_pybytes()), data.size, victim.id),
        )
    error, got = _consume(storage)
    assert isinstance(error, SchemaMismatchError)
    assert "column 'bid' has type string but the series stores double" in str(error)
    assert error.block == victim.id and error.path == str(path)
    assert len(got) == blocks[0].rows
    assert any(p.kind == "schema" for p in storage.verify().problems)
    storage.close()


class ChangedTicker(DataSourceDefinition):
    """Same name (hence the same keys) as ExampleTicker, another schema."""

    name: ClassVar[str] = "example_ticker"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"bid": float, "ask": float, "venue": str}


def test_a_definition_whose_schema_changed(tmp_path: Path) -> None:
    storage, blocks = _damaged_root(tmp_path)
    changed = Feature.create(ChangedTicker, dict(TICKER.params))
    assert changed.key == TICKER.key
    with pytest.raises(SchemaMismatchError) as error:
        storage.replay([changed])
    text = str(error.value)
    assert "example_ticker.x.S" in text and "'venue': 'str'" in text
    assert error.value.path == str(tmp_path / blocks[0].path)
    with pytest.raises(SchemaMismatchError, match="now declares"):
        storage.writer([changed])
    (problem,) = storage.check_definitions([changed, TICKER])
    assert problem.kind == "schema" and problem.block == blocks[0].id
    assert problem.path == str(tmp_path / blocks[0].path) and "'venue'" in problem.message
    storage.close()


def test_storage_verify_checks_the_config_definitions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, blocks = _damaged_root(tmp_path / "root")
    storage.close()
    config = tmp_path / "changed.yaml"
    config.write_text(
        "feature_configs:\n"
        "  - feature_definition: tests.storage.test_bad_input:ChangedTicker\n"
        "    params: {exchange: x, symbol: S}\n"
    )
    assert main(["storage", "verify", "--storage", str(tmp_path / "root")]) == 0
    capsys.readouterr()
    code = main(["storage", "verify", "--config", str(config), "--storage", str(tmp_path / "root")])
    captured = capsys.readouterr()
    assert code == 1
    assert "error: schema: series 'example_ticker.x.S" in captured.err
    assert str(tmp_path / "root" / blocks[0].path) in captured.err


def test_storage_verify_command_reports_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, blocks = _damaged_root(tmp_path)
    assert main(["storage", "verify", "--storage", str(tmp_path)]) == 0
    (tmp_path / blocks[0].path).unlink()
    storage.close()
    capsys.readouterr()
    assert main(["storage", "verify", "--storage", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out
    assert (
        f"block {blocks[0].id}" in captured.err and str(tmp_path / blocks[0].path) in captured.err
    )
    assert "example_ticker.x.S" in captured.err


def test_not_a_storage_root(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no featurizer storage here"):
        Storage.open(tmp_path / "nothing")
    (tmp_path / "catalog.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"catalog.*not a.*database"):
        Storage.open(tmp_path)


def test_example_ticker_is_what_the_fixture_stores() -> None:
    assert TICKER.definition is ExampleTicker
