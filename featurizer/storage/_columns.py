"""Column buffers: the recording hot path, writing each field straight into a typed buffer.

Converting event dicts to columns long after they were produced is dominated by cache misses
(the dicts and their floats are scattered over the heap and cold by then), so the recorder
copies each field while the event is still hot, two calls per kind of field: the ``float``
fields of an event are packed by one precompiled ``struct`` (checked and converted at once, or
not at all) and appended to one ``array('d')`` as bytes, its ``int`` fields likewise into an
``array('q')``, its other fields into a list, each interleaved (event after event). (Packing
copies the bits that went in; it is about 40 ns per event of four floats cheaper than
``array.fromlist``, which parses each item as a call argument.) The writer's thread takes
every ``k``-th value as a column (the numeric ones become Arrow arrays without converting
Python objects: a kind's columns laid one after the other in one array, each column a slice
of it). An event is committed by appending its series to the shared order list
last, so the writer's thread always takes whole events; a malformed event leaves nothing
behind. Once a series' first event is recorded, a graph writes these statements into its own
generated code in place of the call (:mod:`featurizer._inline`): no Python call per stored
event.

Fields beyond the definition's schema (a venue that sends optional fields, such as a ticker's
sizes) are stored too, never dropped: the first event of a series fixes them (as extra
columns, typed from their values), and every later event must carry the same fields.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Mapping, MutableSequence, Sequence
from typing import TYPE_CHECKING, Any

from featurizer._events import Event
from featurizer._inline import INLINE_ATTRIBUTE, InlineCode
from featurizer.storage._codec import SEQ_COLUMN, EventEncoder, require_pyarrow
from featurizer.storage._errors import SchemaMismatchError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ColumnBuffer"]

_TYPECODES = {"float": "d", "int": "q"}
_ARROW_TYPES = {"float": "float64", "int": "int64"}  # (pyarrow type factories)
_GROUPS = ("int", "float", "other")  # the hot path fills them in this order (ints fail most)


def _group(kind: str) -> str:
    return kind if kind in _TYPECODES else "other"


_EXTRA_KINDS = {float: "float", int: "int", str: "str", bool: "bool", bytes: "bytes"}


class _FieldCountError(Exception):
    """An event has another number of fields than its schema."""


class ColumnBuffer:
    """The per-field buffers of one recorded series.

    :param label: the series' label (for errors).
    :param fields: ``(field, type name)`` in the definition's order, timestamps first.
    :param encoder: the series' encoder (types of nested fields, stored column order).
    """

    def __init__(
        self, label: str, fields: Sequence[tuple[str, str]], encoder: EventEncoder
    ) -> None:
        self.label = label
        self.fields = tuple(fields)
        self.encoder = encoder
        known = {name for name, _ in self.fields}
        extras = [name for name in encoder.columns or () if name not in known]
        self.fields += tuple((name, encoder.schema[name]) for name in extras)
        self.buffers: dict[str, Any] = {
            "int": array("q"),
            "float": array("d"),
            "other": [],
        }
        self.sample: list[Event] = []
        self._namespace: dict[str, Any] | None = None
        self._inline_index: int | None = None
        self._listeners: list[Callable[[], None]] = []

    def recorder(
        self,
        index: int,
        order: MutableSequence[int],
        high: int,
        wait: Callable[[], None],
        fail: Callable[[BaseException], None],
    ) -> Callable[[Event], None]:
        """The hot-path callback: copy the fields, then commit the event in ``order``.

        :param index: the series' index (what ``order`` records).
        :param order: the shared sequence (a ``bytearray``, ``array("i")`` or list) committing
            events in arrival order.
        :param high: the length of ``order`` at which producers wait.
        :param wait: called to wait for room (backpressure).
        :param fail: called with the schema error of a malformed event (before it is raised).
        """
        namespace: dict[str, Any] = {
            "_sample": self.sample,
            "_append_order": order.append,
            "_order": order,
            "_high": high,
            "_wait": wait,
            "_fail": self._failure(fail),
            "_FieldCountError": _FieldCountError,
        }
        self._namespace = namespace
        self._compile(namespace, index, slow=True)
        return namespace["record"]

    def graph_recorder(self) -> Callable[[Any, Event], None]:
        """The recorder of :meth:`recorder` taking ``(feature, event)`` (graph callbacks).

        :raises RuntimeError: if :meth:`recorder` was not called first.
        """
        if self._namespace is None:
            raise RuntimeError("graph_recorder() needs recorder() first")
        function: Callable[[Any, Event], None] = self._namespace["record_from_graph"]
        setattr(function, INLINE_ATTRIBUTE, self)
        return function

    def _compile(self, namespace: dict[str, Any], index: int, *, slow: bool) -> Any:
        """Compile the recorders for the current fields: ``namespace["record"]`` (called with
        the event) and ``namespace["record_from_graph"]`` (called with the feature and the
        event, as graph callbacks are: one Python call less per event).

        With ``slow``, an event with another number of fields first goes to
        :meth:`_first_event_extras` (only until the first event is recorded). Until an event
        is recorded, each call also keeps it as the series' sample and, the first time, compiles
        the recorders again without either (a test less per event for the rest of the run).
        From then on a graph may write the statements in its own code (:meth:`inline`): the
        graphs that do are told (:meth:`on_change`) to compile theirs again.
        """
        first = not self.sample
        if slow:
            namespace["_extras"] = lambda event: self._first_event_extras(event, index)
        for group in _GROUPS:
            names = [name for name, kind in self.fields if _group(kind) == group]
            if names and group == "other":
                namespace["_add_other"] = self.buffers[group].extend
            elif names:
                namespace[f"_add_{group}"] = self.buffers[group].frombytes
                namespace[f"_pack_{group}"] = struct.Struct(f"{len(names)}{_TYPECODES[group]}").pack
        namespace["_trim"] = self._trim
        if first:
            namespace["_first"] = lambda event: self._first_recorded(event, index)
        body = [
            f"    {line}" for line in self._statements("event", index, str, slow=slow, first=first)
        ]
        lines = ["def record(event):", *body, "def record_from_graph(_feature, event):", *body]
        code = compile("\n".join(lines) + "\n", f"<featurizer recorder {self.label}>", "exec")
        previous = {name: namespace.get(name) for name in ("record", "record_from_graph")}
        exec(code, namespace)
        for name, function in previous.items():
            if function is not None:
                # Callbacks already handed out keep working: they take the new code.
                function.__code__ = namespace[name].__code__
                namespace[name] = function
        inline_before = self._inline_index is not None
        self._inline_index = None if slow or first else index
        if self._inline_index is not None or inline_before:
            for listener in list(self._listeners):
                listener()
        return namespace["record"]

    def _statements(
        self, event: str, index: int, name: Callable[[str], str], *, slow: bool, first: bool
    ) -> list[str]:
        """The recorder's statements for the event named ``event``; ``name`` renames every
        other name they use (the namespace's and their own locals)."""
        lines = ["try:", f"    if len({event}) != {len(self.fields)}:"]
        if slow:
            lines.append(f"        if not {name('_sample')} and {name('_extras')}({event}):")
            lines.append(f"            return {name('record')}({event})")
        lines.append(f"        raise {name('_FieldCountError')}()")
        filled = []
        for group in _GROUPS:
            names = [field for field, kind in self.fields if _group(kind) == group]
            if not names:
                continue
            values = ", ".join(f"{event}[{field!r}]" for field in names)
            if group == "other":
                lines.append(f"    {name('_v_other')} = ({values},)")
            else:
                lines.append(f"    {name(f'_v_{group}')} = {name(f'_pack_{group}')}({values})")
            filled.append(group)
        lines += [f"    {name(f'_add_{group}')}({name(f'_v_{group}')})" for group in filled]
        lines += [
            f"except Exception as {name('_error')}:",
            f"    {name('_trim')}()",
            f"    {name('_fail')}({event}, {name('_error')})",
            "    raise",
            *([f"{name('_first')}({event})"] if first else []),
            f"{name('_append_order')}({index})",
            f"if len({name('_order')}) >= {name('_high')}:",
            f"    {name('_wait')}()",
        ]
        return lines

    def inline(self, event: str, prefix: str) -> InlineCode | None:
        """The recorder as statements a graph writes in its generated code instead of a call
        (:mod:`featurizer._inline`); ``None`` until the series' first event is recorded."""
        if self._inline_index is None or self._namespace is None:
            return None
        namespace = {
            f"{prefix}{key}": value
            for key, value in self._namespace.items()
            if key.startswith("_") and not key.startswith("__")
        }
        lines = self._statements(
            event, self._inline_index, lambda name: f"{prefix}{name}", slow=False, first=False
        )
        return InlineCode(lines=tuple(lines), namespace=namespace)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever :meth:`inline` would return other statements."""
        self._listeners.append(listener)

    def _first_recorded(self, event: Event, index: int) -> None:
        """Keep the first recorded event as the sample; recompile without the first-event
        code (the recorder's current call finishes on the code it started with)."""
        if not self.sample and self._namespace is not None:
            self.sample.append(event)
            self._compile(self._namespace, index, slow=False)

    def _first_event_extras(self, event: Any, index: int) -> bool:
        """On the first event: add its fields beyond the schema as extra columns.

        :returns: whether the recorder was recompiled (the event should be recorded again).
        """
        if not isinstance(event, Mapping) or self._namespace is None:
            return False
        known = {name for name, _ in self.fields}
        if not known <= set(event) or self.encoder.columns is not None:
            return False
        extras = [name for name in event if name not in known]
        kinds = [_EXTRA_KINDS.get(type(event[name])) for name in extras]
        if not extras or any(kind is None for kind in kinds):
            return False
        for name, kind in zip(extras, kinds, strict=True):
            assert kind is not None
            self.fields += ((name, kind),)
            self.encoder.add_field(name, kind)  # (no event recorded yet: buffers are empty)
        self._compile(self._namespace, index, slow=False)
        return True

    def _failure(
        self, fail: Callable[[BaseException], None]
    ) -> Callable[[Event, BaseException], None]:
        def describe(event: Any, error: BaseException) -> None:
            expected = [name for name, _ in self.fields]
            problem: SchemaMismatchError
            if not isinstance(event, Mapping):
                problem = SchemaMismatchError(
                    f"expected event mappings, received {type(event).__name__} {event!r}",
                    series=self.label,
                )
            elif set(event) != set(expected):
                missing = sorted(set(expected) - set(event))
                extra = sorted(set(event) - set(expected))
                problem = SchemaMismatchError(
                    f"event fields do not match the definition's schema (missing: "
                    f"{missing or 'none'}, not in the schema: {extra or 'none'}); received "
                    f"{event!r}",
                    series=self.label,
                )
            else:
                bad = next(
                    (
                        (name, kind, misfit)
                        for name, kind in self.fields
                        if kind in _TYPECODES and (misfit := _misfit(event[name], kind)) is not None
                    ),
                    ("?", "?", error),
                )
                problem = SchemaMismatchError(
                    f"field {bad[0]!r} ({bad[1]}) cannot be stored: "
                    f"{type(bad[2]).__name__}: {bad[2]}; offending value "
                    f"{event.get(bad[0])!r} in {event!r}",
                    series=self.label,
                )
            fail(problem)
            raise problem from error

        return describe

    def _widths(self) -> dict[str, int]:
        """Per group, the number of fields an event has in it."""
        widths = dict.fromkeys(_GROUPS, 0)
        for _, kind in self.fields:
            widths[_group(kind)] += 1
        return widths

    def _trim(self) -> None:
        """Drop what a failed event left in some groups and not in others (each group takes an
        event whole or not at all, so the complete events are the fewest any group holds)."""
        widths = self._widths()
        complete = min((len(self.buffers[g]) // w for g, w in widths.items() if w), default=0)
        for group, width in widths.items():
            del self.buffers[group][complete * width :]

    def take_raw(self, count: int) -> tuple[array, array, list[Any]]:
        """Remove the first ``count`` events' fields as they are buffered: the ``int`` and
        the ``float`` fields (each an array, interleaved event after event) and the others
        (a list, likewise); :meth:`put_raw` appends them to another buffer of the series."""
        widths = self._widths()
        taken = []
        for group in _GROUPS:
            buffer = self.buffers[group]
            end = count * widths[group]
            taken.append(buffer[:end])
            del buffer[:end]
        ints, floats, others = taken
        return ints, floats, others

    def put_raw(self, ints: Any, floats: Any, others: list[Any]) -> None:
        """Append fields :meth:`take_raw` took (numeric ones as arrays or their bytes)."""
        for group, values in (("int", ints), ("float", floats)):
            self.buffers[group].frombytes(values if isinstance(values, bytes) else bytes(values))
        self.buffers["other"].extend(others)

    def take(self, count: int, seqs: pa.Array) -> pa.RecordBatch:
        """Remove the first ``count`` events' fields and return them as a record batch.

        :param count: committed events to take.
        :param seqs: their arrival numbers.
        """
        pa = require_pyarrow()
        widths = self._widths()
        by_group: dict[str, list[Any]] = {}
        for group, width in widths.items():
            buffer = self.buffers[group]
            end = count * width
            if group == "other":
                part = buffer[:end]
                by_group[group] = [part if width == 1 else part[i::width] for i in range(width)]
            elif width:
                # One array holding the group's columns one after the other, each column a
                # slice of it: one call into Arrow (which hands the GIL over) per group
                # instead of one per column.
                data = (
                    buffer[:end]
                    if width == 1
                    else b"".join(buffer[i:end:width] for i in range(width))
                )
                whole = pa.Array.from_buffers(
                    getattr(pa, _ARROW_TYPES[group])(), end, [None, pa.py_buffer(data)]
                )
                by_group[group] = [whole.slice(i * count, count) for i in range(width)]
            del buffer[:end]
        positions = dict.fromkeys(_GROUPS, 0)
        values: dict[str, Any] = {}
        for name, kind in self.fields:
            group = _group(kind)
            column = by_group[group][positions[group]]
            positions[group] += 1
            values[name] = self.encoder.column(name, column) if group == "other" else column
        if self.encoder.columns is None:
            keys = list(self.sample[0]) if self.sample else []
            self.encoder.set_columns(keys if set(keys) == set(values) else list(values))
        columns = self.encoder.columns
        assert columns is not None
        return pa.RecordBatch.from_arrays(
            [*(values[name] for name in columns), seqs], names=[*columns, SEQ_COLUMN]
        )


def _misfit(value: Any, kind: str) -> Exception | None:
    """Why ``value`` cannot be stored in a ``kind`` column (``None`` if it can)."""
    try:
        array(_TYPECODES[kind], [value])
    except (TypeError, OverflowError, ValueError) as error:
        return error
    return None
