"""A WAL write puts a cycle's records in the segment in order, whole, however few bytes each
system call takes, and fails loudly when the segment takes none."""

from __future__ import annotations

import os
from pathlib import Path

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
