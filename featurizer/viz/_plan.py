"""The picture of a scale-out plan: one cluster per worker, shipped features between them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featurizer.viz._model import (
    Picture,
    PictureCluster,
    PictureEdge,
    PictureNode,
    describe_node,
    node_ids,
)

if TYPE_CHECKING:
    from featurizer._feature import Feature

__all__ = ["describe_plan"]


def describe_plan(plan: Any, *, transport: str | None = None, title: str | None = None) -> Picture:
    """The picture of a :class:`featurizer.scaling.FeatureStreamWorkerGraph`.

    Each worker is a cluster holding the data sources it ingests, the features it receives
    from other workers (inputs) and the features it computes, outputs marked. Dependencies
    inside a worker are plain edges; each shipped feature is a dashed edge from the worker
    computing it to the worker receiving it, labelled with the transport.

    :param plan: the plan (``featurizer plan`` prints the same plan as text).
    :param transport: the transport's name for the cross-worker edges (``None``: ``"transport"``).
    :param title: an optional caption.
    :returns: the description :func:`~featurizer.viz.to_mermaid` and
        :func:`~featurizer.viz.to_dot` lay out.

    >>> from featurizer import Feature, get_plugins
    >>> from featurizer.scaling import build_plan
    >>> from featurizer.testing import ExampleMid, ExampleTicker
    >>> a = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
    >>> b = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "B"})
    >>> mids = [Feature.create(ExampleMid, {}, {"ticker": t}) for t in (a, b)]
    >>> picture = describe_plan(build_plan(mids, "by_source", 2, get_plugins()))
    >>> [c.label for c in picture.clusters], len(picture.nodes), len(picture.edges)
    (['worker 0', 'worker 1'], 4, 2)
    """
    ids = node_ids(plan.nodes)
    outputs_of = {worker.index: set(worker.outputs) for worker in plan.workers}
    nodes: list[PictureNode] = []
    edges: list[PictureEdge] = []
    clusters: list[PictureCluster] = []
    placed: dict[int, dict[Feature, str]] = {}
    for worker in plan.workers:
        cluster = f"w{worker.index}"
        clusters.append(PictureCluster(id=cluster, label=_worker_label(worker)))
        here: dict[Feature, str] = {}
        members = [(f, "source") for f in worker.sources]
        members += [(f, "input") for f in worker.inputs if f not in worker.sources]
        members += [(f, "feature") for f in worker.computes if not f.is_data_source]
        for feature, kind in sorted(members, key=lambda item: plan.node_rank(item[0])):
            if feature in here:
                continue
            node_id = f"{cluster}_{ids[feature]}"
            here[feature] = node_id
            nodes.append(
                describe_node(
                    feature,
                    node_id,
                    kind=kind,
                    output=feature in outputs_of[worker.index],
                    cluster=cluster,
                )
            )
        placed[worker.index] = here
        for feature in sorted(here, key=plan.node_rank):
            if feature.is_data_source or feature in worker.inputs:
                continue
            for name, child in feature.children.items():
                if child in here:
                    edges.append(PictureEdge(source=here[child], target=here[feature], label=name))
    via = transport or "transport"
    for edge in plan.edges:
        source = placed.get(edge.source, {}).get(edge.feature)
        target = placed.get(edge.target, {}).get(edge.feature)
        if source is None or target is None:
            continue
        edges.append(PictureEdge(source=source, target=target, label=via, crossing=True))
    return Picture(nodes=tuple(nodes), edges=tuple(edges), clusters=tuple(clusters), title=title)


def _worker_label(worker: Any) -> str:
    parts = [f"worker {worker.index}"]
    if worker.is_idle:
        parts.append("(idle)")
    return " ".join(parts)
