"""Where ``featurizer run`` writes its rows: stdout, JSON Lines or Parquet files.

File sinks write to a temporary name next to the target and rename it into place on
:meth:`close`, so a crashed run never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO

from featurizer._errors import FeaturizerError
from featurizer._events import GroupedNamedDataEvent

__all__ = [
    "JsonLinesSink",
    "ParquetRowWriter",
    "ParquetSink",
    "Sink",
    "check_output_file",
    "encode_json",
    "flatten_grouped",
    "require_pyarrow",
]

_TIMESTAMPS = ("timestamp", "receipt_timestamp")


class Sink(Protocol):
    """Receives output rows; ``close(ok)`` publishes (``ok=True``) or discards the output."""

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Write one output row."""

    def close(self, ok: bool = True) -> None:
        """Flush and publish the output (or discard it when ``ok`` is false)."""


def flatten_grouped(grouped: GroupedNamedDataEvent) -> dict[str, Any]:
    """One flat row per combined output: ``timestamp`` then ``<feature>.<field>`` columns.

    ``timestamp`` is the latest output timestamp, i.e. the time of the input that caused it.

    >>> from featurizer.testing import ExampleTicker
    >>> from featurizer import Feature
    >>> f = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"}, name="t")
    >>> flatten_grouped(((f, {"timestamp": 2.0, "receipt_timestamp": 2.5, "bid": 1.0}),))
    {'timestamp': 2.0, 't.bid': 1.0}
    """
    try:
        row: dict[str, Any] = {"timestamp": max(event["timestamp"] for _, event in grouped)}
    except (KeyError, TypeError):
        from featurizer._graph import check_output_event

        for feature, event in grouped:
            check_output_event(feature, event)
        raise
    for feature, event in grouped:
        prefix = feature.name
        for field, value in event.items():
            if field not in _TIMESTAMPS:
                row[f"{prefix}.{field}"] = value
    return row


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def check_output_file(path: str | Path) -> Path:
    """Fail before any work if ``path`` cannot become an output file.

    :param path: the requested output file, as the user spelled it.
    :returns: the path.
    :raises FeaturizerError: if it is (or, ending with ``/``, names) a directory, or its
        directory is missing or read-only.
    """
    spelled = str(path)
    target = Path(path)
    if target.is_dir() or spelled.endswith(("/", os.sep)):
        raise FeaturizerError(
            f"cannot write {spelled!r}: it is a directory; give a file name such as "
            f"{str(target / 'features.jsonl')!r}"
        )
    _check_writable(target)
    return target


def _check_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FeaturizerError(
            f"cannot write {str(path)!r}: directory {str(parent)!r} does not exist"
        )
    if not os.access(parent, os.W_OK):
        raise FeaturizerError(
            f"cannot write {str(path)!r}: directory {str(parent)!r} is not writable"
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON")


encode_json = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
"""Encode a value exactly as :class:`JsonLinesSink` writes it (compact, tuples as lists)."""


class JsonLinesSink:
    """Writes one JSON object per row to stdout (``path=None``) or to a file.

    :param path: the target file, or ``None`` for standard output.
    """

    def __init__(self, path: str | Path | None) -> None:
        self._path = check_output_file(path) if path is not None else None
        self._stream: TextIO
        if self._path is None:
            self._stream = sys.stdout
            self._tmp: Path | None = None
        else:
            self._tmp = _temporary_path(self._path)
            self._stream = self._tmp.open("w", encoding="utf-8")
        self._dumps = encode_json

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Write one row as a JSON line."""
        self._stream.write(self._dumps(row))
        self._stream.write("\n")

    def write_text(self, text: str) -> None:
        """Write one row already encoded as :data:`encode_json` encodes it (one JSON object,
        without its newline): scaled runs join rows from parts their workers encoded."""
        self._stream.write(text)
        self._stream.write("\n")

    def close(self, ok: bool = True) -> None:
        """Flush; for a file, fsync and rename into place (or delete when ``ok`` is false)."""
        if self._tmp is None:
            self._stream.flush()
            return
        if self._stream.closed:
            return
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
        if ok:
            assert self._path is not None
            os.replace(self._tmp, self._path)
        else:
            self._tmp.unlink(missing_ok=True)


class ParquetRowWriter:
    """Writes rows to one Parquet file in row groups of ``batch_rows`` (needs ``pyarrow``).

    The schema is inferred from the first row group; later rows are converted to it. The
    file is written in place: :class:`ParquetSink` points it at a temporary name, the
    checkpointed sink at a segment.

    :param path: the file written.
    :param batch_rows: rows buffered per row group.
    """

    def __init__(self, path: Path, batch_rows: int = 65_536) -> None:
        self.path = path
        self.rows = 0
        self._batch_rows = batch_rows
        self._buffer: list[Mapping[str, Any]] = []
        self._writer: Any = None

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Buffer one row; a full buffer becomes a row group."""
        self._buffer.append(row)
        self.rows += 1
        if len(self._buffer) >= self._batch_rows:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._buffer:
            return
        if self._writer is None:
            table = pa.Table.from_pylist(self._buffer)
            self._writer = pq.ParquetWriter(self.path, table.schema)
        else:
            table = pa.Table.from_pylist(self._buffer, schema=self._writer.schema)
        self._writer.write_table(table)
        self._buffer = []

    def finish(self) -> None:
        """Write the last row group, close and fsync the file (a file without rows has an
        empty schema)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._flush()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, pa.schema([]))
        self._writer.close()
        with open(self.path, "rb") as handle:
            os.fsync(handle.fileno())

    def abandon(self) -> None:
        """Close and delete the file."""
        if self._writer is not None:
            self._writer.close()
        self.path.unlink(missing_ok=True)


def require_pyarrow() -> None:
    """:raises FeaturizerError: if ``pyarrow`` (needed to write Parquet) is missing."""
    try:
        import pyarrow  # noqa: F401
    except ImportError as error:
        raise FeaturizerError(
            "writing Parquet needs pyarrow: pip install pyarrow (or write .jsonl)"
        ) from error


class ParquetSink:
    """Writes rows to a Parquet file in row groups of ``batch_rows`` (needs ``pyarrow``).

    :param path: the target file.
    :param batch_rows: rows buffered per row group.
    """

    def __init__(self, path: str | Path | None, batch_rows: int = 65_536) -> None:
        if path is None:
            raise FeaturizerError("the parquet sink needs an output file: pass --out FILE.parquet")
        require_pyarrow()
        self._path = check_output_file(path)
        self._file = ParquetRowWriter(_temporary_path(self._path), batch_rows)
        self._closed = False

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Buffer one row; a full buffer becomes a row group."""
        self._file.write_row(row)

    def close(self, ok: bool = True) -> None:
        """Write the last row group, then rename into place (or delete when ``ok`` is false)."""
        if self._closed:
            return
        self._closed = True
        if ok:
            self._file.finish()
            os.replace(self._file.path, self._path)
        else:
            self._file.abandon()
