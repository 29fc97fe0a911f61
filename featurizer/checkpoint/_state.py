"""The state protocol: how a feature's state is snapshotted and restored in place.

A feature keeps state in two places, and a checkpoint takes both:

* **The streamz operators** its :meth:`~featurizer.FeatureDefinition.stream` built. The
  stateful operators of streamz whose state is plain data are supported (``accumulate``,
  ``collect``, ``combine_latest``, ``partition``, ``partition_unique``, ``slice``,
  ``sliding_window``, ``unique``, ``zip``, ``zip_latest``); stateless ones (``map``,
  ``filter``, ``starmap``, ``pluck``, ``flatten``, ``union``) need nothing. Timer and
  asynchronous operators (``buffer``, ``delay``, ``latest``, ``map_async``, ``rate_limit``,
  ``timed_window``, ``timed_window_unique``) and unknown operator classes are refused: their
  state is in the event loop, not in data.
* **The state object** ``stream()`` returned with its stream (``(stream, state)``). It is
  snapshotted with its own ``snapshot_state() -> Any`` and restored with
  ``restore_state(snapshot) -> None`` when it defines them (see :class:`Snapshotable`), else
  with :mod:`pickle`: the pickled copy's attributes (``__dict__`` and ``__slots__``) are copied
  back into the live object, because the stream's functions hold the object itself (a bound
  ``update`` method), so it must be restored *in place*.

A map, filter or accumulate function that is a bound method of an object other than the
returned state is refused at start-up (state the checkpoint would not see). State hidden in
closures cannot be detected: a feature must return every object it mutates.

Snapshots are plain picklable values (``bytes`` per node); references to streamz nodes inside
them (``zip`` keeps a buffer per upstream stream) are written as positions, so a snapshot
restores into a freshly built graph of the same config.
"""

from __future__ import annotations

import collections
import io
import pickle
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from streamz import Stream
from streamz import core as streamz_core
from streamz import sinks as streamz_sinks

from featurizer._feature import Feature
from featurizer._graph import FeatureStreamGraph
from featurizer.checkpoint._errors import SnapshotError

__all__ = [
    "STATEFUL_OPERATORS",
    "STATELESS_OPERATORS",
    "Snapshotable",
    "check_snapshotable",
    "restore_graph",
    "restore_object",
    "snapshot_graph",
    "snapshot_object",
]


@runtime_checkable
class Snapshotable(Protocol):
    """A state object that snapshots itself (when :mod:`pickle` is not enough).

    ``snapshot_state()`` returns a picklable value; ``restore_state(value)`` makes the object
    continue exactly as the one that was snapshotted (in place: the stream holds the object).
    """

    def snapshot_state(self) -> Any:
        """A picklable value holding everything the object needs to continue."""

    def restore_state(self, snapshot: Any) -> None:
        """Become (in place) the object that :meth:`snapshot_state` returned ``snapshot`` of."""


STATEFUL_OPERATORS: Mapping[type, tuple[str, ...]] = {
    streamz_core.accumulate: ("state",),
    streamz_core.collect: ("cache", "metadata_cache"),
    streamz_core.combine_latest: ("last", "missing", "metadata"),
    streamz_core.partition: ("_buffer", "_metadata_buffer"),
    streamz_core.partition_unique: ("_buffer", "_metadata_buffer"),
    streamz_core.slice: ("state",),
    streamz_core.sliding_window: ("_buffer", "metadata_buffer"),
    streamz_core.unique: ("seen",),
    streamz_core.zip: ("buffers",),
    streamz_core.zip_latest: ("last", "missing", "metadata", "lossless_buffer"),
}
"""The streamz operator classes whose state a checkpoint takes, and the attributes holding it."""

STATELESS_OPERATORS: tuple[type, ...] = (
    Stream,
    streamz_core.map,
    streamz_core.filter,
    streamz_core.starmap,
    streamz_core.pluck,
    streamz_core.flatten,
    streamz_core.union,
    streamz_sinks.sink,
)
"""The streamz operator classes that keep nothing between events."""

_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, tuple, frozenset)


class _Pickler(pickle.Pickler):
    """Pickles streamz nodes as their position in the feature's operator list."""

    def __init__(self, file: io.BytesIO, operators: list[Stream]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._positions = {id(op): i for i, op in enumerate(operators)}

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Stream):
            position = self._positions.get(id(obj))
            if position is None:
                raise pickle.PicklingError(f"refers to a streamz node outside the feature: {obj}")
            return position
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, operators: list[Stream]) -> None:
        super().__init__(file)
        self._operators = operators

    def persistent_load(self, pid: Any) -> Any:
        return self._operators[int(pid)]


def _dumps(value: Any, operators: list[Stream]) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, operators).dump(value)
    return buffer.getvalue()


def _loads(data: bytes, operators: list[Stream]) -> Any:
    return _Unpickler(io.BytesIO(data), operators).load()


def _plain(value: Any) -> Any:
    """Containers with unpicklable factories (``defaultdict(lambda: [])``) as plain ones."""
    if isinstance(value, collections.defaultdict):
        return dict(value)
    return value


def _slots(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    return names


def _assign_in_place(target: Any, loaded: Any) -> None:
    """Make ``target`` equal to ``loaded`` without replacing the object."""
    if isinstance(target, collections.deque):
        target.clear()
        target.extend(loaded)
    elif isinstance(target, list):
        target[:] = loaded
    elif isinstance(target, dict | set):
        target.clear()
        target.update(loaded)
    else:
        if hasattr(target, "__dict__"):
            target.__dict__.clear()
            target.__dict__.update(loaded.__dict__)
        for name in _slots(type(target)):
            if hasattr(loaded, name):
                setattr(target, name, getattr(loaded, name))
            elif hasattr(target, name):
                delattr(target, name)


def snapshot_object(state: Any, operators: list[Stream] | None = None) -> bytes:
    """The snapshot of a state object: its ``snapshot_state()``, else the object, pickled.

    :param state: the object a feature's ``stream()`` returned with its stream.
    :param operators: streamz nodes the state may refer to (written as positions).
    :raises pickle.PicklingError: (or another error of pickle) when it cannot be pickled.
    """
    value = state.snapshot_state() if isinstance(state, Snapshotable) else state
    return _dumps(value, operators or [])


def restore_object(state: Any, snapshot: bytes, operators: list[Stream] | None = None) -> None:
    """Restore ``state`` in place from :func:`snapshot_object`'s ``snapshot``."""
    loaded = _loads(snapshot, operators or [])
    if isinstance(state, Snapshotable):
        state.restore_state(loaded)
    elif not isinstance(state, _IMMUTABLE):
        _assign_in_place(state, loaded)


def _operators_state(feature: Feature, operators: list[Stream]) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = []
    for op in operators:
        kind = type(op)
        if kind in STATEFUL_OPERATORS:
            states.append({name: _plain(getattr(op, name)) for name in STATEFUL_OPERATORS[kind]})
        elif kind in STATELESS_OPERATORS:
            states.append({})
        else:
            raise SnapshotError(
                f"feature {feature.name!r} (definition {feature.definition_name!r}) uses the "
                f"streamz operator {kind.__module__}.{kind.__qualname__}, whose state cannot be "
                f"checkpointed; supported stateful operators: "
                f"{', '.join(sorted(c.__name__ for c in STATEFUL_OPERATORS))} (timers and async "
                f"operators keep state in the event loop). Run without --checkpoint, or rewrite "
                f"it with a state object returned from stream()"
            )
    return states


def _restore_operators(operators: list[Stream], states: list[dict[str, Any]]) -> None:
    for op, attributes in zip(operators, states, strict=True):
        for name, value in attributes.items():
            current = getattr(op, name)
            if isinstance(current, _IMMUTABLE) or isinstance(value, _IMMUTABLE):
                setattr(op, name, value)
            else:
                _assign_in_place(current, value)


def _check_hidden_state(feature: Feature, operators: list[Stream], state: Any) -> None:
    for op in operators:
        func: Callable[..., Any] | None = getattr(op, "func", None) or getattr(
            op, "predicate", None
        )
        owner = getattr(func, "__self__", None)
        if owner is None or owner is state or isinstance(owner, (type, *_IMMUTABLE)):
            continue
        if type(owner).__module__ == "builtins":
            continue
        raise SnapshotError(
            f"feature {feature.name!r} (definition {feature.definition_name!r}) keeps state in "
            f"{type(owner).__qualname__} object {owner!r} (used by {func!r}) that its stream() "
            f"did not return: return (stream, state) from stream() so checkpoints include it"
        )


def _node_snapshot(graph: FeatureStreamGraph, feature: Feature) -> bytes:
    operators = graph.operators(feature)
    state = graph.get_state(feature)
    _check_hidden_state(feature, operators, state)
    operator_states = _operators_state(feature, operators)
    try:
        payload = {
            "operators": operator_states,
            "state": None if state is None else snapshot_object(state, operators),
        }
        return _dumps(payload, operators)
    except Exception as error:
        raise SnapshotError(
            f"feature {feature.name!r} (definition {feature.definition_name!r}) cannot be "
            f"snapshotted: {type(error).__name__}: {error}. Make its state picklable or give "
            f"it snapshot_state()/restore_state() (docs/fault-tolerance.md)"
        ) from error


def snapshot_graph(graph: FeatureStreamGraph) -> dict[str, Any]:
    """Everything a graph carries between events, keyed by feature key.

    :returns: ``{"nodes": {key: bytes}, "outputs": ...}`` where ``outputs`` is the combined
        output's latest event per output (the glitch-free vector it holds back or repeats).
    :raises SnapshotError: naming the feature whose state cannot be snapshotted.
    """
    nodes = {
        feature.key: _node_snapshot(graph, feature)
        for feature in graph.nodes()
        if not graph.is_input(feature)
    }
    return {"nodes": nodes, "outputs": pickle.dumps(graph.latest_outputs())}


def check_snapshotable(graph: FeatureStreamGraph) -> None:
    """Raise :class:`SnapshotError` naming the first feature whose state cannot be snapshotted.

    Called when a checkpointed run starts, before any event.
    """
    snapshot_graph(graph)


def restore_graph(graph: FeatureStreamGraph, snapshot: Mapping[str, Any]) -> None:
    """Restore a graph built from the same config to the moment of :func:`snapshot_graph`.

    :raises SnapshotError: if a node of the graph is missing from the snapshot.
    """
    nodes: Mapping[str, bytes] = snapshot["nodes"]
    for feature in graph.nodes():
        if graph.is_input(feature):
            continue
        data = nodes.get(feature.key)
        if data is None:
            raise SnapshotError(
                f"the snapshot has no state for feature {feature.name!r} (key {feature.short_key})"
            )
        operators = graph.operators(feature)
        payload = _loads(data, operators)
        _restore_operators(operators, payload["operators"])
        state = graph.get_state(feature)
        if state is not None and payload["state"] is not None:
            restore_object(state, payload["state"], operators)
    graph.restore_latest_outputs(pickle.loads(snapshot["outputs"]))
