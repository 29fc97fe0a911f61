"""The write-ahead log: what a recorder acknowledged but has not yet published as blocks.

A segment file is a sequence of records. Each record holds events of one series as an Arrow
IPC stream (schema and one record batch) behind a fixed header::

    magic "FZW2" | header length (u32) | payload length (u64) | payload CRC-32 (u32)
        | header CRC-32 (u32) | header | payload

The header is JSON: the storage's identity, the session, the series key, the record's rows,
first and largest arrival numbers and timestamps, and the *cycle* it belongs to (one flush of the
writer: its first arrival number, its row count and its timestamp span). The header CRC covers
the fixed fields and the header, so a record whose payload is damaged is still known exactly
(series, arrival numbers, time span) and can be skipped; a record whose header is damaged is
found by scanning for the next valid header. The writer appends the records of one cycle and
fsyncs the segment: from then on the events are *acknowledged*.

Segments are read as a stream, one record at a time (recovery never holds a whole segment in
memory). Reading classifies what it finds: complete records; *damage* followed by a readable
record (corruption in the middle: recovery skips it and records a hole); damage at the end
(a torn tail: the only thing recovery may drop).
"""

from __future__ import annotations

import errno
import json
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from featurizer.storage._codec import require_pyarrow
from featurizer.storage._files import fsync_dir

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "WalDamage",
    "WalRecord",
    "WalWriter",
    "encode_record",
    "max_seq_in",
    "read_batch",
    "scan_segment",
    "segments",
]

MAGIC = b"FZW2"
_FIXED = struct.Struct("<4sIQII")
_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # (an Arrow IPC stream's last message)
_MAX_HEADER = 1 << 20
_SCAN_CHUNK = 1 << 20


@attrs.frozen(kw_only=True)
class WalRecord:
    """One record: events of one series (the payload is decoded only when asked for).

    :param meta: the record's header (see the module docs).
    :param offset: where it starts in its segment.
    :param length: its length in bytes.
    """

    meta: dict[str, Any]
    offset: int
    length: int

    @property
    def series(self) -> str:
        """The series key."""
        return str(self.meta["series"])

    @property
    def session(self) -> str:
        """The session that wrote it."""
        return str(self.meta["session"])

    @property
    def first_seq(self) -> int:
        """The arrival number of its first event."""
        return int(self.meta["first_seq"])

    @property
    def last_seq(self) -> int:
        """The arrival number of its last event."""
        return int(self.meta["last_seq"])

    @property
    def cycle(self) -> tuple[str, int, int]:
        """``(session, first arrival number, rows)`` of the writer cycle it belongs to."""
        return (self.session, int(self.meta["cycle_first"]), int(self.meta["cycle_rows"]))


@attrs.frozen(kw_only=True)
class WalDamage:
    """Bytes of a segment that are not a readable record.

    :param offset: where the damage starts.
    :param length: how many bytes are skipped.
    :param reason: what is wrong.
    :param meta: the damaged record's header, when only its payload is damaged.
    :param tail: whether nothing readable follows (a torn tail).
    """

    offset: int
    length: int
    reason: str
    meta: dict[str, Any] | None
    tail: bool


def segments(wal_dir: Path) -> list[Path]:
    """The segment files of a WAL directory, oldest first."""
    if not wal_dir.is_dir():
        return []
    return sorted(wal_dir.glob("*.wal"))


def encode_record(
    batch: pa.RecordBatch, meta: dict[str, Any], schema_message: bytes | None = None
) -> bytes:
    """Frame one record (see the module docs).

    The payload is an Arrow IPC stream of the batch: its schema message, the batch's message
    and the end-of-stream marker, assembled from their serialized forms (the same bytes a
    stream writer writes, with one call into Arrow, that is one hand-over of the GIL, instead
    of several).

    :param batch: the events.
    :param meta: the header fields (``storage``, ``session``, ``series``, ``first_seq``,
        ``max_seq`` (its largest arrival number: the series of a cycle interleave), ``min_ts``,
        ``max_ts`` and the cycle's ``cycle_first``, ``cycle_rows``, ``cycle_min_ts``,
        ``cycle_max_ts``); ``rows`` and ``last_seq`` (``first_seq + rows - 1``) are added.
    :param schema_message: ``batch.schema.serialize()`` as bytes, if the caller keeps it.
    """
    if schema_message is None:
        schema_message = batch.schema.serialize().to_pybytes()
    body = batch.serialize()
    size = len(schema_message) + body.size + len(_END_OF_STREAM)
    full = {**meta, "rows": batch.num_rows, "last_seq": meta["first_seq"] + batch.num_rows - 1}
    header = json.dumps(full, sort_keys=True).encode("utf-8")
    payload_crc = zlib.crc32(_END_OF_STREAM, zlib.crc32(body, zlib.crc32(schema_message)))
    head = _FIXED.pack(MAGIC, len(header), size, payload_crc, 0)[:-4]
    header_crc = zlib.crc32(header, zlib.crc32(head))
    fixed = _FIXED.pack(MAGIC, len(header), size, payload_crc, header_crc)
    return b"".join((fixed, header, schema_message, body, _END_OF_STREAM))


def _header_at(
    handle: IO[bytes], offset: int, size: int
) -> tuple[dict[str, Any], int, int, int] | str:
    """The header of a record at ``offset``: ``(meta, payload offset, payload length, payload
    CRC)``, or why there is no valid header there."""
    handle.seek(offset)
    fixed = handle.read(_FIXED.size)
    if len(fixed) < _FIXED.size:
        return "torn record header"
    magic, header_len, payload_len, payload_crc, header_crc = _FIXED.unpack(fixed)
    if magic != MAGIC:
        return "bad record magic"
    if header_len > _MAX_HEADER or offset + _FIXED.size + header_len > size:
        return "bad or torn record header"
    header = handle.read(header_len)
    if zlib.crc32(header, zlib.crc32(fixed[:-4])) != header_crc:
        return "header CRC mismatch"
    try:
        meta = json.loads(header)
    except ValueError:
        return "unreadable record header"
    if not isinstance(meta, dict):
        return "unreadable record header"
    return meta, offset + _FIXED.size + header_len, payload_len, payload_crc


def _next_header(handle: IO[bytes], offset: int, size: int) -> int | None:
    """The offset of the next valid record header at or after ``offset``, if any."""
    position = offset
    while position < size:
        handle.seek(position)
        chunk = handle.read(_SCAN_CHUNK + len(MAGIC))
        index = chunk.find(MAGIC)
        while index >= 0:
            candidate = position + index
            if not isinstance(_header_at(handle, candidate, size), str):
                return candidate
            index = chunk.find(MAGIC, index + 1)
        position += _SCAN_CHUNK
    return None


def _payload_crc(handle: IO[bytes], offset: int, length: int) -> int:
    handle.seek(offset)
    crc = 0
    remaining = length
    while remaining:
        chunk = handle.read(min(remaining, _SCAN_CHUNK))
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        remaining -= len(chunk)
    return crc


def scan_segment(path: Path) -> Iterator[WalRecord | WalDamage]:
    """Stream a segment: its records (payloads checked, not kept) and damaged spans.

    :param path: the segment file.
    :returns: records and damage in file order; damage with ``tail=True`` ends the segment.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        offset = 0
        while offset < size:
            found = _header_at(handle, offset, size)
            if isinstance(found, str):
                following = _next_header(handle, offset + 1, size)
                end = size if following is None else following
                yield WalDamage(
                    offset=offset,
                    length=end - offset,
                    reason=f"{found} at byte {offset}",
                    meta=None,
                    tail=following is None,
                )
                offset = end
                continue
            meta, payload_at, payload_len, crc = found
            end = payload_at + payload_len
            if end > size:
                yield WalDamage(
                    offset=offset,
                    length=size - offset,
                    reason=f"torn record at byte {offset} ({size - payload_at} of "
                    f"{payload_len} payload bytes)",
                    meta=meta,
                    tail=True,
                )
                return
            if _payload_crc(handle, payload_at, payload_len) != crc:
                following = _next_header(handle, end, size) if end < size else None
                yield WalDamage(
                    offset=offset,
                    length=end - offset,
                    reason=f"payload CRC mismatch in the record at byte {offset}",
                    meta=meta,
                    tail=following is None,
                )
                offset = end
                continue
            yield WalRecord(meta=meta, offset=offset, length=end - offset)
            offset = end


def max_seq_in(path: Path) -> int:
    """The largest arrival number the readable record headers of a segment name (-1 if none);
    payloads are skipped, not read, and reading stops at the first damaged header."""
    size = path.stat().st_size
    high = -1
    with open(path, "rb") as handle:
        offset = 0
        while offset < size:
            found = _header_at(handle, offset, size)
            if isinstance(found, str):
                break
            meta, payload_at, payload_len, _ = found
            try:  # (a cycle's arrival numbers are consecutive; a record's interleave)
                high = max(high, int(meta["cycle_first"]) + int(meta["cycle_rows"]) - 1)
            except (KeyError, TypeError, ValueError):
                break
            offset = payload_at + payload_len
    return high


def read_batch(path: Path, record: WalRecord) -> pa.RecordBatch:
    """Decode a record's events (one record batch).

    :raises ValueError: if the CRC-valid payload is not an Arrow stream.
    """
    pa = require_pyarrow()
    with open(path, "rb") as handle:
        handle.seek(record.offset)
        data = handle.read(record.length)
    header_len = _FIXED.unpack_from(data)[1]
    payload = data[_FIXED.size + header_len :]
    try:
        batches = list(pa.ipc.open_stream(pa.py_buffer(payload)))
    except Exception as error:
        raise ValueError(f"unreadable record payload at byte {record.offset}: {error}") from error
    if len(batches) != 1:
        raise ValueError(f"record at byte {record.offset} holds {len(batches)} batches, not 1")
    return batches[0]


_IOV_MAX = 1024  # (the least any POSIX system allows in one writev)


def _write_all(fd: int, records: list[bytes]) -> None:
    """Write the records, in order, with as few system calls as the kernel takes: one
    ``writev`` for a cycle's records, which is also one hand-over of the GIL (the recording's
    thread wants it back) instead of one per record."""
    pending = [memoryview(record) for record in records if record]
    while pending:
        written = os.writev(fd, pending[:_IOV_MAX])
        if not written:
            raise OSError(errno.EIO, "the WAL segment took none of the bytes written to it")
        while written and pending:
            if written >= len(pending[0]):
                written -= len(pending.pop(0))
            else:
                pending[0] = pending[0][written:]
                written = 0


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
            handle.flush()
            _write_all(handle.fileno(), records)
            self.bytes_written += sum(map(len, records))
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
