"""Exactly-once Parquet output: one Parquet part per checkpoint, one file at the end.

A Parquet file cannot be appended to, so a checkpointed Parquet output is published as a
**dataset of parts** next to the target, ``F.parquet.parts/``, while the run goes, and
assembled into ``F.parquet`` when the run ends cleanly:

* rows since the last checkpoint are written to ``.pending.parquet`` in the parts directory
  (row groups of 65,536 rows, as :class:`~featurizer._sinks.ParquetSink` writes them);
* at a checkpoint the pending file is closed, fsynced and renamed ``.<id>.parquet`` (its
  checkpoint records its size and the rows published in total); a checkpoint without new rows
  has no part;
* once the checkpoint commits, the part is renamed ``<id>.parquet`` (and the directory
  fsynced): that rename **publishes** it. Files whose name starts with ``.`` are not part of
  the dataset (``pyarrow.dataset``, ``pandas.read_parquet`` skip them), so the directory only
  ever shows committed rows;
* when the run ends (its final checkpoint published), ``F.parquet`` is written from what it
  held before (a run continued after an earlier end) and the parts in order, row by row
  through the same writer as an uninterrupted run's (same schema inference, row groups,
  values), to ``.F.parquet.assembling`` and fsynced; then the parts directory is renamed
  ``.F.parquet.parts.assembled``, the file renamed into place, and the parts deleted. A
  reader never sees a row twice: ``F.parquet`` followed by the parts dataset is always a
  prefix of the output (for a moment, during the renames, without the newest parts).

Recovery needs no marker: the rows of ``F.parquet`` (if any) plus those of the published parts
equal the rows the checkpoint published, or ``F.parquet`` alone holds them all (an assembly
whose clean-up was interrupted); parts renamed for an assembly whose file did not reach its
place are renamed back. Anything else is a damaged output and is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featurizer._sinks import ParquetRowWriter, require_pyarrow
from featurizer.checkpoint._errors import CheckpointError
from featurizer.checkpoint._faults import fault_point
from featurizer.storage._files import fsync_dir

__all__ = [
    "SegmentedParquetSink",
    "is_parquet_output",
    "parquet_parts",
    "published_parquet_rows",
    "verify_parquet_output",
]

logger = logging.getLogger(__name__)

_PENDING = ".pending.parquet"
_BATCH_ROWS = 65_536


def parquet_parts(path: Path) -> Path:
    """The directory of published parts of the checkpointed Parquet output ``path``."""
    return path.with_name(path.name + ".parts")


def _assembled_parts(path: Path) -> Path:
    """Where the parts of ``path`` wait, during an assembly, for the file to be in place."""
    return path.with_name(f".{path.name}.parts.assembled")


def _part_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _published(parts: Path) -> list[Path]:
    """The published parts, oldest first."""
    if not parts.is_dir():
        return []
    return sorted(p for p in parts.iterdir() if p.name.endswith(".parquet") and p.name[0] != ".")


def published_parquet_rows(path: Path) -> tuple[int, int]:
    """Rows of the assembled file ``path`` (0 if absent) and of its published parts."""
    base = _part_rows(path) if path.is_file() else 0
    return base, sum(_part_rows(part) for part in _published(parquet_parts(path)))


def is_parquet_output(path: Path) -> bool:
    """Whether ``path`` is the output of a checkpointed Parquet run (by its suffix, its parts
    directory, or the Parquet magic number that starts the file)."""
    if path.suffix.lower() == ".parquet" or parquet_parts(path).is_dir():
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"PAR1"
    except OSError:
        return False


def verify_parquet_output(
    path: Path, checkpoint_id: int, rows: int, problems: list[str], notes: list[str]
) -> None:
    """Check that the assembled file and the published parts of ``path`` hold the ``rows``
    checkpoint ``checkpoint_id`` published (a problem line if not; a note for what resuming
    finishes)."""
    try:
        base, parted = published_parquet_rows(path)
        hidden = _assembled_parts(path)
        moved = sum(_part_rows(part) for part in _published(hidden))
    except (OSError, ValueError) as error:  # ArrowInvalid is a ValueError
        problems.append(f"{path}: unreadable Parquet output or part: {error}")
        return
    parts = parquet_parts(path)
    segment = parts / f".{checkpoint_id:08d}.parquet"
    if hidden.is_dir() and base in (rows, rows - moved):
        notes.append(f"the assembly of {path} was interrupted; resuming ends it")
    elif segment.is_file() and base + parted + _part_rows(segment) == rows:
        notes.append(
            f"the publish of {path} at checkpoint {checkpoint_id} was interrupted; resuming ends it"
        )
    elif base == rows and parted:
        notes.append(f"{path} was assembled; resuming deletes its parts in {parts}")
    elif base + parted != rows:
        problems.append(
            f"{path} and its parts {parts} hold {base + parted:,} rows, but checkpoint "
            f"{checkpoint_id} published {rows:,}: the published output was changed or removed"
        )


class SegmentedParquetSink:
    """A Parquet sink whose rows are published at checkpoints (see the module docstring).

    :param path: the Parquet file the run ends with.
    :param batch_rows: rows per row group (of the parts and of the assembled file).
    """

    def __init__(self, path: str | Path, batch_rows: int = _BATCH_ROWS) -> None:
        require_pyarrow()
        self.path = Path(path).resolve()
        parent = self.path.parent
        if not parent.is_dir():
            raise CheckpointError(
                f"cannot write {str(path)!r}: directory {str(parent)!r} does not exist"
            )
        self.parts = parquet_parts(self.path)
        self._batch_rows = batch_rows
        self._pending: ParquetRowWriter | None = None
        self.rows = 0
        self.pending_rows = 0

    def _assembling(self) -> Path:
        return self.path.with_name(f".{self.path.name}.assembling")

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Add a row to the pending part."""
        if self._pending is None:
            self.parts.mkdir(exist_ok=True)
            self._pending = ParquetRowWriter(self.parts / _PENDING, self._batch_rows)
        self._pending.write_row(row)
        self.pending_rows += 1

    def segment_path(self, checkpoint_id: int) -> Path:
        """Where checkpoint ``checkpoint_id``'s part waits for its commit."""
        return self.parts / f".{checkpoint_id:08d}.parquet"

    def _part(self, checkpoint_id: int) -> Path:
        return self.parts / f"{checkpoint_id:08d}.parquet"

    def cut(self, checkpoint_id: int) -> int:
        """Close the pending rows as checkpoint ``checkpoint_id``'s part; returns its bytes
        (0, and no part, without rows)."""
        pending, self._pending = self._pending, None
        self.rows += self.pending_rows
        self.pending_rows = 0
        if pending is None:
            return 0
        pending.finish()
        segment = self.segment_path(checkpoint_id)
        os.replace(pending.path, segment)
        fsync_dir(self.parts)
        return segment.stat().st_size

    def publish(self, checkpoint_id: int, output_bytes: int) -> None:
        """Checkpoint ``checkpoint_id`` committed: its part joins the published parts."""
        segment = self.segment_path(checkpoint_id)
        if not segment.exists():
            return  # no rows since the previous checkpoint
        fault_point("publish")
        os.replace(segment, self._part(checkpoint_id))
        fsync_dir(self.parts)

    def reconcile(self, checkpoint_id: int, output_bytes: int, segment_bytes: int) -> None:
        """Bring the output to checkpoint ``checkpoint_id``: discard what was not committed,
        finish its interrupted publish, and check the published rows.

        :param output_bytes: unused (the parts are counted in rows; see :attr:`rows`).
        :param segment_bytes: unused.
        :raises CheckpointError: if published rows were lost or replaced.
        """
        hidden = _assembled_parts(self.path)
        if hidden.is_dir():  # an assembly was interrupted after it moved the parts away
            if self.path.is_file() and _part_rows(self.path) == self.rows:
                shutil.rmtree(hidden)
            else:
                os.replace(hidden, self.parts)
            fsync_dir(self.path.parent)
        self._discard_uncommitted(checkpoint_id)
        self.publish(checkpoint_id, output_bytes)
        base, parted = published_parquet_rows(self.path)
        if base == self.rows and parted:
            self._remove_parts(self.parts)  # an assembly that ended before deleting its parts
        elif base + parted != self.rows:
            raise CheckpointError(
                f"the published output {str(self.path)!r} and its parts {str(self.parts)!r} "
                f"hold {base + parted:,} rows but checkpoint {checkpoint_id} published "
                f"{self.rows:,}: they were changed or removed. Restore them, or start over "
                f"with --fresh"
            )

    def _discard_uncommitted(self, checkpoint_id: int) -> None:
        self._assembling().unlink(missing_ok=True)
        if not self.parts.is_dir():
            return
        for path in self.parts.iterdir():
            number = path.name.lstrip(".").removesuffix(".parquet")
            if path.name == _PENDING or (number.isdigit() and int(number) > checkpoint_id):
                path.unlink()
        fsync_dir(self.parts)

    def _remove_parts(self, parts: Path) -> None:
        shutil.rmtree(parts, ignore_errors=True)
        fsync_dir(self.path.parent)

    def start_fresh(self) -> None:
        """Start without published rows (a run without a checkpoint to resume)."""
        self.path.unlink(missing_ok=True)
        self._assembling().unlink(missing_ok=True)
        self._remove_parts(_assembled_parts(self.path))
        self._remove_parts(self.parts)

    def assemble(self) -> None:
        """Write the output file from what it held and the published parts, in order, then
        delete the parts."""
        import pyarrow.parquet as pq

        parts = _published(self.parts)
        if not parts and self.path.is_file():
            return
        sources = ([self.path] if self.path.is_file() else []) + parts
        target = ParquetRowWriter(self._assembling(), self._batch_rows)
        write_row = target.write_row
        for source in sources:
            for batch in pq.ParquetFile(source).iter_batches(batch_size=self._batch_rows):
                for row in batch.to_pylist():
                    write_row(row)
        target.finish()
        if target.rows != self.rows:
            target.abandon()
            raise CheckpointError(
                f"assembling {str(self.path)!r}: its parts hold {target.rows:,} rows, the "
                f"checkpoints published {self.rows:,}"
            )
        fault_point("assemble")
        hidden = _assembled_parts(self.path)
        if self.parts.is_dir():
            os.replace(self.parts, hidden)
            fsync_dir(self.path.parent)
        fault_point("assemble")
        os.replace(target.path, self.path)
        fsync_dir(self.path.parent)
        fault_point("assemble")
        self._remove_parts(hidden)
        logger.info("assembled %s from %d part(s)", self.path, len(parts))

    def close(self, ok: bool = True) -> None:
        """Drop the uncommitted rows; after a clean end (``ok``, every row published by the
        final checkpoint) assemble the output file."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.abandon()
        self.pending_rows = 0
        if ok:
            self.assemble()
