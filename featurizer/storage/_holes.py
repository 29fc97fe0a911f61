"""Recorded holes kept outside the catalog too: one small JSON file per hole under ``holes/``.

A span lost to a corrupt WAL record, or given up by a repair, is recorded in the catalog so
that replays report it. Should the catalog be lost, ``rebuild-catalog`` must still know about
it (the blocks alone would make the session look complete), so every recorded hole is first
written as a file, atomically, and then inserted into the catalog.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import attrs

from featurizer.storage._catalog import Catalog, RecordedHole
from featurizer.storage._errors import StorageError
from featurizer.storage._files import fsync_dir, make_dirs

__all__ = ["HOLES_DIR", "read_hole_files", "record_hole"]

HOLES_DIR = "holes"


def record_hole(root: Path, catalog: Catalog, hole: RecordedHole) -> None:
    """Write the hole's file, then its catalog row.

    :raises StorageError: if the file cannot be written.
    """
    directory = root / HOLES_DIR
    target = directory / f"{hole.session}-{uuid.uuid4().hex[:12]}.json"
    tmp = directory / f".{target.name}.partial"
    try:
        make_dirs(directory)
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(attrs.asdict(hole), handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(directory)
    except OSError as error:
        raise StorageError(f"cannot record a hole: {error}", path=str(target)) from error
    finally:
        tmp.unlink(missing_ok=True)
    catalog.add_hole(hole)


def read_hole_files(root: Path) -> tuple[list[RecordedHole], list[str]]:
    """The holes recorded under ``root/holes/``, and the files that could not be read."""
    holes: list[RecordedHole] = []
    unreadable: list[str] = []
    directory = root / HOLES_DIR
    if not directory.is_dir():
        return holes, unreadable
    for path in sorted(directory.glob("*.json")):
        try:
            holes.append(RecordedHole(**json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError) as error:
            unreadable.append(f"{path}: {error}")
    return holes, unreadable
