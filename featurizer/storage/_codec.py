"""Events to Arrow and back, exactly.

A series' events are stored as columns, one per schema field (``timestamp`` and
``receipt_timestamp`` included) plus :data:`SEQ_COLUMN`, the recording-wide arrival number used
as the stable tie-break when sources are merged. ``float`` fields are ``float64`` columns, so
the bits that went in come out (``-0.0``, subnormals and NaN payloads included); ``int`` fields
are ``int64``; ``str``, ``bool`` and ``bytes`` map to their Arrow types; ``tuple`` (and
``list``) fields become nested Arrow lists whose element type is taken from the first non-empty
value of the series (an order book side, ``((price, size), ...)``, becomes
``list<list<double>>``) and are read back as tuples (lists).

Columns keep the key order of the first event recorded, so replayed events have the same key
order as live ones. pyarrow is imported inside the functions that need it.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from featurizer._events import Event, full_schema
from featurizer.storage._errors import SchemaMismatchError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "SEQ_COLUMN",
    "EventDecoder",
    "EventEncoder",
    "compatible_schema",
    "float_list",
    "require_pyarrow",
    "schema_from_json",
    "schema_to_json",
]

SEQ_COLUMN = "__seq__"
"""The arrival-order column every stored batch carries (not part of the events)."""

_TYPE_NAMES: dict[type, str] = {
    float: "float",
    int: "int",
    str: "str",
    bool: "bool",
    bytes: "bytes",
    tuple: "tuple",
    list: "list",
}


def require_pyarrow() -> Any:
    """Import pyarrow or fail with an error saying how to install it.

    :returns: the ``pyarrow`` module.
    :raises StorageError: if pyarrow is not installed.
    """
    try:
        import pyarrow
    except ImportError as error:  # pragma: no cover - pyarrow is a dev dependency
        from featurizer.storage._errors import StorageError

        raise StorageError(
            "featurizer storage needs pyarrow: pip install 'featurizer[parquet]' (or pyarrow)"
        ) from error
    return pyarrow


def schema_to_json(schema: Mapping[str, type]) -> str:
    """A definition's full schema (timestamps included) as canonical JSON of type names.

    :param schema: the definition's own fields (``event_schema()``).
    :returns: ``{"field": "float", ...}`` with sorted keys.
    :raises SchemaMismatchError: for a field type storage cannot represent.
    """
    names: dict[str, str] = {}
    for field, kind in full_schema(schema).items():
        if kind not in _TYPE_NAMES:
            raise SchemaMismatchError(
                f"field {field!r} has type {getattr(kind, '__name__', kind)!r}, which storage "
                f"cannot represent (supported: {', '.join(_TYPE_NAMES.values())})"
            )
        names[field] = _TYPE_NAMES[kind]
    return json.dumps(names, sort_keys=True)


def schema_from_json(text: str) -> dict[str, str]:
    """Parse :func:`schema_to_json` output."""
    value = json.loads(text)
    return {str(k): str(v) for k, v in value.items()}


def _scalar_type(value: Any) -> pa.DataType | None:
    pa = require_pyarrow()
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, bytes):
        return pa.binary()
    if isinstance(value, tuple | list):
        for item in value:
            inner = _scalar_type(item)
            if inner is not None:
                return pa.list_(inner)
        return None
    if value is None:
        return None
    raise TypeError(f"cannot store a {type(value).__name__} ({value!r})")


def _has_null_type(data_type: pa.DataType) -> bool:
    pa = require_pyarrow()
    if pa.types.is_null(data_type):
        return True
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return _has_null_type(data_type.value_type)
    return False


def compatible_schema(block: pa.Schema, series: pa.Schema) -> str | None:
    """Why ``block`` cannot be read as ``series`` (``None`` when it can).

    A block may have a ``list<null>`` column (every value empty) where the series has a concrete
    nested type; every other field must match exactly.

    :param block: the schema of a stored block.
    :param series: the series' schema from the catalog.
    :returns: a description of the first difference, or ``None``.
    """
    pa = require_pyarrow()
    block_names = list(block.names)
    series_names = list(series.names)
    if sorted(block_names) != sorted(series_names):
        missing = sorted(set(series_names) - set(block_names))
        extra = sorted(set(block_names) - set(series_names))
        return f"columns differ (missing: {missing or 'none'}, unexpected: {extra or 'none'})"
    for name in series_names:
        want = series.field(name).type
        got = block.field(name).type
        if pa.types.is_dictionary(got):
            got = got.value_type
        if got.equals(want):
            continue
        if _has_null_type(got) and not _has_null_type(want):
            continue
        return f"column {name!r} has type {got} but the series stores {want}"
    return None


def _arrow_type_for(kind: str) -> pa.DataType | None:
    pa = require_pyarrow()
    return {
        "float": pa.float64(),
        "int": pa.int64(),
        "str": pa.string(),
        "bool": pa.bool_(),
        "bytes": pa.binary(),
    }.get(kind)


def _kind_of(data_type: pa.DataType) -> str:
    """The type name of a stored extra column."""
    pa = require_pyarrow()
    if pa.types.is_float64(data_type):
        return "float"
    if pa.types.is_int64(data_type):
        return "int"
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_binary(data_type):
        return "bytes"
    return "str"


class EventEncoder:
    """Turns lists of events of one series into Arrow record batches.

    :param series: the series' readable name (for errors).
    :param schema: the series' full schema, field to type name (:func:`schema_from_json`).
    :param arrow_schema: the series' established Arrow schema, if blocks were stored before.
    """

    def __init__(
        self, series: str, schema: Mapping[str, str], arrow_schema: pa.Schema | None = None
    ) -> None:
        self.series = series
        self.schema = dict(schema)
        self._columns: tuple[str, ...] | None = None
        self._types: dict[str, pa.DataType | None] = {}
        if arrow_schema is not None:
            self._columns = tuple(n for n in arrow_schema.names if n != SEQ_COLUMN)
            for name in self._columns:
                data_type = arrow_schema.field(name).type
                self._types[name] = None if _has_null_type(data_type) else data_type
                if name not in self.schema:  # a stored field beyond the definition's
                    self.schema[name] = _kind_of(data_type)
        else:
            for name, kind in self.schema.items():
                self._types[name] = _arrow_type_for(kind)
        self._getter: Callable[[Event], tuple[Any, ...]] | None = None
        self._fast: pa.Schema | None = None
        if self._columns is not None:
            self._getter = operator.itemgetter(*self._columns)

    @property
    def arrow_schema(self) -> pa.Schema | None:
        """The schema batches are written with, once every column type is known."""
        pa = require_pyarrow()
        if self._columns is None or any(self._types[n] is None for n in self._columns):
            return None
        fields = [pa.field(n, self._types[n]) for n in self._columns]
        return pa.schema([*fields, pa.field(SEQ_COLUMN, pa.int64())])

    def _choose_columns(self, first: Event) -> tuple[str, ...]:
        if set(first) == set(self.schema):
            return tuple(first)
        return tuple(self.schema)

    def _check_fields(self, events: Sequence[Event]) -> None:
        expected = set(self.schema)
        for event in events:
            if not isinstance(event, Mapping):
                raise SchemaMismatchError(
                    f"expected event mappings, received {type(event).__name__} {event!r}",
                    series=self.series,
                )
            keys = set(event)
            if keys != expected:
                missing = sorted(expected - keys)
                extra = sorted(keys - expected)
                raise SchemaMismatchError(
                    f"event fields do not match the definition's schema (missing: "
                    f"{missing or 'none'}, not in the schema: {extra or 'none'}); received "
                    f"{event!r}",
                    series=self.series,
                )

    def encode(self, events: Sequence[Event], first_seq: int) -> pa.RecordBatch:
        """Encode ``events`` whose arrival numbers are ``first_seq, first_seq + 1, ...``.

        :param events: events of this series, in arrival order.
        :param first_seq: the arrival number of the first one.
        :returns: a record batch with one column per field plus :data:`SEQ_COLUMN`.
        :raises SchemaMismatchError: naming the series, the field and the offending value.
        """
        return self.encode_with_seqs(events, range(first_seq, first_seq + len(events)))

    def encode_with_seqs(self, events: Sequence[Event], seqs: Sequence[int]) -> pa.RecordBatch:
        """Encode ``events`` with explicit arrival numbers (one per event, increasing).

        :param events: events of this series, in arrival order.
        :param seqs: their arrival numbers.
        :returns: a record batch with one column per field plus :data:`SEQ_COLUMN`.
        :raises SchemaMismatchError: naming the series, the field and the offending value.
        """
        pa = require_pyarrow()
        if not events:
            raise ValueError("encode() needs at least one event")
        if self._columns is None:
            self._columns = self._choose_columns(events[0])
            self._getter = operator.itemgetter(*self._columns)
        assert self._getter is not None
        columns = self._columns
        if set(map(len, events)) != {len(columns)}:
            self._check_fields(events)
        seq_array = seqs if isinstance(seqs, pa.Array) else pa.array(seqs, type=pa.int64())
        fast = self._fast_schema
        if fast is not None:
            try:
                batch = pa.RecordBatch.from_pylist(events, schema=fast)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
                batch = None
            if batch is not None:
                if any(column.null_count for column in batch.columns):
                    self._check_fields(events)
                return pa.RecordBatch.from_arrays(
                    [*batch.columns, seq_array], names=[*columns, SEQ_COLUMN]
                )
        return self._encode_columns(events, seq_array)

    @property
    def _fast_schema(self) -> pa.Schema | None:
        """The event columns' schema once every type is known (for the one-call fast path)."""
        columns = self._columns
        if (
            self._fast is None
            and columns is not None
            and all(self._types[name] is not None for name in columns)
        ):
            pa = require_pyarrow()
            self._fast = pa.schema([pa.field(n, self._types[n]) for n in columns])
        return self._fast

    def _encode_columns(self, events: Sequence[Event], seqs: pa.Array) -> pa.RecordBatch:
        """Column by column: infers nested types and names the offending value on errors."""
        pa = require_pyarrow()
        assert self._columns is not None and self._getter is not None
        columns = self._columns
        try:
            rows = list(map(self._getter, events))
        except (KeyError, TypeError):
            self._check_fields(events)
            raise
        values = list(zip(*rows, strict=True))
        arrays = [self.column(name, column) for name, column in zip(columns, values, strict=True)]
        arrays.append(seqs)
        return pa.RecordBatch.from_arrays(arrays, names=[*columns, SEQ_COLUMN])

    def column(self, name: str, values: Sequence[Any]) -> pa.Array:
        """One field's values as an Arrow array of the series' type (inferred for nested types
        from the first non-empty value).

        :raises SchemaMismatchError: naming the series, the field and the offending value.
        """
        pa = require_pyarrow()
        data_type = self._types[name]
        if data_type is None:
            data_type = self._infer(name, values)
        try:
            return pa.array(values, type=data_type, from_pandas=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as error:
            bad = self._first_bad(values, data_type)
            raise SchemaMismatchError(
                f"field {name!r} ({self.schema.get(name)}) cannot be stored as {data_type}: "
                f"{error}; offending value {bad!r}",
                series=self.series,
            ) from error

    def add_field(self, name: str, kind: str) -> None:
        """Store a field beyond the definition's schema (fixed by a series' first event)."""
        self.schema[name] = kind
        self._types[name] = _arrow_type_for(kind)
        self._fast = None

    @property
    def columns(self) -> tuple[str, ...] | None:
        """The column order, once decided (the first event's key order)."""
        return self._columns

    def set_columns(self, columns: Sequence[str]) -> None:
        """Decide the column order (if not decided yet)."""
        if self._columns is None:
            self._columns = tuple(columns)
            self._getter = operator.itemgetter(*self._columns)

    def _infer(self, name: str, column: Sequence[Any]) -> pa.DataType:
        pa = require_pyarrow()
        kind = self.schema.get(name)
        for value in column:
            if kind in ("tuple", "list") and not isinstance(value, tuple | list):
                raise SchemaMismatchError(
                    f"field {name!r} ({kind}) cannot be stored: expected a {kind}, received "
                    f"{type(value).__name__} {value!r}",
                    series=self.series,
                )
            try:
                data_type = _scalar_type(value)
            except TypeError as error:
                raise SchemaMismatchError(f"field {name!r}: {error}", series=self.series) from error
            if data_type is not None:
                self._types[name] = data_type
                return data_type
        return pa.list_(pa.null())

    @staticmethod
    def _first_bad(column: Sequence[Any], data_type: pa.DataType) -> Any:
        pa = require_pyarrow()
        for value in column:
            try:
                pa.array([value], type=data_type)
            except Exception:
                return value
        return None


def float_list(array: pa.Array, code: str) -> list[Any]:
    """A primitive array as a Python list, read straight from its buffer when possible."""
    if array.null_count == 0:
        data = array.buffers()[1]
        if data is not None:
            try:
                view = memoryview(data).cast(code)  # type: ignore[call-overload]
            except TypeError:
                view = None
            if view is not None and len(view) >= array.offset + len(array):
                return view[array.offset : array.offset + len(array)].tolist()
    return array.to_pylist()


def _strings(array: pa.Array) -> list[Any]:
    pa = require_pyarrow()
    if pa.types.is_dictionary(array.type) and array.null_count == 0:
        dictionary = array.dictionary.to_pylist()
        indices = array.indices
        code = {1: "b", 2: "h", 4: "i", 8: "q"}[indices.type.bit_width // 8]
        return list(map(dictionary.__getitem__, float_list(indices, code)))
    return array.to_pylist()


def _to_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuples(item) for item in value)
    return value


def _pairs_fast(array: pa.Array) -> list[Any] | None:
    """``list<list<double>>`` of 2-element inner lists (book levels) as tuples, quickly."""
    pa = require_pyarrow()
    import pyarrow.compute as pc

    if array.null_count:
        return None
    inner = array.flatten()
    if inner.null_count or len(inner) == 0:
        return None
    lengths = pc.min_max(pc.list_value_length(inner)).as_py()
    if lengths != {"min": 2, "max": 2}:
        return None
    leaves = inner.flatten()
    if leaves.null_count or not pa.types.is_float64(leaves.type):
        return None
    values = float_list(leaves, "d")
    it = iter(values)
    pairs = list(zip(it, it, strict=False))
    offsets = float_list(array.offsets, "i")
    base = offsets[0]
    return [tuple(pairs[a - base : b - base]) for a, b in itertools.pairwise(offsets)]


def _converter(data_type: pa.DataType, kind: str) -> Callable[[pa.Array], list[Any]]:
    pa = require_pyarrow()
    if pa.types.is_float64(data_type):
        return lambda array: float_list(array, "d")
    if pa.types.is_int64(data_type):
        return lambda array: float_list(array, "q")
    if pa.types.is_dictionary(data_type) or pa.types.is_string(data_type):
        return _strings
    is_list = pa.types.is_list(data_type)
    if is_list and kind == "tuple":
        nested_pairs = pa.types.is_list(data_type.value_type) and pa.types.is_float64(
            data_type.value_type.value_type
        )

        def tuples(array: Any) -> list[Any]:
            if nested_pairs:
                fast = _pairs_fast(array)
                if fast is not None:
                    return fast
            return [_to_tuples(value) for value in array.to_pylist()]

        return tuples
    return lambda array: array.to_pylist()


def _builder(names: Sequence[str]) -> Callable[..., list[Event]]:
    """Generated code building one dict display per row: the fastest way to build events."""
    args = ", ".join(f"c{i}" for i in range(len(names)))
    items = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names))
    row = ", ".join(f"v{i}" for i in range(len(names)))
    source = (
        f"def build({args}):\n"
        f"    return [{{{items}}} for {row}{',' if len(names) == 1 else ''} in zip({args})]\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<featurizer event builder>", "exec"), namespace)
    return namespace["build"]


class EventDecoder:
    """Turns Arrow tables of one series back into event dicts.

    :param arrow_schema: the series' Arrow schema (the event columns and :data:`SEQ_COLUMN`).
    :param schema: the series' full schema, field to type name.
    """

    def __init__(self, arrow_schema: pa.Schema, schema: Mapping[str, str]) -> None:
        self.names = tuple(n for n in arrow_schema.names if n != SEQ_COLUMN)
        self._converters = [
            _converter(arrow_schema.field(n).type, schema.get(n, "")) for n in self.names
        ]
        self._build = _builder(self.names)

    def decode(self, table: pa.Table | pa.RecordBatch) -> list[Event]:
        """Build one event dict per row, keys in the recorded order.

        :param table: rows of this series (any column order; :data:`SEQ_COLUMN` is ignored).
        :returns: the events.
        """
        columns = []
        for name, convert in zip(self.names, self._converters, strict=True):
            column = table.column(name)
            if hasattr(column, "chunks"):
                chunks = column.chunks
                if len(chunks) == 1:
                    column = chunks[0]
                else:
                    values: list[Any] = []
                    for chunk in chunks:
                        values.extend(convert(chunk))
                    columns.append(values)
                    continue
            columns.append(convert(column))
        return self._build(*columns)
