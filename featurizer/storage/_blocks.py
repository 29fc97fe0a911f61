"""Writing and reading one block file (Parquet), with checksums and clear errors."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurizer.storage._catalog import BlockInfo, SeriesInfo
from featurizer.storage._codec import SEQ_COLUMN, compatible_schema, require_pyarrow
from featurizer.storage._errors import CorruptBlockError, MissingBlockError, SchemaMismatchError
from featurizer.storage._files import block_relative_path, checksum, publish

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = [
    "BLOCK_KEY",
    "BlockFormat",
    "block_description",
    "encode_block",
    "read_description",
    "read_block_bytes",
    "open_block",
    "schema_bytes",
    "schema_from_bytes",
    "write_block",
]


BLOCK_KEY = b"featurizer.block"
"""Parquet metadata key: the block's self-description (JSON): storage identity, session,
ordinal, the series (key, name, definition, kind, params, children, schema), arrival-number and
timestamp ranges, row count. With it the catalog can be rebuilt from the blocks alone."""

DICTIONARY_KEY = b"featurizer.dictionary"
"""Parquet metadata key: the string columns with few distinct values (dictionary-encoded,
and read back as dictionaries so each distinct string is decoded once)."""


NUMERIC_ENCODINGS = ("split", "plain")
"""How numeric columns are encoded: ``split`` writes floating-point columns with Parquet's
``BYTE_STREAM_SPLIT`` encoding and integer columns with ``DELTA_BINARY_PACKED`` (the bytes of
market data compress far more easily that way: zstd encodes a block of the reference workload
about 2.1 times faster, for about 4% more bytes: `benchmarks/block_encoding.py`); ``plain``
writes them as they are."""


class BlockFormat:
    """How blocks are encoded: Parquet with zstd and row groups of ``row_group_rows``.

    Readers need no setting: a block says how each of its columns is encoded, so blocks of
    every format are read alike.

    :param compression: the Parquet codec (``zstd``, ``snappy``, ``none``).
    :param row_group_rows: rows per row group (the unit read back at once).
    :param numeric_encoding: one of :data:`NUMERIC_ENCODINGS`.
    :raises ValueError: for an unknown ``numeric_encoding``.
    """

    def __init__(
        self,
        compression: str = "zstd",
        row_group_rows: int = 65_536,
        numeric_encoding: str = "split",
    ) -> None:
        if numeric_encoding not in NUMERIC_ENCODINGS:
            raise ValueError(
                f"unknown numeric_encoding {numeric_encoding!r}; use one of "
                f"{', '.join(NUMERIC_ENCODINGS)}"
            )
        self.compression = compression
        self.row_group_rows = row_group_rows
        self.numeric_encoding = numeric_encoding


def _column_encodings(schema: pa.Schema, fmt: BlockFormat) -> dict[str, str] | None:
    """Per numeric top-level column, its Parquet encoding under ``fmt`` (``None``: defaults)."""
    if fmt.numeric_encoding == "plain":
        return None
    pa = require_pyarrow()
    encodings = {}
    for field in schema:
        if pa.types.is_float32(field.type) or pa.types.is_float64(field.type):
            encodings[field.name] = "BYTE_STREAM_SPLIT"
        elif pa.types.is_integer(field.type):
            encodings[field.name] = "DELTA_BINARY_PACKED"
    return encodings or None


def schema_bytes(schema: pa.Schema) -> bytes:
    """An Arrow schema (metadata dropped) as IPC bytes for the catalog."""
    return bytes(schema.remove_metadata().serialize().to_pybytes())


def schema_from_bytes(data: bytes, series: str | None = None) -> pa.Schema:
    """Parse :func:`schema_bytes` output.

    :raises StorageError: if the bytes are not an Arrow schema (a damaged catalog).
    """
    pa = require_pyarrow()
    try:
        schema = pa.ipc.read_schema(pa.py_buffer(data))
        for field in schema:  # names and types must decode too
            str(field.name)
            str(field.type)
        return schema
    except Exception as error:
        from featurizer.storage._errors import StorageError

        raise StorageError(
            f"the catalog's Arrow schema of the series is damaged ({type(error).__name__}: "
            f"{error}); rebuild the catalog from the blocks with `featurizer storage "
            f"rebuild-catalog`",
            series=series,
        ) from error


def block_description(
    table: pa.Table, series: SeriesInfo, session: str, ordinal: int, storage_id: str
) -> dict[str, Any]:
    """The self-description stored in a block's metadata (see :data:`BLOCK_KEY`)."""
    import pyarrow.compute as pc

    timestamps = pc.min_max(table.column("timestamp")).as_py()
    seqs = table.column(SEQ_COLUMN)
    return {
        "format": 1,
        "storage": storage_id,
        "session": session,
        "ordinal": ordinal,
        "series": {
            "key": series.key,
            "name": series.name,
            "definition": series.definition,
            "kind": series.kind,
            "params": series.params,
            "children": series.children,
            "schema": series.schema,
        },
        "rows": table.num_rows,
        "min_seq": int(seqs[0].as_py()),
        "max_seq": int(seqs[-1].as_py()),
        "start_ts": float(timestamps["min"]),
        "end_ts": float(timestamps["max"]),
    }


def read_description(parquet: pq.ParquetFile) -> dict[str, Any] | None:
    """A block's self-description, if it has one (blocks written before it had none)."""
    raw = (parquet.metadata.metadata or {}).get(BLOCK_KEY)
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


def encode_block(
    table: pa.Table, series: SeriesInfo, fmt: BlockFormat, description: dict[str, Any]
) -> Any:
    """Encode a table of one series as Parquet bytes (a ``pyarrow.Buffer``)."""
    pa = require_pyarrow()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    repeated = [
        field.name
        for field in table.schema
        if (pa.types.is_string(field.type) or pa.types.is_binary(field.type))
        and pc.count_distinct(table.column(field.name)).as_py() <= max(16, table.num_rows // 16)
    ]
    metadata = {
        b"featurizer.series": series.key.encode(),
        b"featurizer.definition": series.definition.encode(),
        DICTIONARY_KEY: ",".join(repeated).encode(),
        BLOCK_KEY: json.dumps(description, sort_keys=True).encode(),
    }
    table = table.replace_schema_metadata(metadata)
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=fmt.compression,
        row_group_size=fmt.row_group_rows,
        use_dictionary=repeated or False,
        column_encoding=_column_encodings(table.schema, fmt),
        write_statistics=[SEQ_COLUMN, "timestamp"],
    )
    return sink.getvalue()


def write_block(
    root: Path,
    table: pa.Table,
    series: SeriesInfo,
    session: str,
    ordinal: int,
    fmt: BlockFormat,
    storage_id: str = "",
) -> BlockInfo:
    """Encode, checksum and atomically publish one block file (not yet in the catalog).

    :param root: the storage root.
    :param table: the series' rows, in arrival order, with :data:`SEQ_COLUMN`.
    :param series: the series.
    :param session: the recording session.
    :param ordinal: the block's position in the session's blocks of the series.
    :param fmt: the encoding.
    :param storage_id: the storage's identity (recorded in the block's metadata).
    :returns: the block's catalog row (``id`` 0 until committed).
    :raises StorageError: if a file of that name exists (block files are never replaced).
    """
    description = block_description(table, series, session, ordinal, storage_id)
    data = encode_block(table, series, fmt, description)
    relative = block_relative_path(
        series.definition,
        series.key,
        description["start_ts"],
        description["min_seq"],
        session,
        uuid.uuid4().hex[:8],
    )
    view = memoryview(data)
    publish(root, relative, view)
    return BlockInfo(
        id=0,
        series_key=series.key,
        session=session,
        ordinal=ordinal,
        path=relative,
        start_ts=description["start_ts"],
        end_ts=description["end_ts"],
        rows=table.num_rows,
        min_seq=description["min_seq"],
        max_seq=description["max_seq"],
        bytes=data.size,
        checksum=checksum(view),
    )


def read_block_bytes(root: Path, block: BlockInfo, series_label: str) -> bytes:
    """Read a block file and check its size and checksum.

    :raises MissingBlockError: if the file is missing.
    :raises CorruptBlockError: if its size or checksum differ from the catalog's.
    """
    path = root / block.path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingBlockError(
            "the catalog lists this block but its file does not exist (deleted or moved?); "
            "run `featurizer storage verify` to list every damaged block",
            series=series_label,
            block=block.id,
            path=str(path),
        ) from None
    except OSError as error:
        raise CorruptBlockError(
            f"cannot read the block file: {error}",
            series=series_label,
            block=block.id,
            path=str(path),
        ) from error
    if len(data) != block.bytes:
        raise CorruptBlockError(
            f"the file has {len(data):,} bytes but the catalog recorded {block.bytes:,} "
            f"(truncated or overwritten)",
            series=series_label,
            block=block.id,
            path=str(path),
        )
    actual = checksum(data)
    if actual != block.checksum:
        raise CorruptBlockError(
            f"checksum mismatch: the file hashes to {actual} but the catalog recorded "
            f"{block.checksum} (the file is corrupt)",
            series=series_label,
            block=block.id,
            path=str(path),
        )
    return data


def open_block(
    data: bytes,
    block: BlockInfo,
    series_label: str,
    path: Path,
    expected: pa.Schema | None,
    dictionaries: bool = False,
) -> pq.ParquetFile:
    """Open checked block bytes as Parquet and check their schema against the series'.

    :param dictionaries: read the block's low-cardinality string columns as dictionary
        arrays (each distinct string decoded once).
    :raises CorruptBlockError: if the bytes are not readable Parquet or the row count differs.
    :raises SchemaMismatchError: if the block's schema differs from the series'.
    """
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        if dictionaries:
            names = (parquet.metadata.metadata or {}).get(DICTIONARY_KEY, b"").decode()
            if names:
                parquet = pq.ParquetFile(pa.BufferReader(data), read_dictionary=names.split(","))
        schema = parquet.schema_arrow
    except Exception as error:
        raise CorruptBlockError(
            f"not a readable Parquet file: {error}",
            series=series_label,
            block=block.id,
            path=str(path),
        ) from error
    if parquet.metadata.num_rows != block.rows:
        raise CorruptBlockError(
            f"the file holds {parquet.metadata.num_rows:,} rows but the catalog recorded "
            f"{block.rows:,}",
            series=series_label,
            block=block.id,
            path=str(path),
        )
    if expected is not None:
        problem = compatible_schema(schema, expected)
        if problem is not None:
            raise SchemaMismatchError(
                f"the block's schema does not match the series': {problem}",
                series=series_label,
                block=block.id,
                path=str(path),
            )
    return parquet
