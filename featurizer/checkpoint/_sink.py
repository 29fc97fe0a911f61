"""Exactly-once output: rows are written in segments that are published when their checkpoint
commits.

The published output is the target file itself: it only ever holds the rows of committed
checkpoints, in order. Rows since the last checkpoint go to ``segments/pending.jsonl``; at a
checkpoint the pending file is fsynced and renamed ``segments/<id>.jsonl``, the checkpoint
(which records the output's length once the segment is appended) commits, and only then the
segment is appended to the target, fsynced and deleted. After a crash,
:meth:`SegmentedJsonLinesSink.reconcile` truncates the target to the last committed length,
finishes an interrupted publish from the kept segment, and discards uncommitted segments: the
rows after the checkpoint are computed again from the log.

Parquet outputs are published the same way, as parts (see
:mod:`featurizer.checkpoint._parquet_sink`); :func:`make_segmented_sink` picks the sink of a
format.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO

from featurizer._sinks import _json_default
from featurizer.checkpoint._errors import CheckpointError
from featurizer.checkpoint._faults import fault_armed, fault_point
from featurizer.storage._files import fsync_dir

__all__ = ["SEGMENTED_FORMATS", "SegmentedJsonLinesSink", "SegmentedSink", "make_segmented_sink"]

SEGMENTED_FORMATS = ("jsonl", "json", "parquet")
"""Output formats a checkpointed run publishes exactly once (by ``--format`` or suffix)."""

_PENDING = "pending.jsonl"

_COPY_CHUNK = 1 << 20
"""Bytes copied at a time when a segment is appended to the output."""


class SegmentedJsonLinesSink:
    """A JSON Lines sink whose rows become visible in the target only at checkpoints.

    Rows are encoded exactly as :class:`featurizer._sinks.JsonLinesSink` encodes them.

    :param path: the published output file.
    :param directory: the checkpoint directory (segments go to ``directory/segments``).
    """

    def __init__(self, path: str | Path, directory: Path) -> None:
        self.path = Path(path).resolve()
        parent = self.path.parent
        if not parent.is_dir():
            raise CheckpointError(
                f"cannot write {str(path)!r}: directory {str(parent)!r} does not exist"
            )
        self._segments = directory / "segments"
        self._segments.mkdir(parents=True, exist_ok=True)
        self._encode = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
        self._pending: TextIO | None = None
        self.rows = 0
        self.pending_rows = 0

    def _open_pending(self) -> TextIO:
        # UTF-8 text, "\n" line ends; its length in bytes is read from the file at the cut
        self._pending = (self._segments / _PENDING).open("w", encoding="utf-8", newline="\n")
        return self._pending

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Add a row to the pending segment."""
        pending = self._pending or self._open_pending()
        pending.write(self._encode(row) + "\n")
        self.pending_rows += 1

    def write_text(self, text: str) -> None:
        """Add a row already encoded as :data:`featurizer._sinks.encode_json` encodes it (one
        JSON object, without its newline): scaled runs join rows from their workers' parts."""
        pending = self._pending or self._open_pending()
        pending.write(text + "\n")
        self.pending_rows += 1

    def segment_path(self, checkpoint_id: int) -> Path:
        """Where the segment of checkpoint ``checkpoint_id`` waits to be published."""
        return self._segments / f"{checkpoint_id:08d}.jsonl"

    def cut(self, checkpoint_id: int) -> int:
        """Close the pending segment as checkpoint ``checkpoint_id``'s; returns its bytes."""
        pending = self._pending or self._open_pending()
        pending.flush()
        os.fsync(pending.fileno())
        size = os.fstat(pending.fileno()).st_size
        pending.close()
        self._pending = None
        os.replace(self._segments / _PENDING, self.segment_path(checkpoint_id))
        fsync_dir(self._segments)
        self.rows += self.pending_rows
        self.pending_rows = 0
        return size

    def publish(self, checkpoint_id: int, output_bytes: int) -> None:
        """Append a committed checkpoint's segment to the target (it then holds
        ``output_bytes`` bytes) and delete the segment."""
        segment = self.segment_path(checkpoint_id)
        armed = fault_armed("publish")
        if not armed and self.path.is_file() and self.path.stat().st_size == 0:
            # the first rows: the (fsynced) segment becomes the output, nothing is copied
            os.replace(segment, self.path)
            fsync_dir(self.path.parent)
            size = self.path.stat().st_size
            if size != output_bytes:
                raise CheckpointError(
                    f"{str(self.path)!r} holds {size:,} bytes after publishing checkpoint "
                    f"{checkpoint_id}, expected {output_bytes:,}"
                )
            return
        with segment.open("rb") as source, self.path.open("ab") as handle:
            if armed:
                data = source.read()
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.fsync(handle.fileno())
                fault_point("publish")
                handle.write(data[len(data) // 2 :])
            else:
                shutil.copyfileobj(source, handle, _COPY_CHUNK)
            handle.flush()
            os.fsync(handle.fileno())
            if handle.tell() != output_bytes:
                raise CheckpointError(
                    f"{str(self.path)!r} holds {handle.tell():,} bytes after publishing "
                    f"checkpoint {checkpoint_id}, expected {output_bytes:,}: was it written to "
                    f"by something else?"
                )
        segment.unlink()

    def reconcile(self, checkpoint_id: int, output_bytes: int, segment_bytes: int) -> None:
        """Make the target hold exactly the rows of checkpoints up to ``checkpoint_id``.

        :param output_bytes: the target's length at that checkpoint.
        :param segment_bytes: the length of that checkpoint's own segment.
        :raises CheckpointError: if the published output was lost or shortened by something
            else than an interrupted publish.
        """
        self._segments.mkdir(parents=True, exist_ok=True)
        segment = self.segment_path(checkpoint_id)
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < output_bytes:
            if not segment.exists() or size < output_bytes - segment_bytes:
                raise CheckpointError(
                    f"the published output {str(self.path)!r} has {size:,} bytes but checkpoint "
                    f"{checkpoint_id} published {output_bytes:,}: it was truncated or replaced. "
                    f"Restore it, or start over with --fresh"
                )
            with self.path.open("r+b" if self.path.exists() else "wb") as handle:
                handle.truncate(output_bytes - segment_bytes)
            self.publish(checkpoint_id, output_bytes)
        elif size > output_bytes:
            with self.path.open("r+b") as handle:
                handle.truncate(output_bytes)
                os.fsync(handle.fileno())
        elif not self.path.exists():
            self.path.touch()
        for leftover in self._segments.iterdir():
            leftover.unlink()
        fsync_dir(self._segments)

    def start_fresh(self) -> None:
        """Start the target empty (a run without a checkpoint to resume)."""
        self._segments.mkdir(parents=True, exist_ok=True)
        with self.path.open("wb") as handle:
            os.fsync(handle.fileno())
        for leftover in self._segments.iterdir():
            leftover.unlink()

    def close(self, ok: bool = True) -> None:
        """Drop the uncommitted rows (a clean end has published them with a final checkpoint)."""
        if self._pending is not None:
            self._pending.close()
            self._pending = None
        (self._segments / _PENDING).unlink(missing_ok=True)


class SegmentedSink(Protocol):
    """What a checkpointed run needs of its output sink: rows go to a pending segment, which
    :meth:`cut` closes for a checkpoint and :meth:`publish` publishes once it committed."""

    path: Path
    rows: int
    pending_rows: int

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Add a row to the pending segment."""

    def cut(self, checkpoint_id: int) -> int:
        """Close the pending segment as checkpoint ``checkpoint_id``'s; returns its bytes."""

    def publish(self, checkpoint_id: int, output_bytes: int) -> None:
        """Publish the segment of committed checkpoint ``checkpoint_id``."""

    def reconcile(self, checkpoint_id: int, output_bytes: int, segment_bytes: int) -> None:
        """Bring the published output to checkpoint ``checkpoint_id`` (after a restart; set
        :attr:`rows` to its rows first)."""

    def start_fresh(self) -> None:
        """Start without published rows."""

    def close(self, ok: bool = True) -> None:
        """Drop the uncommitted rows (and finish the output after a clean end)."""


def make_segmented_sink(
    path: str | Path, directory: Path, format_name: str | None = None
) -> SegmentedSink:
    """The exactly-once sink of a checkpointed run writing ``path``.

    :param path: the output file.
    :param directory: the checkpoint directory (JSON Lines segments wait there).
    :param format_name: ``--format``; by default, the file's suffix.
    :raises CheckpointError: for another format (one line naming the file and the formats).
    """
    name = format_name or Path(path).suffix.lower().lstrip(".")
    if name in ("jsonl", "json"):
        return SegmentedJsonLinesSink(path, directory)
    if name == "parquet":
        from featurizer.checkpoint._parquet_sink import SegmentedParquetSink

        return SegmentedParquetSink(path)
    raise CheckpointError(
        f"--checkpoint publishes its output exactly once to JSON Lines or Parquet files: "
        f"{str(path)!r} is {name or 'of no known format'}; use a .jsonl or .parquet file "
        f"(or --format jsonl|parquet)"
    )
