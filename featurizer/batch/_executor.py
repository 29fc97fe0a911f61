"""The batch executor: a feature DAG over chunks of columns, kernels where they exist.

A chunk is a run of consecutive merged input events, given per data source as columns with
each row's *position* in the merged order. Nodes are computed in topological order:

* a node whose definition provides a kernel (:meth:`FeatureDefinition.batch_kernel`), with a
  single upstream that is itself columnar (a data source or a kernel node), is computed by its
  kernel; its outputs keep the position of the input row that caused them;
* every other node runs per event, in a :class:`~featurizer.FeatureStreamGraph` over the
  non-kernel part of the DAG whose inputs are the columnar nodes feeding it. Their events are
  pushed in merged order (position, then topological order), so each per-event node sees
  exactly the sequence it sees live. A per-event node with several inputs that could fire on
  the same input event (they share a data source) would see them in another order than live,
  so the kernels feeding it are turned off until that cannot happen.

The per-output positions are all the combined output needs (see :mod:`._combine`).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from featurizer._definitions import FeatureDefinition
from featurizer._errors import FeatureComputationError, FeaturizerError
from featurizer._events import Event
from featurizer._feature import Feature
from featurizer._graph import ERROR_POLICIES, FeatureStreamGraph, topological_order
from featurizer.batch._kernel import Columns, ErrorHandler, columns_from_events

__all__ = ["BatchExecutor", "NodeOutput", "SourceBatch"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class SourceBatch:
    """The rows of one data source in a chunk.

    :param positions: int64 numpy array, increasing: each row's position in the chunk's
        merged order.
    :param columns: the rows as columns.
    :param decode: returns the rows as event dicts exactly as the per-event path receives them
        (``None``: built from ``columns``).
    """

    positions: Any
    columns: Columns
    decode: Callable[[], list[Event]] | None = None

    def events(self) -> list[Event]:
        """The rows as event dicts."""
        return self.decode() if self.decode is not None else self.columns.events()


@attrs.frozen(kw_only=True)
class NodeOutput:
    """What one node produced in a chunk: positions (non-decreasing) and the events."""

    positions: Any
    columns: Columns


def _outputs_from(features_or_config: Any) -> list[Feature]:
    if isinstance(features_or_config, Feature):
        return [features_or_config]
    if hasattr(features_or_config, "feature_configs"):
        from featurizer._config import construct_features_from_configs

        features_or_config = construct_features_from_configs(features_or_config)
    outputs: list[Feature] = []
    for feature in features_or_config:
        if not isinstance(feature, Feature):
            raise FeaturizerError(
                f"expected Feature objects or a FeaturizerConfig, received "
                f"{type(feature).__name__} {feature!r}"
            )
        if feature not in outputs:
            outputs.append(feature)
    return outputs


def _require_numpy() -> None:
    try:
        import numpy  # noqa: F401
    except ImportError as error:
        raise FeaturizerError(
            "the batch path needs numpy and pyarrow: pip install 'featurizer[batch]'"
        ) from error


def _source_ancestors(feature: Feature) -> frozenset[Feature]:
    return frozenset(node for node in feature.walk() if node.is_data_source)


class BatchExecutor:
    """Computes a feature DAG chunk by chunk (see the module docs).

    :param features: output features, or a :class:`~featurizer.FeaturizerConfig`.
    :param error_policy: ``raise`` or ``skip``, as in :class:`~featurizer.FeatureStreamGraph`.
    :param kernels: use kernels (``False``: every node per event, for comparisons).
    :param states: per-event state objects to continue from, by feature (kernel nodes).
    """

    def __init__(
        self,
        features: Any,
        *,
        error_policy: str = "raise",
        kernels: bool = True,
        states: Mapping[Feature, Any] | None = None,
    ) -> None:
        _require_numpy()
        if error_policy not in ERROR_POLICIES:
            raise FeaturizerError(
                f"error_policy must be one of {', '.join(map(repr, ERROR_POLICIES))}, "
                f"received {error_policy!r}"
            )
        self.outputs = _outputs_from(features)
        self.error_policy = error_policy
        self._errors: collections.Counter[Feature] = collections.Counter()
        order = topological_order(self.outputs)
        self.order = order
        self.sources = [feature for feature in order if feature.is_data_source]
        self._kernels = self._plan(order, kernels, dict(states or {}))
        columnar = set(self.sources) | set(self._kernels)
        per_event = [f for f in order if f not in columnar]
        self._per_event_outputs = [f for f in self.outputs if f not in columnar]
        self._graph: FeatureStreamGraph | None = None
        self._entries: list[Feature] = []
        self._collected: dict[Feature, tuple[list[int], list[Event]]] = {}
        self._position = 0
        if self._per_event_outputs:
            frontier = [
                f
                for f in order
                if f in self._kernels and any(f in node.children.values() for node in per_event)
            ]
            self._graph = FeatureStreamGraph(
                self._per_event_outputs,
                external_inputs=frontier,
                error_policy=error_policy,
            )
            for feature in self._per_event_outputs:
                self._collected[feature] = ([], [])
                self._graph.set_callback(feature, self._collector(feature))
            self._entries = self._graph.get_ins()
            self._dispatch = [self._graph.input_callback(entry) for entry in self._entries]

    def _plan(
        self, order: list[Feature], kernels: bool, states: dict[Feature, Any]
    ) -> dict[Feature, Any]:
        """Kernel per node that can use one, after turning off those that would reorder."""
        disabled: set[Feature] = set()
        while True:
            chosen: dict[Feature, Any] = {}
            for feature in order:
                if feature.is_data_source or not kernels or feature in disabled:
                    continue
                children = list(feature.children.values())
                if len(children) != 1:
                    continue
                child = children[0]
                if not (child.is_data_source or child in chosen):
                    continue
                definition = feature.definition
                if not issubclass(definition, FeatureDefinition):
                    continue
                kernel = definition.batch_kernel(feature.params, states.get(feature))
                if kernel is not None:
                    chosen[feature] = kernel
            clash = self._clashing_entries(order, chosen)
            if not clash:
                return chosen
            disabled |= clash

    @staticmethod
    def _clashing_entries(order: list[Feature], chosen: dict[Feature, Any]) -> set[Feature]:
        """Kernel nodes feeding one per-event node that could fire on the same input event."""
        columnar = {f for f in order if f.is_data_source} | set(chosen)
        entries: dict[Feature, set[Feature]] = {}
        clash: set[Feature] = set()
        for feature in order:
            if feature in columnar:
                continue
            mine: set[Feature] = set()
            for child in feature.children.values():
                mine |= {child} if child in columnar else entries.get(child, set())
            entries[feature] = mine
            listed = sorted(mine, key=order.index)
            for i, a in enumerate(listed):
                for b in listed[i + 1 :]:
                    if _source_ancestors(a) & _source_ancestors(b):
                        clash |= {x for x in (a, b) if x in chosen}
        return clash

    def _collector(self, feature: Feature) -> Callable[[Feature, Event], None]:
        positions, events = self._collected[feature]

        def collect(_feature: Feature, event: Event) -> None:
            positions.append(self._position)
            events.append(event)

        return collect

    @property
    def error_counts(self) -> collections.Counter[Feature]:
        """Errors skipped per feature (``skip`` policy), kernel and per-event nodes alike."""
        counts = collections.Counter(self._errors)
        if self._graph is not None:
            counts.update(self._graph.error_counts)
        return counts

    @property
    def kernel_nodes(self) -> list[Feature]:
        """The nodes computed by kernels, in topological order."""
        return list(self._kernels)

    def states(self) -> dict[Feature, Any]:
        """Every node's per-event state object (kernel nodes: the one the kernel carries)."""
        result = {feature: kernel.state for feature, kernel in self._kernels.items()}
        if self._graph is not None:
            for feature in self._graph.nodes():
                if feature not in self._kernels and not feature.is_data_source:
                    result[feature] = self._graph.get_state(feature)
        return result

    def _fail(self, feature: Feature, event: Event, cause: Exception) -> None:
        error = FeatureComputationError(feature, event, cause)
        if self.error_policy == "raise":
            raise error from cause
        self._errors[feature] += 1
        logger.warning("%s", error)

    def _handler(self, feature: Feature) -> ErrorHandler:
        def fail(row: int, event: Event, cause: Exception) -> None:
            self._fail(feature, event, cause)

        return fail

    def process(self, sources: Sequence[SourceBatch | None]) -> dict[Feature, NodeOutput]:
        """Compute one chunk.

        :param sources: per data source (in :attr:`sources` order), its rows in the chunk
            (``None`` or empty when it has none).
        :returns: per output feature, what it produced in this chunk.
        """
        import numpy as np

        values: dict[Feature, NodeOutput] = {}
        batches: dict[Feature, SourceBatch] = {}
        for feature, batch in zip(self.sources, sources, strict=True):
            if batch is not None and batch.columns.size:
                batches[feature] = batch
                values[feature] = NodeOutput(positions=batch.positions, columns=batch.columns)
        for feature, kernel in self._kernels.items():
            (child,) = feature.children.values()
            upstream = values.get(child)
            if upstream is None:
                continue
            out = kernel.process(upstream.columns, self._handler(feature))
            if len(out.rows):
                values[feature] = NodeOutput(
                    positions=upstream.positions[out.rows], columns=out.columns
                )
        if self._graph is not None:
            self._run_per_event(values, batches)
            for feature, (positions, events) in self._collected.items():
                if events:
                    values[feature] = NodeOutput(
                        positions=np.array(positions, dtype=np.int64),
                        columns=columns_from_events(events),
                    )
                positions.clear()
                events.clear()
        return {feature: values[feature] for feature in self.outputs if feature in values}

    def _run_per_event(
        self, values: dict[Feature, NodeOutput], batches: dict[Feature, SourceBatch]
    ) -> None:
        import numpy as np

        parts_pos, parts_entry, parts_row = [], [], []
        events: list[list[Event]] = []
        for rank, entry in enumerate(self._entries):
            got = values.get(entry)
            if got is None:
                events.append([])
                continue
            batch = batches.get(entry)
            events.append(batch.events() if batch is not None else got.columns.events())
            count = len(got.positions)
            parts_pos.append(np.asarray(got.positions, dtype=np.int64))
            parts_entry.append(np.full(count, rank, dtype=np.int64))
            parts_row.append(np.arange(count, dtype=np.int64))
        if not parts_pos:
            return
        positions = np.concatenate(parts_pos)
        entries = np.concatenate(parts_entry)
        rows = np.concatenate(parts_row)
        order = np.lexsort((rows, entries, positions))
        dispatch = self._dispatch
        for position, entry, row in zip(
            positions[order].tolist(), entries[order].tolist(), rows[order].tolist(), strict=True
        ):
            self._position = position
            dispatch[entry](events[entry][row])
