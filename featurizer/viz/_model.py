"""What a picture shows, independent of the drawing language: nodes, edges, clusters.

:func:`describe_graph` turns a :class:`~featurizer.FeatureStreamGraph` into a :class:`Picture`;
the Mermaid and DOT writers only lay that description out. Everything here is deterministic:
nodes come in the graph's topological order, edges in dependency declaration order, so the same
graph always gives byte-identical text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from featurizer._feature import Feature
    from featurizer._graph import FeatureStreamGraph

__all__ = [
    "NODE_KINDS",
    "Picture",
    "PictureCluster",
    "PictureEdge",
    "PictureNode",
    "describe_graph",
    "node_ids",
]

NODE_KINDS = ("source", "input", "feature")
"""``source``: a data source fed by an emitter; ``input``: a feature computed elsewhere (another
worker) and received as an input; ``feature``: a feature computed by this graph."""

_MAX_PARAMS = 4
_MAX_VALUE_CHARS = 32
_SHORT_KEY = 10


@attrs.frozen(kw_only=True)
class PictureNode:
    """One box of the picture.

    :param id: identifier in the drawing language (letters, digits, ``_``): ``n_`` and the
        feature's short key.
    :param kind: one of :data:`NODE_KINDS`.
    :param output: whether the feature is an output of the graph.
    :param title: the first line: the feature's name.
    :param details: further lines (definition, key params, short key), unescaped.
    :param cluster: the id of the cluster (worker) the node belongs to, if any.
    """

    id: str
    kind: str = attrs.field(validator=attrs.validators.in_(NODE_KINDS))
    output: bool
    title: str
    details: tuple[str, ...] = ()
    cluster: str | None = None

    @property
    def lines(self) -> tuple[str, ...]:
        """Title then details."""
        return (self.title, *self.details)


@attrs.frozen(kw_only=True)
class PictureEdge:
    """A dependency: ``source`` feeds ``target``.

    :param source: id of the upstream node.
    :param target: id of the downstream node.
    :param label: the dependency name (and, across workers, the transport).
    :param crossing: whether the edge crosses from one worker to another.
    """

    source: str
    target: str
    label: str = ""
    crossing: bool = False


@attrs.frozen(kw_only=True)
class PictureCluster:
    """A group of nodes drawn in one frame (a worker of a scale-out plan).

    :param id: identifier in the drawing language.
    :param label: the caption.
    """

    id: str
    label: str


@attrs.frozen(kw_only=True)
class Picture:
    """Everything a drawing shows, in drawing order.

    :param nodes: the boxes, each feature once.
    :param edges: the arrows.
    :param clusters: the frames (empty for a single graph).
    :param title: an optional caption.
    """

    nodes: tuple[PictureNode, ...]
    edges: tuple[PictureEdge, ...]
    clusters: tuple[PictureCluster, ...] = ()
    title: str | None = None


def node_ids(features: Iterable[Feature]) -> dict[Feature, str]:
    """A stable, unique identifier per feature: ``n_`` and the shortest unique key prefix.

    The prefix is at least 10 hex digits (the feature's :attr:`~featurizer.Feature.short_key`)
    and longer only if two keys share it.

    :param features: the features, each once.
    :returns: feature to identifier.
    """
    unique = list(dict.fromkeys(features))
    length = _SHORT_KEY
    while length < 64 and len({f.key[:length] for f in unique}) < len(unique):
        length += 2
    return {feature: f"n_{feature.key[:length]}" for feature in unique}


def format_value(value: Any) -> str:
    """A param value for a label: short, one line.

    >>> format_value(60.0), format_value("BTC-USDT"), format_value("x" * 40)[-3:]
    ('60.0', 'BTC-USDT', 'xx…')
    """
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 1] + "…"
    return text


def format_params(params: Mapping[str, Any]) -> str:
    """The key params on one line: ``window=60.0, alpha=0.1`` (at most four, then ``+n``)."""
    items = [f"{name}={format_value(value)}" for name, value in params.items()]
    if len(items) > _MAX_PARAMS:
        items = [*items[:_MAX_PARAMS], f"+{len(items) - _MAX_PARAMS} more"]
    return ", ".join(items)


def describe_node(
    feature: Feature, node_id: str, *, kind: str, output: bool, cluster: str | None = None
) -> PictureNode:
    """The box of one feature: its name, then definition, key params and short key.

    :param feature: the feature.
    :param node_id: its identifier (see :func:`node_ids`).
    :param kind: one of :data:`NODE_KINDS`.
    :param output: whether it is an output.
    :param cluster: the cluster id, if any.
    """
    first = {
        "source": f"source: {feature.definition_name}",
        "input": f"input: {feature.definition_name}",
        "feature": feature.definition_name,
    }[kind]
    details = [first]
    params = format_params(feature.params)
    if params:
        details.append(params)
    details.append(f"key {feature.short_key}")
    return PictureNode(
        id=node_id,
        kind=kind,
        output=output,
        title=" ".join(feature.name.split()),
        details=tuple(details),
        cluster=cluster,
    )


def dependency_edges(feature: Feature, ids: Mapping[Feature, str]) -> list[PictureEdge]:
    """Edges into ``feature`` from its children, labelled with the dependency names.

    :param feature: the downstream feature.
    :param ids: identifiers of every node (children included).
    """
    return [
        PictureEdge(source=ids[child], target=ids[feature], label=name)
        for name, child in feature.children.items()
    ]


def kind_of(feature: Feature, inputs: Iterable[Feature]) -> str:
    """``source``, ``input`` (an input that is not a data source) or ``feature``."""
    if feature.is_data_source:
        return "source"
    if feature in set(inputs):
        return "input"
    return "feature"


def describe_graph(graph: FeatureStreamGraph, *, title: str | None = None) -> Picture:
    """The picture of a graph: every node once, in topological order, with its dependencies.

    :param graph: the graph.
    :param title: an optional caption.
    :returns: the description both writers lay out.
    """
    nodes = graph.nodes()
    inputs = graph.get_ins()
    outputs = set(graph.get_outs())
    ids = node_ids(nodes)
    boxes = []
    edges: list[PictureEdge] = []
    for feature in nodes:
        kind = kind_of(feature, inputs)
        boxes.append(describe_node(feature, ids[feature], kind=kind, output=feature in outputs))
        if kind == "feature":
            edges.extend(dependency_edges(feature, ids))
    return Picture(nodes=tuple(boxes), edges=tuple(edges), title=title)
