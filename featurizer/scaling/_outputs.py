"""How outputs leave the workers: encoded for the driver's JSON Lines rows, or written by
each worker.

In the default mode every worker ships every output record to the driver, which merges and
combines them into one output. When the driver writes JSON Lines, each worker also encodes its
outputs' columns (:class:`JsonColumns`), so that the driver builds each combined row by joining
text (:func:`join_json_row`) instead of encoding every value of every row itself: the per-row
work is spread over the workers.

With a :class:`WorkerOutputs`, each worker merges, combines and writes its own outputs to its
own file (through a registered sink, see :meth:`~featurizer.Plugins.sinks`), and sends the
driver nothing but its final metrics (and its error, if it fails).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from featurizer._events import Event
from featurizer._feature import Feature
from featurizer._plugins import Plugins
from featurizer._sinks import JsonLinesSink, Sink, encode_json
from featurizer.scaling._errors import ScalingError

__all__ = [
    "OUTPUT_MODES",
    "ROW_PARTS",
    "JsonColumns",
    "RowColumns",
    "WorkerOutputs",
    "join_json_row",
    "merge_row",
    "names_keep_columns_apart",
]

ROW_PARTS = ("json", "columns")
"""What workers send the driver for its combined rows (see :class:`JsonColumns` and
:class:`RowColumns`)."""

_TIMESTAMPS = ("timestamp", "receipt_timestamp")
_FLOAT_REPR = float.__repr__
_INT_REPR = int.__repr__

OUTPUT_MODES = ("driver", "workers")
"""``--outputs``: ``driver`` (the driver merges every output, default) or ``workers``."""

_PLACEHOLDER = "{worker}"


@attrs.frozen(kw_only=True)
class WorkerOutputs:
    """Where each worker of a run writes its own output (``--outputs workers --out TARGET``).

    ``target`` names one file per worker:

    * with ``{worker}`` in it, that is replaced by the worker's index
      (``out/part-{worker}.parquet``);
    * an existing directory (or a path ending in ``/``): ``DIR/worker-N.jsonl`` (the suffix of
      ``format_name``, default ``jsonl``);
    * otherwise a file name, with ``.worker-N`` inserted before its suffix
      (``out.jsonl`` gives ``out.worker-0.jsonl``, ``out.worker-1.jsonl``, ...).

    Each worker writes to a temporary name next to its file and renames it into place when the
    run ends cleanly; a failed run deletes it.

    :param target: a directory, a pattern with ``{worker}``, or a file name.
    :param format_name: a registered sink (``jsonl``, ``parquet``); default: by suffix.

    >>> outputs = WorkerOutputs(target="out.jsonl")
    >>> [str(outputs.path_for(i)) for i in range(2)]
    ['out.worker-0.jsonl', 'out.worker-1.jsonl']
    >>> str(WorkerOutputs(target="part-{worker}.parquet").path_for(3))
    'part-3.parquet'
    """

    target: str = attrs.field(validator=attrs.validators.min_len(1))
    format_name: str | None = None

    def _is_directory(self) -> bool:
        return _PLACEHOLDER not in self.target and (
            self.target.endswith(("/", os.sep)) or Path(self.target).is_dir()
        )

    def _default_suffix(self, sinks: Mapping[str, Any] | None) -> str:
        if self.format_name is not None and sinks is not None and self.format_name in sinks:
            suffixes = sinks[self.format_name].suffixes
            if suffixes:
                return str(suffixes[0])
        return ".jsonl"

    def path_for(self, index: int, sinks: Mapping[str, Any] | None = None) -> Path:
        """The file worker ``index`` publishes.

        :param index: the worker.
        :param sinks: registered sinks (for the suffix of a directory target's files).
        """
        if _PLACEHOLDER in self.target:
            return Path(self.target.replace(_PLACEHOLDER, str(index)))
        if self._is_directory():
            return Path(self.target) / f"worker-{index}{self._default_suffix(sinks)}"
        path = Path(self.target)
        return path.with_name(f"{path.stem}.worker-{index}{path.suffix}")

    def absolute(self) -> WorkerOutputs:
        """The same outputs with ``target`` made absolute (against this process's working
        directory), so that workers started elsewhere (Ray actors) write where the driver
        checked."""
        trailing = self.target.endswith(("/", os.sep))
        target = os.path.abspath(self.target) + (os.sep if trailing else "")
        return attrs.evolve(self, target=target)

    def sink_name(self, plugins: Plugins, index: int = 0) -> str:
        """The registered sink that writes worker ``index``'s file.

        :raises ScalingError: for an unknown format or a suffix no sink claims.
        """
        sinks = plugins.sinks()
        if self.format_name is not None:
            if self.format_name not in sinks:
                raise ScalingError(
                    f"--outputs workers: unknown output format {self.format_name!r}; "
                    f"registered: {', '.join(sorted(sinks))}"
                )
            return self.format_name
        path = self.path_for(index, sinks)
        suffix = path.suffix.lower()
        for name, spec in sinks.items():
            if suffix in spec.suffixes:
                return str(name)
        known = ", ".join(sorted({x for s in sinks.values() for x in s.suffixes}))
        raise ScalingError(
            f"--outputs workers: cannot tell the output format of {str(path)!r} from its suffix "
            f"(known: {known}); pass --format"
        )

    def check(self, plugins: Plugins, workers: int) -> list[Path]:
        """Check, before anything starts, that every worker can write its file.

        :returns: the files, by worker index.
        :raises ScalingError: for an unknown format, a missing or unwritable directory, or two
            workers given the same file.
        """
        sinks = plugins.sinks()
        paths = [self.path_for(i, sinks) for i in range(workers)]
        if len(set(paths)) != len(paths):
            raise ScalingError(
                f"--outputs workers: every worker would write {str(paths[0])!r}; use a "
                f"directory, a file name, or a pattern containing {_PLACEHOLDER}"
            )
        for index, path in enumerate(paths):
            self.sink_name(plugins, index)
            parent = path.parent if str(path.parent) else Path(".")
            if not parent.is_dir():
                problem = "is not a directory" if parent.exists() else "does not exist"
                raise ScalingError(
                    f"--outputs workers: cannot write {str(path)!r} (worker {index}): directory "
                    f"{str(parent)!r} {problem}"
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ScalingError(
                    f"--outputs workers: cannot write {str(path)!r} (worker {index}): directory "
                    f"{str(parent)!r} is not writable"
                )
        return paths

    def row_parts(self, plugins: Plugins, index: int) -> str:
        """What worker ``index`` combines its rows from: ``json`` for the core's JSON Lines
        sink, else ``columns`` (see :data:`ROW_PARTS`).

        :raises ScalingError: as :meth:`sink_name`.
        """
        return "json" if self.writes_json_lines(plugins, index) else "columns"

    def writes_json_lines(self, plugins: Plugins, index: int) -> bool:
        """Whether worker ``index``'s sink is the core's JSON Lines sink (which takes rows a
        worker joined from encoded columns, see :class:`JsonColumns`).

        :raises ScalingError: as :meth:`sink_name`.
        """
        return plugins.sinks()[self.sink_name(plugins, index)].factory is JsonLinesSink

    def make_sink(self, index: int, plugins: Plugins) -> Sink:
        """Open worker ``index``'s sink (it writes to a temporary name until closed)."""
        spec = plugins.sinks()[self.sink_name(plugins, index)]
        sink: Sink = spec.factory(str(self.path_for(index, plugins.sinks())))
        return sink


class JsonColumns:
    """Encodes, in a worker, one output feature's part of the combined JSON Lines rows.

    A combined row (see :func:`~featurizer._sinks.flatten_grouped`) is ``timestamp`` then every
    output's ``<feature>.<field>`` columns in plan order. The part of one output event is the
    text ``,"<feature>.<field>":<value>`` of each of its fields but the timestamps, each value
    encoded exactly as :data:`~featurizer._sinks.encode_json` encodes it inside a row.

    :param feature: the output feature.

    >>> from featurizer.testing import ExampleTicker
    >>> f = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"}, name="t")
    >>> JsonColumns(f)({"timestamp": 2.0, "receipt_timestamp": 2.5, "bid": 1.0, "n": 3})
    (2.0, ',"t.bid":1.0,"t.n":3')
    """

    def __init__(self, feature: Feature) -> None:
        self.feature = feature
        self._keys: dict[str, str] = {}

    def __call__(self, event: Event) -> tuple[Any, str]:
        """The event's timestamp and its columns' text.

        :raises EventValidationError: for an event without a timestamp (naming the feature).
        """
        try:
            stamp = event["timestamp"]
            items = event.items()
        except (KeyError, TypeError, AttributeError):
            from featurizer._graph import check_output_event

            check_output_event(self.feature, event)
            raise
        keys = self._keys
        parts = []
        for field, value in items:
            key = keys.get(field)
            if key is None:
                if field in _TIMESTAMPS:
                    continue
                key = keys[field] = f",{encode_json(f'{self.feature.name}.{field}')}:"
            kind = type(value)
            if kind is float and value - value == 0.0:
                parts.append(key + _FLOAT_REPR(value))
            elif kind is int:
                parts.append(key + _INT_REPR(value))
            else:
                parts.append(key + encode_json(value))
        return stamp, "".join(parts)


class RowColumns:
    """Names, in a worker, one output feature's columns of the combined rows of other sinks.

    The part of one output event is its timestamp and the mapping ``{"<feature>.<field>":
    value}`` of its fields but the timestamps, in the event's order; the driver builds each
    row by updating one mapping with the latest part of every output (:func:`merge_row`).

    :param feature: the output feature.

    >>> from featurizer.testing import ExampleTicker
    >>> f = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"}, name="t")
    >>> RowColumns(f)({"timestamp": 2.0, "receipt_timestamp": 2.5, "bid": 1.0})
    (2.0, {'t.bid': 1.0})
    """

    def __init__(self, feature: Feature) -> None:
        self.feature = feature
        self._keys: dict[Any, str] = {}

    def __call__(self, event: Event) -> tuple[Any, dict[str, Any]]:
        """The event's timestamp and its named columns.

        :raises EventValidationError: for an event without a timestamp (naming the feature).
        """
        try:
            stamp = event["timestamp"]
            items = event.items()
        except (KeyError, TypeError, AttributeError):
            from featurizer._graph import check_output_event

            check_output_event(self.feature, event)
            raise
        keys = self._keys
        columns = {}
        for field, value in items:
            key = keys.get(field)
            if key is None:
                if field in _TIMESTAMPS:
                    continue
                key = keys[field] = f"{self.feature.name}.{field}"
            columns[key] = value
        return stamp, columns


def merge_row(parts: Sequence[tuple[Any, tuple[Any, Mapping[str, Any]]]]) -> dict[str, Any]:
    """One combined row from the latest part of every output, in plan order: the row
    :func:`~featurizer._sinks.flatten_grouped` builds from the same events.

    :param parts: ``(feature, (timestamp, columns))`` per output, as :class:`RowColumns` made.

    >>> merge_row([(None, (1.0, {"a.x": 1.5})), (None, (2.0, {"b.y": None}))])
    {'timestamp': 2.0, 'a.x': 1.5, 'b.y': None}
    """
    row: dict[str, Any] = {"timestamp": max([part[1][0] for part in parts])}
    update = row.update
    for part in parts:
        update(part[1][1])
    return row


def names_keep_columns_apart(features: Sequence[Feature]) -> bool:
    """Whether the combined rows' column names of ``features`` can never coincide (no name
    repeated, none another's followed by a dot: ``a`` with field ``b.c`` and ``a.b`` with
    field ``c`` would both write ``a.b.c``, which a row mapping holds once). Rows joined as
    text need that; otherwise the driver merges named columns (:func:`merge_row`).

    >>> from featurizer.testing import ExampleTicker
    >>> def named(n):
    ...     return Feature.create(ExampleTicker, {"exchange": "x", "symbol": n}, name=n)
    >>> names_keep_columns_apart([named("a"), named("ab")])
    True
    >>> names_keep_columns_apart([named("a"), named("a-x"), named("a.b")])
    False
    """
    names = [feature.name for feature in features]
    known = set(names)
    if len(known) != len(names):
        return False
    return not any(
        name[:i] in known for name in names for i, char in enumerate(name) if char == "."
    )


def join_json_row(parts: Sequence[tuple[Any, tuple[Any, str]]]) -> str:
    """One combined row's JSON text from the latest part of every output, in plan order.

    The same text :class:`~featurizer._sinks.JsonLinesSink` writes for the row
    :func:`~featurizer._sinks.flatten_grouped` builds from the same events.

    :param parts: ``(feature, (timestamp, text))`` per output, as :class:`JsonColumns` made.

    >>> join_json_row([(None, (1.0, ',"a.x":1.5')), (None, (2.0, ',"b.y":null'))])
    '{"timestamp":2.0,"a.x":1.5,"b.y":null}'
    """
    stamp = max([part[1][0] for part in parts])
    text = _FLOAT_REPR(stamp) if type(stamp) is float and stamp - stamp == 0.0 else None
    if text is None:
        text = encode_json(stamp)
    return '{"timestamp":' + text + "".join([part[1][1] for part in parts]) + "}"
