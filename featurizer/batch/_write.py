"""Writing backfill rows to Parquet, one chunk at a time, published atomically."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["write_tables"]


def write_tables(
    tables: Iterable[pa.Table],
    path: str | os.PathLike[str],
    *,
    on_table: Callable[[pa.Table], None] | None = None,
) -> int:
    """Write ``tables`` (same columns) to one Parquet file; returns the rows written.

    The file is written under a temporary name and renamed when complete, so ``path`` is
    either the whole result or absent. No rows give a file with just a ``timestamp`` column.

    :param tables: the rows, in order.
    :param path: the ``.parquet`` file.
    :param on_table: called after each table is written (progress).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for table in tables:
            if writer is None:
                # dictionaries only for text: float features rarely repeat, and trying costs
                # more than the rest of the write
                text = [f.name for f in table.schema if pa.types.is_string(f.type)]
                writer = pq.ParquetWriter(partial, table.schema, use_dictionary=text or False)
            writer.write_table(table.cast(writer.schema))
            rows += table.num_rows
            if on_table is not None:
                on_table(table)
        if writer is None:
            pq.write_table(pa.table({"timestamp": pa.array([], pa.float64())}), partial)
        else:
            writer.close()
            writer = None
        os.replace(partial, target)
    finally:
        if writer is not None:
            writer.close()
        if partial.exists():
            partial.unlink()
    return rows
