"""Mermaid and Graphviz DOT text for a graph: pure functions, no third-party dependency."""

from __future__ import annotations

from typing import Any

from featurizer._errors import FeaturizerError
from featurizer.viz._model import Picture, PictureNode, describe_graph

__all__ = ["dot_quote", "mermaid_escape", "picture_of", "to_dot", "to_mermaid"]

# Colours shared by both languages: sources blue, inputs from other workers amber (dashed),
# features grey, outputs green with a heavy border.
_FILL = {"source": "#dbeafe", "input": "#fef3c7", "feature": "#f8fafc"}
_STROKE = {"source": "#1d4ed8", "input": "#b45309", "feature": "#475569"}
_OUTPUT_FILL = "#dcfce7"
_OUTPUT_STROKE = "#15803d"

# Mermaid: characters that would end a label, open HTML or start an entity code, written as
# Mermaid's numeric entity codes (``#34;`` is a double quote).
_MERMAID_CODES = {
    '"': "#34;",
    "#": "#35;",
    "&": "#38;",
    "<": "#60;",
    ">": "#62;",
    "`": "#96;",
    "|": "#124;",
}


def _one_line(text: str) -> str:
    """Control characters (newlines, tabs) become spaces: a label line stays one line."""
    return "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)


def mermaid_escape(text: str) -> str:
    """Escape text for a quoted Mermaid label or an edge label.

    >>> mermaid_escape('say "hi" <b>#1</b> | [x]')
    'say #34;hi#34; #60;b#62;#35;1#60;/b#62; #124; [x]'
    """
    return "".join(_MERMAID_CODES.get(ch, ch) for ch in _one_line(text))


def dot_quote(text: str) -> str:
    """A DOT double-quoted string holding ``text`` literally (backslashes and quotes escaped).

    >>> print(dot_quote('a "b" \\\\n'))
    "a \\"b\\" \\\\n"
    """
    escaped = _one_line(text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def picture_of(subject: Any, *, title: str | None = None) -> Picture:
    """The :class:`~featurizer.viz.Picture` of a graph or a worker plan (a picture is returned
    as it is).

    :param subject: a :class:`~featurizer.FeatureStreamGraph`, a worker plan
        (:class:`featurizer.scaling.FeatureStreamWorkerGraph`, see
        :func:`~featurizer.viz.describe_plan`) or a ``Picture``.
    :param title: a caption.
    :raises FeaturizerError: for anything else.
    """
    if isinstance(subject, Picture):
        return subject
    from featurizer._graph import FeatureStreamGraph

    if isinstance(subject, FeatureStreamGraph):
        return describe_graph(subject, title=title)
    if hasattr(subject, "workers") and hasattr(subject, "edges") and hasattr(subject, "nodes"):
        from featurizer.viz._plan import describe_plan

        return describe_plan(subject, title=title)
    raise FeaturizerError(
        f"expected a FeatureStreamGraph, a worker plan or a Picture, received "
        f"{type(subject).__name__} {subject!r}"
    )


def _mermaid_shape(node: PictureNode) -> str:
    label = "<br/>".join(mermaid_escape(line) for line in node.lines)
    if node.kind == "source":
        return f'[("{label}")]'
    if node.kind == "input":
        return f'>"{label}"]'
    return f'["{label}"]'


def to_mermaid(graph: Any, *, title: str | None = None) -> str:
    """A Mermaid flowchart of a graph (or of a worker plan: one subgraph per worker).

    Data sources are cylinders (blue), inputs computed by another worker are flags (amber,
    dashed), features are boxes and outputs green with a heavy border. Each node shows the
    feature's name, its definition, key params and short key; edges carry the dependency name.
    The text is deterministic: topological node order, dependency order for edges.

    :param graph: a :class:`~featurizer.FeatureStreamGraph`, a worker plan or a ``Picture``.
    :param title: an optional caption (Mermaid front matter).
    :returns: the flowchart source, ending with a newline.

    >>> from featurizer import Feature, FeatureStreamGraph
    >>> from featurizer.testing import ExampleMid, ExampleTicker
    >>> ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    >>> mid = Feature.create(ExampleMid, {}, {"ticker": ticker}, name="mid")
    >>> print(to_mermaid(FeatureStreamGraph([mid])))  # doctest: +ELLIPSIS
    flowchart LR
        n_...[("example_ticker.x.S<br/>source: example_ticker<br/>...<br/>key ...")]
        n_...["mid<br/>example_mid<br/>key ..."]
        n_... -->|ticker| n_...
    ...
    """
    picture = picture_of(graph, title=title)
    lines: list[str] = []
    if picture.title:
        lines += ["---", f"title: {mermaid_escape(picture.title)}", "---"]
    lines.append("flowchart LR")
    clustered: dict[str | None, list[PictureNode]] = {}
    for node in picture.nodes:
        clustered.setdefault(node.cluster, []).append(node)
    for node in clustered.get(None, []):
        lines.append(f"    {node.id}{_mermaid_shape(node)}")
    for cluster in picture.clusters:
        lines.append(f'    subgraph {cluster.id}["{mermaid_escape(cluster.label)}"]')
        for node in clustered.get(cluster.id, []):
            lines.append(f"        {node.id}{_mermaid_shape(node)}")
        lines.append("    end")
    for edge in picture.edges:
        arrow = "-.->" if edge.crossing else "-->"
        label = f"|{mermaid_escape(edge.label)}|" if edge.label else ""
        lines.append(f"    {edge.source} {arrow}{label} {edge.target}")
    for kind in ("source", "input", "feature"):
        dashed = ",stroke-dasharray:5 5" if kind == "input" else ""
        lines.append(f"    classDef {kind} fill:{_FILL[kind]},stroke:{_STROKE[kind]}{dashed}")
    lines.append(
        f"    classDef output fill:{_OUTPUT_FILL},stroke:{_OUTPUT_STROKE},stroke-width:3px"
    )
    for kind in ("source", "input", "feature", "output"):
        members = [
            n.id
            for n in picture.nodes
            if (n.output if kind == "output" else n.kind == kind and not n.output)
        ]
        if members:
            lines.append(f"    class {','.join(members)} {kind}")
    return "\n".join(lines) + "\n"


def _dot_attributes(node: PictureNode) -> str:
    label = "\\n".join(dot_quote(line)[1:-1] for line in node.lines)
    shape = {"source": "cylinder", "input": "cds", "feature": "box"}[node.kind]
    style = ["filled"]
    if node.kind == "feature":
        style.append("rounded")
    if node.kind == "input":
        style.append("dashed")
    fill, stroke = _FILL[node.kind], _STROKE[node.kind]
    extra = ""
    if node.output:
        fill, stroke = _OUTPUT_FILL, _OUTPUT_STROKE
        style.append("bold")
        extra = ", peripheries=2, penwidth=2"
    return (
        f'label="{label}", shape={shape}, style="{",".join(style)}", '
        f'fillcolor="{fill}", color="{stroke}"{extra}'
    )


def to_dot(graph: Any, *, title: str | None = None) -> str:
    """A Graphviz DOT digraph of a graph (or of a worker plan: one cluster per worker).

    Same content and styling as :func:`to_mermaid`; render it with Graphviz's ``dot``
    (:func:`featurizer.viz.render`). Labels are escaped, so names with quotes, backslashes,
    brackets or non-ASCII characters are drawn literally.

    :param graph: a :class:`~featurizer.FeatureStreamGraph`, a worker plan or a ``Picture``.
    :param title: an optional caption drawn above the graph.
    :returns: the DOT source, ending with a newline.

    >>> from featurizer import Feature, FeatureStreamGraph
    >>> from featurizer.testing import ExampleMid, ExampleTicker
    >>> ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    >>> mid = Feature.create(ExampleMid, {}, {"ticker": ticker}, name="mid")
    >>> print(to_dot(FeatureStreamGraph([mid])), end="")  # doctest: +ELLIPSIS
    digraph featurizer {
        graph [rankdir=LR, ...];
    ...
        n_... -> n_... [label="ticker"];
    }
    """
    picture = picture_of(graph, title=title)
    lines = ["digraph featurizer {"]
    graph_attributes = 'rankdir=LR, fontname="Helvetica", fontsize=12, nodesep=0.35, ranksep=0.6'
    if picture.title:
        graph_attributes += f", label={dot_quote(picture.title)}, labelloc=t"
    lines.append(f"    graph [{graph_attributes}];")
    lines.append('    node [fontname="Helvetica", fontsize=10, margin="0.15,0.06"];')
    lines.append('    edge [fontname="Helvetica", fontsize=9, color="#64748b"];')
    clustered: dict[str | None, list[PictureNode]] = {}
    for node in picture.nodes:
        clustered.setdefault(node.cluster, []).append(node)
    for node in clustered.get(None, []):
        lines.append(f"    {node.id} [{_dot_attributes(node)}];")
    for cluster in picture.clusters:
        lines.append(f"    subgraph cluster_{cluster.id} {{")
        lines.append(
            f'        graph [label={dot_quote(cluster.label)}, style="rounded,dashed", '
            f'color="#94a3b8"];'
        )
        for node in clustered.get(cluster.id, []):
            lines.append(f"        {node.id} [{_dot_attributes(node)}];")
        lines.append("    }")
    for edge in picture.edges:
        attributes = [f"label={dot_quote(edge.label)}"] if edge.label else []
        if edge.crossing:
            attributes += ["style=dashed", 'color="#b45309"', 'fontcolor="#b45309"']
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"    {edge.source} -> {edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
