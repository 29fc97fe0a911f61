"""The core scaling strategies: ``single``, ``by_source`` and ``split``.

A strategy is a function ``planner(features, workers) -> FeatureStreamWorkerGraph``. All three
share the same rules, which make a distributed run reproduce a single-process one exactly:

* The DAG's connected components (independent sub-DAGs) are the **source groups**. All the
  sources of a group are ingested by one worker, which numbers the group's events in its
  emitters' order: one group, one sequence.
* A node is computed by one *owner* worker, which ships its events to the other workers that
  need it. A worker never receives two inputs derived from the same data source (it computes
  one of them itself instead), so that one input event is processed by each worker as a single
  dispatch, as the single-process graph does; and never a multi-event input that reaches one of
  its nodes along two paths.
* Edges go from lower to higher worker indices, so the workers form a DAG and backpressure
  cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from featurizer._feature import Feature
from featurizer._graph import FeatureStreamGraph
from featurizer.scaling._errors import PlanError
from featurizer.scaling._plan import Edge, FeatureStreamWorkerGraph, SourceGroup, WorkerPlan

__all__ = ["STRATEGIES", "ScalingStrategy", "plan_by_source", "plan_single", "plan_split"]


class ScalingStrategy(Protocol):
    """A scaling strategy: plans which worker ingests, computes, outputs and ships what.

    Any callable ``strategy(features, workers) -> FeatureStreamWorkerGraph`` is one; register
    it with :class:`~featurizer.ScalingStrategySpec` (``planner=``) from a plugin's
    ``featurizer_register_scaling_strategies`` hook to make it ``--strategy NAME``. It must be
    deterministic (every process of a run plans the same) and raise
    :class:`~featurizer.scaling.PlanError` for a worker count it cannot use.

    >>> strategy: ScalingStrategy = plan_by_source
    >>> from featurizer.testing import ExampleMid, ExampleTicker
    >>> t = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
    >>> strategy([Feature.create(ExampleMid, {}, {"ticker": t})], 1).size
    1
    """

    def __call__(self, features: Sequence[Feature], workers: int) -> FeatureStreamWorkerGraph:
        """Plan ``features`` over ``workers`` workers."""


class _Dag:
    """The full DAG of the outputs: order, parents, components, multi-event nodes."""

    def __init__(self, features: Sequence[Feature]) -> None:
        self.graph = FeatureStreamGraph(list(features))
        self.outputs = self.graph.get_outs()
        self.nodes = self.graph.nodes()
        self.rank = {f: i for i, f in enumerate(self.nodes)}
        self.parents: dict[Feature, list[Feature]] = {f: [] for f in self.nodes}
        for node in self.nodes:
            for child in self.graph.upstreams_of(node) if not node.is_data_source else ():
                if node not in self.parents[child]:
                    self.parents[child].append(node)
        self.component = self._components()
        self.multi = self._multi()
        self.sources_of = {f: frozenset(f.data_sources()) for f in self.nodes}

    def children(self, feature: Feature) -> list[Feature]:
        return [] if feature.is_data_source else self.graph.upstreams_of(feature)

    def _components(self) -> dict[Feature, int]:
        root: dict[Feature, Feature] = {f: f for f in self.nodes}

        def find(f: Feature) -> Feature:
            while root[f] is not f:
                root[f] = root[root[f]]
                f = root[f]
            return f

        for node in self.nodes:
            for child in self.children(node):
                a, b = find(node), find(child)
                if a is not b:
                    if self.rank[a] < self.rank[b]:
                        root[b] = a
                    else:
                        root[a] = b
        ranks: dict[Feature, int] = {}
        component: dict[Feature, int] = {}
        for node in self.nodes:
            top = find(node)
            if top not in ranks:
                ranks[top] = len(ranks)
            component[node] = ranks[top]
        return component

    def _multi(self) -> dict[Feature, bool]:
        """Whether a node may produce several events for one input event."""
        multi: dict[Feature, bool] = {}
        for node in self.nodes:
            if node.is_data_source:
                multi[node] = False
            elif not self.graph.is_fused(node):
                multi[node] = True
            else:
                multi[node] = any(multi[c] for c in self.children(node))
        return multi

    @property
    def component_count(self) -> int:
        return max(self.component.values()) + 1

    def component_nodes(self, index: int) -> list[Feature]:
        return [f for f in self.nodes if self.component[f] == index]

    def groups(self, ingest: dict[int, int]) -> list[SourceGroup]:
        return [
            SourceGroup(
                rank=c,
                sources=[f for f in self.component_nodes(c) if f.is_data_source],
                worker=ingest[c],
            )
            for c in range(self.component_count)
        ]


def _check_workers(strategy: str, workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise PlanError(
            f"strategy {strategy!r}: the number of workers must be an integer >= 1, received "
            f"{workers!r}",
            strategy=strategy,
        )


def _balanced(costs: Sequence[tuple[int, int]], workers: int, loads: list[int]) -> dict[int, int]:
    """Assign items ``(index, cost)`` to the least-loaded worker, biggest first; ties: lowest."""
    assignment: dict[int, int] = {}
    for index, cost in sorted(costs, key=lambda item: (-item[1], item[0])):
        worker = min(range(workers), key=lambda w: (loads[w], w))
        assignment[index] = worker
        loads[worker] += cost
    return assignment


def plan_single(features: Sequence[Feature], workers: int = 1) -> FeatureStreamWorkerGraph:
    """Everything on one worker: the single-process graph behind a transport.

    :param features: the output features.
    :param workers: must be 1.
    :raises PlanError: for another worker count.
    """
    _check_workers("single", workers)
    if workers != 1:
        raise PlanError(
            f"strategy 'single' plans exactly one worker, received workers={workers}; use "
            f"--strategy by_source or split for more",
            strategy="single",
        )
    return plan_by_source(features, 1, _name="single")


def plan_by_source(
    features: Sequence[Feature], workers: int, *, _name: str = "by_source"
) -> FeatureStreamWorkerGraph:
    """Independent sub-DAGs (e.g. one per instrument) spread over workers; nothing crosses.

    Components are assigned biggest first to the least-loaded worker (cost: node count).

    :param features: the output features.
    :param workers: how many workers; at most the number of independent sub-DAGs.
    :raises PlanError: if there are more workers than independent sub-DAGs.
    """
    _check_workers(_name, workers)
    dag = _Dag(features)
    count = dag.component_count
    if workers > count:
        listing = "; ".join(
            f"{c}: {', '.join(s.name for s in dag.component_nodes(c) if s.is_data_source)}"
            for c in range(count)
        )
        raise PlanError(
            f"strategy {_name!r} cannot use {workers} workers: this config has {count} "
            f"independent sub-graph(s) (by their data sources: {listing}); use --workers "
            f"{count} or fewer, or --strategy split",
            strategy=_name,
        )
    ingest = _balanced(
        [(c, len(dag.component_nodes(c))) for c in range(count)], workers, [0] * workers
    )
    plans = []
    for w in range(workers):
        mine = [c for c in range(count) if ingest[c] == w]
        nodes = [f for f in dag.nodes if dag.component[f] in mine]
        plans.append(
            WorkerPlan(
                index=w,
                groups=mine,
                sources=[f for f in nodes if f.is_data_source],
                computes=[f for f in nodes if not f.is_data_source],
                outputs=[f for f in dag.outputs if dag.component[f] in mine],
            )
        )
    return FeatureStreamWorkerGraph(
        strategy=_name,
        outputs=dag.outputs,
        nodes=dag.nodes,
        groups=dag.groups(ingest),
        workers=plans,
    )


def _output_cost(feature: Feature) -> int:
    return max(1, sum(1 for node in feature.walk() if not node.is_data_source))


def plan_split(features: Sequence[Feature], workers: int) -> FeatureStreamWorkerGraph:
    """Cut the DAG across workers: outputs are balanced over workers, shared upstream
    features are computed once (by the lowest-numbered worker needing them) and shipped.

    :param features: the output features.
    :param workers: how many workers.
    :raises PlanError: if some worker would be left with nothing to do.
    """
    _check_workers("split", workers)
    dag = _Dag(features)
    assigned = _balanced(
        [(i, _output_cost(f)) for i, f in enumerate(dag.outputs)], workers, [0] * workers
    )
    assign = {dag.outputs[i]: w for i, w in assigned.items()}
    owner: dict[Feature, int] = {}
    need: dict[Feature, set[int]] = {}
    for node in reversed(dag.nodes):
        wanted = {assign[node]} if node in assign else set()
        wanted |= {owner[p] for p in dag.parents[node]}
        need[node] = wanted
        owner[node] = min(wanted)
    ingest: dict[int, int] = {}
    for node in dag.nodes:
        if node.is_data_source:
            c = dag.component[node]
            ingest[c] = min(ingest.get(c, workers), owner[node])
    for node in dag.nodes:
        if node.is_data_source:
            owner[node] = ingest[dag.component[node]]
    computes: list[set[Feature]] = [set() for _ in range(workers)]
    inputs: list[set[Feature]] = [set() for _ in range(workers)]
    for node in dag.nodes:
        if not node.is_data_source:
            computes[owner[node]].add(node)
    for w in range(workers):
        local = {f for f in dag.nodes if f.is_data_source and owner[f] == w}
        for node in list(computes[w]):
            for child in dag.children(node):
                if child not in computes[w] and child not in local:
                    inputs[w].add(child)
        _resolve_conflicts(dag, computes[w], inputs[w], local)
    edges = sorted(
        (Edge(feature=f, source=owner[f], target=w) for w in range(workers) for f in inputs[w]),
        key=lambda e: (e.source, dag.rank[e.feature], e.target),
    )
    for edge in edges:
        if edge.source >= edge.target:
            raise AssertionError(f"split planned an edge against worker order: {edge!r}")
    plans = []
    for w in range(workers):
        groups = sorted(c for c, iw in ingest.items() if iw == w)
        outputs = [f for f in dag.outputs if owner[f] == w]
        ships = sorted({e.feature for e in edges if e.source == w}, key=dag.rank.__getitem__)
        plan = WorkerPlan(
            index=w,
            groups=groups,
            sources=[f for f in dag.nodes if f.is_data_source and owner[f] == w],
            inputs=sorted(inputs[w], key=dag.rank.__getitem__),
            computes=sorted(computes[w], key=dag.rank.__getitem__),
            outputs=outputs,
            ships=ships,
        )
        plans.append(plan)
    idle = [p.index for p in plans if p.is_idle]
    if idle:
        busy = workers - len(idle)
        raise PlanError(
            f"strategy 'split' cannot use {workers} workers for this config: worker(s) "
            f"{', '.join(map(str, idle))} would have nothing to do ({len(dag.outputs)} outputs, "
            f"{len(dag.nodes)} nodes); use --workers {busy} or fewer",
            strategy="split",
        )
    return FeatureStreamWorkerGraph(
        strategy="split",
        outputs=dag.outputs,
        nodes=dag.nodes,
        groups=dag.groups(ingest),
        workers=plans,
        edges=edges,
    )


def _resolve_conflicts(
    dag: _Dag, computes: set[Feature], inputs: set[Feature], local: set[Feature]
) -> None:
    """Compute received inputs locally until the worker's inputs are independent.

    Two inputs derived from one data source would split one input event into two dispatches;
    a multi-event input reaching a node along two paths would interleave differently than in
    one dispatch. Either way the received input closest to the outputs is computed here
    instead (from its own children), down to the raw data sources if need be.
    """
    while True:
        culprit = _conflict(dag, computes, inputs, local)
        if culprit is None:
            return
        inputs.discard(culprit)
        computes.add(culprit)
        for child in dag.children(culprit):
            if child not in computes and child not in local:
                inputs.add(child)


def _conflict(
    dag: _Dag, computes: set[Feature], inputs: set[Feature], local: set[Feature]
) -> Feature | None:
    remote = sorted(inputs, key=dag.rank.__getitem__, reverse=True)
    everything = remote + sorted(local, key=dag.rank.__getitem__)
    for i, feature in enumerate(remote):
        for other in everything[i + 1 :]:
            if dag.sources_of[feature] & dag.sources_of[other]:
                return feature
    for feature in remote:
        if dag.multi[feature] and _has_diamond(dag, feature, computes):
            return feature
    return None


def _has_diamond(dag: _Dag, start: Feature, computes: set[Feature]) -> bool:
    paths = {start: 1}
    for node in dag.nodes:
        if node in computes:
            count = sum(paths.get(child, 0) for child in dag.children(node))
            if count >= 2:
                return True
            if count:
                paths[node] = count
    return False


STRATEGIES: dict[str, tuple[Callable[..., FeatureStreamWorkerGraph], str]] = {
    "single": (plan_single, "one worker: the whole DAG"),
    "by_source": (
        plan_by_source,
        "independent sub-DAGs (e.g. per instrument) over N workers, no cross-worker edges",
    ),
    "split": (
        plan_split,
        "the DAG cut across N workers; shared upstream features computed once and shipped",
    ),
}
"""The core strategies: name to ``(planner, description)``."""
