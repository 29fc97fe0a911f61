"""The plan of a scaled-out run: which worker ingests, computes, outputs and ships what."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from featurizer._feature import Feature
from featurizer._graph import FeatureStreamGraph

__all__ = ["Edge", "FeatureStreamWorkerGraph", "SourceGroup", "WorkerPlan"]


def _features(values: Iterable[Feature]) -> tuple[Feature, ...]:
    return tuple(values)


def _ints(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


def _groups(values: Iterable[SourceGroup]) -> tuple[SourceGroup, ...]:
    return tuple(values)


def _workers(values: Iterable[WorkerPlan]) -> tuple[WorkerPlan, ...]:
    return tuple(values)


def _edges(values: Iterable[Edge]) -> tuple[Edge, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class SourceGroup:
    """Data sources sequenced together: the sources of one independent sub-DAG.

    Every event of a group gets a key ``(event time, rank, sequence)`` on the one worker that
    ingests the group, in the order its emitter produced the events; that key orders the
    group's events everywhere else (see :doc:`scaling`).

    :param rank: the group's position in the plan (by the first node of the DAG's
        topological order that belongs to it); it breaks event-time ties between groups.
    :param sources: the group's data-source features, in topological order.
    :param worker: the worker whose emitters produce the group's events.
    """

    rank: int = attrs.field(validator=attrs.validators.ge(0))
    sources: tuple[Feature, ...] = attrs.field(converter=_features)
    worker: int = attrs.field(validator=attrs.validators.ge(0))


@attrs.frozen(kw_only=True)
class Edge:
    """Events of ``feature`` shipped from worker ``source`` to worker ``target``.

    :param feature: the shipped feature (a data source or an intermediate feature).
    :param source: the worker computing it.
    :param target: the worker consuming it as an external input.
    """

    feature: Feature
    source: int
    target: int


@attrs.frozen(kw_only=True)
class WorkerPlan:
    """What one worker does.

    :param index: the worker's index, ``0 .. workers - 1``.
    :param groups: ranks of the source groups it ingests (runs the emitters of).
    :param sources: the data sources of those groups.
    :param inputs: features it receives from other workers (its graph's external inputs).
    :param computes: every node its graph evaluates, in topological order (inputs excluded).
    :param outputs: the config's output features it delivers to the driver.
    :param ships: features it sends to other workers (see the plan's edges).
    """

    index: int = attrs.field(validator=attrs.validators.ge(0))
    groups: tuple[int, ...] = attrs.field(converter=_ints, default=())
    sources: tuple[Feature, ...] = attrs.field(converter=_features, default=())
    inputs: tuple[Feature, ...] = attrs.field(converter=_features, default=())
    computes: tuple[Feature, ...] = attrs.field(converter=_features, default=())
    outputs: tuple[Feature, ...] = attrs.field(converter=_features, default=())
    ships: tuple[Feature, ...] = attrs.field(converter=_features, default=())

    @property
    def roots(self) -> tuple[Feature, ...]:
        """The worker graph's outputs: the delivered outputs, then what it ships."""
        return self.outputs + tuple(f for f in self.ships if f not in self.outputs)

    @property
    def is_idle(self) -> bool:
        """Whether the worker has nothing to ingest, compute or deliver."""
        return not (self.sources or self.computes or self.outputs or self.ships)


@attrs.frozen(kw_only=True)
class FeatureStreamWorkerGraph:
    """A plan: the feature DAG of a config spread over workers.

    Built by a scaling strategy (``single``, ``by_source``, ``split`` or a plugin's). Plans are
    deterministic: the same features, strategy and worker count give the same plan (and the
    same :attr:`fingerprint`) in every process, so every worker of a cluster rebuilds it from
    the config and checks the fingerprint instead of receiving pickled features.

    :param strategy: the strategy's name.
    :param outputs: the config's outputs, in combined-output order.
    :param nodes: every node of the full DAG, in topological order.
    :param groups: the source groups, by rank.
    :param workers: one :class:`WorkerPlan` per worker.
    :param edges: the features shipped between workers.
    """

    strategy: str
    outputs: tuple[Feature, ...] = attrs.field(converter=_features)
    nodes: tuple[Feature, ...] = attrs.field(converter=_features)
    groups: tuple[SourceGroup, ...] = attrs.field(converter=_groups)
    workers: tuple[WorkerPlan, ...] = attrs.field(converter=_workers)
    edges: tuple[Edge, ...] = attrs.field(converter=_edges, default=())
    _rank: Mapping[Feature, int] = attrs.field(init=False, repr=False, eq=False)
    _group_of: Mapping[Feature, int] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        rank = {feature: i for i, feature in enumerate(self.nodes)}
        object.__setattr__(self, "_rank", rank)
        group_of: dict[Feature, int] = {}
        for group in self.groups:
            for source in group.sources:
                group_of[source] = group.rank
        for feature in self.nodes:
            if feature not in group_of:
                group_of[feature] = group_of[feature.data_sources()[0]]
        object.__setattr__(self, "_group_of", group_of)

    @property
    def size(self) -> int:
        """The number of workers."""
        return len(self.workers)

    def node_rank(self, feature: Feature) -> int:
        """The feature's position in the full DAG's topological order."""
        return self._rank[feature]

    def group_of(self, feature: Feature) -> int:
        """The rank of the source group a node belongs to."""
        return self._group_of[feature]

    def feature_by_key(self) -> dict[str, Feature]:
        """Every node by its stable key."""
        return {feature.key: feature for feature in self.nodes}

    def worker_graph(self, index: int, **graph_options: Any) -> FeatureStreamGraph:
        """Build the graph worker ``index`` runs: its roots over its sources and inputs.

        :param index: the worker.
        :param graph_options: passed to :class:`~featurizer.FeatureStreamGraph`
            (``error_policy``, ``error_callback``, ``fuse``).
        """
        worker = self.workers[index]
        return FeatureStreamGraph(
            list(worker.roots),
            combine_outputs=False,
            external_inputs=worker.inputs,
            **graph_options,
        )

    def targets(self, index: int) -> dict[Feature, tuple[int, ...]]:
        """For worker ``index``: each shipped feature and the workers it goes to."""
        found: dict[Feature, list[int]] = {}
        for edge in self.edges:
            if edge.source == index:
                found.setdefault(edge.feature, []).append(edge.target)
        return {feature: tuple(sorted(set(ws))) for feature, ws in found.items()}

    def upstream_workers(self, index: int) -> tuple[int, ...]:
        """The workers sending to worker ``index``."""
        return tuple(sorted({e.source for e in self.edges if e.target == index}))

    def channel_groups(self, index: int) -> tuple[int, ...]:
        """The ranks of the groups whose records worker ``index`` may send anywhere."""
        worker = self.workers[index]
        sent = set(worker.outputs) | set(worker.ships)
        return tuple(sorted({self.group_of(f) for f in sent}))

    def describe(self) -> str:
        """A readable, deterministic description (what ``featurizer plan`` prints)."""
        lines = [
            f"plan: strategy {self.strategy!r}, {self.size} worker(s), {len(self.groups)} source "
            f"group(s), {len(self.edges)} cross-worker edge(s), fingerprint {self.fingerprint[:12]}"
        ]
        for group in self.groups:
            lines.append(
                f"  group {group.rank} -> worker {group.worker}: "
                + ", ".join(source.name for source in group.sources)
            )
        for worker in self.workers:
            lines.append(f"worker {worker.index}:")
            if worker.groups:
                lines.append(
                    f"  ingests: groups {', '.join(map(str, worker.groups))} ("
                    + ", ".join(s.name for s in worker.sources)
                    + ")"
                )
            if worker.inputs:
                senders = {e.feature: e.source for e in self.edges if e.target == worker.index}
                lines.append(
                    "  receives: "
                    + ", ".join(f"{f.name} <- worker {senders[f]}" for f in worker.inputs)
                )
            if worker.computes:
                lines.append("  computes: " + ", ".join(f.name for f in worker.computes))
            if worker.outputs:
                lines.append("  outputs: " + ", ".join(f.name for f in worker.outputs))
            for feature, targets in self.targets(worker.index).items():
                lines.append(f"  ships: {feature.name} -> worker(s) {', '.join(map(str, targets))}")
        return "\n".join(lines)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the plan in terms of stable feature keys (same in every process)."""
        parts = [f"strategy={self.strategy}", "outputs=" + ",".join(f.key for f in self.outputs)]
        parts += [
            f"group {g.rank} {g.worker} " + ",".join(s.key for s in g.sources) for g in self.groups
        ]
        for w in self.workers:
            parts.append(
                f"worker {w.index} groups={w.groups} "
                + " ".join(
                    f"{label}=" + ",".join(f.key for f in values)
                    for label, values in (
                        ("sources", w.sources),
                        ("inputs", w.inputs),
                        ("computes", w.computes),
                        ("outputs", w.outputs),
                        ("ships", w.ships),
                    )
                )
            )
        parts += [f"edge {e.feature.key} {e.source} {e.target}" for e in self.edges]
        return hashlib.sha256("\n".join(parts).encode("ascii")).hexdigest()
