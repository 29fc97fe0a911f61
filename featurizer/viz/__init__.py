"""Seeing a feature graph: Mermaid and DOT text, SVG/PNG pictures, and feature plots.

Drawing is separate from the graph: :func:`to_mermaid` and :func:`to_dot` are pure functions
of a :class:`~featurizer.FeatureStreamGraph`. Rendering SVG/PNG runs Graphviz's ``dot``
program; plots use matplotlib (install both Python extras with ``pip install
'featurizer[viz]'``). Nothing heavy is imported until it is used.

>>> from featurizer import Feature, FeatureStreamGraph
>>> from featurizer.testing import ExampleMid, ExampleTicker
>>> ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
>>> graph = FeatureStreamGraph([Feature.create(ExampleMid, {}, {"ticker": ticker})])
>>> to_dot(graph).startswith("digraph featurizer {")
True
"""

from __future__ import annotations

from featurizer.viz._files import check_writable, write_atomically
from featurizer.viz._model import (
    NODE_KINDS,
    Picture,
    PictureCluster,
    PictureEdge,
    PictureNode,
    describe_graph,
    node_ids,
)
from featurizer.viz._plan import describe_plan
from featurizer.viz._plot import (
    FeatureSeries,
    PlotError,
    load_rows,
    parse_time,
    plot_features,
    rows_from_config,
    save_figure,
    series_from_rows,
)
from featurizer.viz._render import (
    FORMATS,
    RENDERED_FORMATS,
    GraphvizNotFoundError,
    RenderError,
    format_from_suffix,
    graphviz_available,
    picture_bytes,
    render,
    write_picture,
)
from featurizer.viz._text import picture_of, to_dot, to_mermaid

__all__ = [
    "FORMATS",
    "NODE_KINDS",
    "RENDERED_FORMATS",
    "FeatureSeries",
    "GraphvizNotFoundError",
    "Picture",
    "PictureCluster",
    "PictureEdge",
    "PictureNode",
    "PlotError",
    "RenderError",
    "check_writable",
    "describe_graph",
    "describe_plan",
    "format_from_suffix",
    "graphviz_available",
    "load_rows",
    "node_ids",
    "parse_time",
    "picture_bytes",
    "picture_of",
    "plot_features",
    "render",
    "rows_from_config",
    "save_figure",
    "series_from_rows",
    "to_dot",
    "to_mermaid",
    "write_atomically",
    "write_picture",
]
