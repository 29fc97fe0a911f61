"""The write-ahead log: what a recorder acknowledged but has not yet published as blocks.

A segment file is a sequence of records. Each record holds events of one series as an Arrow
IPC stream (schema and one record batch) behind a fixed header::

    magic "FZW1" | header length (u32) | payload length (u64) | CRC-32 (u32) | header | payload

where the header is JSON (series key, session, rows, first and last arrival number) and the
CRC covers header and payload. The writer appends the records of one flush and fsyncs the
segment: from then on the events are *acknowledged*. A record cut short by a crash (or with a
wrong CRC) ends the readable part of its segment; everything before it is recovered.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from featurizer.storage._codec import require_pyarrow
from featurizer.storage._files import fsync_dir

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["WalRecord", "WalSegmentReport", "WalWriter", "read_segment", "segments"]

MAGIC = b"FZW1"
_HEADER = struct.Struct("<4sIQI")


@attrs.frozen(kw_only=True)
class WalRecord:
    """One record: events of one series.

    :param series: the series key.
    :param session: the session that wrote it.
    :param first_seq: the arrival number of its first event.
    :param last_seq: the arrival number of its last event.
    :param batch: the events (one column per field plus the arrival numbers).
    """

    series: str
    session: str
    first_seq: int
    last_seq: int
    batch: Any


@attrs.frozen(kw_only=True)
class WalSegmentReport:
    """What reading a segment found.

    :param path: the segment file.
    :param records: complete records read.
    :param valid_bytes: bytes up to the end of the last complete record.
    :param size: the file's size.
    :param problem: why reading stopped before the end (torn or corrupt record), if it did.
    """

    path: str
    records: int
    valid_bytes: int
    size: int
    problem: str | None


def segments(wal_dir: Path) -> list[Path]:
    """The segment files of a WAL directory, oldest first."""
    if not wal_dir.is_dir():
        return []
    return sorted(wal_dir.glob("*.wal"))


def encode_record(series: str, session: str, batch: pa.RecordBatch, first_seq: int) -> bytes:
    """Frame one record (see the module docs)."""
    pa = require_pyarrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_batch(batch)
    payload = sink.getvalue()
    header = json.dumps(
        {
            "series": series,
            "session": session,
            "rows": batch.num_rows,
            "first_seq": first_seq,
            "last_seq": first_seq + batch.num_rows - 1,
        },
        sort_keys=True,
    ).encode("utf-8")
    crc = zlib.crc32(payload, zlib.crc32(header))
    return b"".join((_HEADER.pack(MAGIC, len(header), payload.size, crc), header, payload))


def read_segment(path: Path) -> tuple[list[WalRecord], WalSegmentReport]:
    """Read every complete record of a segment.

    :param path: the segment file.
    :returns: the records, and a report saying where (and why) reading stopped.
    """
    pa = require_pyarrow()
    data = path.read_bytes()
    records: list[WalRecord] = []
    offset = 0
    problem: str | None = None
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            problem = f"torn record header at byte {offset}"
            break
        magic, header_len, payload_len, crc = _HEADER.unpack_from(data, offset)
        if magic != MAGIC:
            problem = f"bad record magic at byte {offset}"
            break
        start = offset + _HEADER.size
        end = start + header_len + payload_len
        if end > len(data):
            wanted = header_len + payload_len
            problem = f"torn record at byte {offset} ({len(data) - start} of {wanted} bytes)"
            break
        header = data[start : start + header_len]
        payload = data[start + header_len : end]
        if zlib.crc32(payload, zlib.crc32(header)) != crc:
            problem = f"CRC mismatch in the record at byte {offset}"
            break
        try:
            meta = json.loads(header)
            reader = pa.ipc.open_stream(pa.py_buffer(payload))
            batches = list(reader)
        except Exception as error:  # a CRC-valid but unreadable record: stop here
            problem = f"unreadable record at byte {offset}: {error}"
            break
        for batch in batches:
            records.append(
                WalRecord(
                    series=str(meta["series"]),
                    session=str(meta["session"]),
                    first_seq=int(meta["first_seq"]),
                    last_seq=int(meta["last_seq"]),
                    batch=batch,
                )
            )
        offset = end
    report = WalSegmentReport(
        path=str(path), records=len(records), valid_bytes=offset, size=len(data), problem=problem
    )
    return records, report


class WalWriter:
    """Appends records to numbered segment files of one session.

    :param wal_dir: the WAL directory of the storage root.
    :param session: the session id (segment names start with it).
    """

    def __init__(self, wal_dir: Path, session: str) -> None:
        self.wal_dir = wal_dir
        self.session = session
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        self._index = 0
        self._handle: IO[bytes] | None = None
        self._current: Path | None = None
        self.bytes_written = 0
        self.closed_segments: list[tuple[Path, int]] = []
        """Segments no longer written to, with the largest arrival number each holds."""
        self._current_max_seq = -1
        self._lock = threading.Lock()

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            self._current = self.wal_dir / f"{self.session}-{self._index:06d}.wal"
            # Held open across writes until the segment is rotated.
            self._handle = open(self._current, "ab")  # noqa: SIM115
            fsync_dir(self.wal_dir)
        return self._handle

    @property
    def current_size(self) -> int:
        """Bytes in the segment being written."""
        return self._handle.tell() if self._handle is not None else 0

    def write(self, records: list[bytes], max_seq: int) -> None:
        """Append framed records and make them durable (fsync) before returning.

        :param records: framed records (:func:`encode_record`).
        :param max_seq: the largest arrival number among them.
        """
        with self._lock:
            handle = self._open()
            for record in records:
                handle.write(record)
                self.bytes_written += len(record)
            handle.flush()
            os.fsync(handle.fileno())
            self._current_max_seq = max(self._current_max_seq, max_seq)

    def rotate(self) -> None:
        """Close the current segment; the next write starts a new one."""
        with self._lock:
            self._rotate()

    def _rotate(self) -> None:
        if self._handle is not None and self._current is not None:
            self._handle.close()
            self.closed_segments.append((self._current, self._current_max_seq))
            self._handle = None
            self._current = None
            self._current_max_seq = -1
            self._index += 1

    def delete_up_to(self, low_water: int) -> None:
        """Delete closed segments whose events all have arrival numbers below ``low_water``."""
        with self._lock:
            keep = []
            removed = False
            for path, max_seq in self.closed_segments:
                if max_seq < low_water:
                    path.unlink(missing_ok=True)
                    removed = True
                else:
                    keep.append((path, max_seq))
            self.closed_segments = keep
        if removed:
            fsync_dir(self.wal_dir)

    def close_and_delete(self) -> None:
        """Close and delete every segment (everything is published as blocks)."""
        self.rotate()
        self.delete_up_to(2**63)
