"""to_mermaid / to_dot: golden text for small graphs, stable ordering, escaping, plans."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from featurizer import Feature, FeatureStreamGraph, FeaturizerError, get_plugins
from featurizer.scaling import build_plan
from featurizer.testing import ExampleMid, ExampleTicker
from featurizer.viz import (
    Picture,
    describe_graph,
    describe_plan,
    node_ids,
    render,
    to_dot,
    to_mermaid,
)
from tests.viz.viz_support import (
    FRAGILE_B,
    MID_A,
    MID_B,
    ODD,
    ODD_NAME,
    PAIR,
    TICKER_A,
    TICKER_B,
    UP_A,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("FEATURIZER_UPDATE_GOLDEN"))
needs_dot = pytest.mark.graphviz


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}: run with FEATURIZER_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


def _diamond() -> FeatureStreamGraph:
    # mid_a is shared by up_a and pair: it must appear once.
    return FeatureStreamGraph([UP_A, PAIR])


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("single", lambda: FeatureStreamGraph([MID_A])),
        ("diamond", _diamond),
        ("external_input", lambda: FeatureStreamGraph([UP_A], external_inputs=[MID_A])),
    ],
)
def test_golden_text(name: str, build: object) -> None:
    graph = build()  # type: ignore[operator]
    _golden(f"{name}.mmd", to_mermaid(graph))
    _golden(f"{name}.dot", to_dot(graph))


def test_golden_plan() -> None:
    plan = build_plan([UP_A, PAIR, FRAGILE_B], "split", 3, get_plugins())
    picture = describe_plan(plan, transport="zmq", title="split over 3 workers")
    _golden("plan.mmd", to_mermaid(picture))
    _golden("plan.dot", to_dot(picture))


def test_shared_nodes_appear_once_and_kinds_are_distinct() -> None:
    picture = describe_graph(_diamond())
    ids = [node.id for node in picture.nodes]
    assert len(ids) == len(set(ids)) == 6
    by_title = {node.title: node for node in picture.nodes}
    assert by_title["mid_a"].kind == "feature" and not by_title["mid_a"].output
    assert by_title["up_a"].output and by_title["pair"].output
    assert by_title[TICKER_A.name].kind == "source"
    assert "threshold=10.0" in by_title["up_a"].details
    mermaid = to_mermaid(_diamond())
    assert mermaid.count(f'{node_ids([MID_A])[MID_A]}["') == 1
    assert re.search(r"n_\w+\[\(\"example_ticker\.x\.A", mermaid), "sources are cylinders"
    assert "classDef output" in mermaid and "class " in mermaid
    dot = to_dot(_diamond())
    assert dot.count("shape=cylinder") == 2
    assert dot.count("peripheries=2") == 2


def test_ordering_is_stable_and_independent_of_construction() -> None:
    first = to_dot(_diamond())
    rebuilt_pair = Feature.create(
        PAIR.definition,
        {},
        {
            "left": Feature.create(
                ExampleMid,
                {},
                {"ticker": Feature.create(ExampleTicker, {"symbol": "A", "exchange": "x"})},
            ),
            "right": MID_B,
        },
        name="pair",
    )
    second = to_dot(FeatureStreamGraph([UP_A, rebuilt_pair]))
    assert first == second
    assert to_mermaid(_diamond()) == to_mermaid(_diamond())


def test_odd_names_are_escaped() -> None:
    graph = FeatureStreamGraph([ODD, MID_A])
    mermaid = to_mermaid(graph)
    odd_line = next(line for line in mermaid.splitlines() if "ünïcødé" in line)
    label = odd_line.split('["', 1)[1].rsplit('"]', 1)[0]
    assert '"' not in label and "<b>" not in label and "|" not in label and "`" not in label
    assert "#34;" in label and "#60;b#62;" in label and "#35;1" in label and "#124;" in label
    assert "[name] {ünïcødé}" in label, "brackets and unicode stay literal inside quotes"
    assert "\n" not in odd_line.strip("\n")
    dot = to_dot(graph)
    odd_dot = next(line for line in dot.splitlines() if "ünïcødé" in line)
    assert '\\"ird' in odd_dot and "back\\\\slash" in odd_dot
    assert len(dot.splitlines()) == len(to_dot(FeatureStreamGraph([ODD, MID_A])).splitlines())


@needs_dot
def test_dot_renders_svg_with_the_literal_names() -> None:
    graph = FeatureStreamGraph([ODD, PAIR, UP_A])
    svg = render(to_dot(graph, title='a <title> & "quotes"'), "svg")
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter() if t.tag.endswith("text") and t.text]
    expected_odd = " ".join(ODD_NAME.split("\n"))
    assert expected_odd in texts, texts
    assert TICKER_B.name in texts and "pair" in texts and "threshold=10.0" in texts
    assert 'a <title> & "quotes"' in texts
    titles = [t.text for t in root.iter() if t.tag.endswith("title") and t.text]
    node_titles = {t for t in titles if t.startswith("n_") and "->" not in t}
    assert len(node_titles) == len(graph.nodes())


@needs_dot
def test_dot_renders_png_and_plan_svg() -> None:
    png = render(to_dot(_diamond()), "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    plan = build_plan([UP_A, PAIR, FRAGILE_B], "split", 3, get_plugins())
    svg = render(to_dot(plan), "svg").decode("utf-8")
    assert svg.count('class="cluster"') == 3


def test_plan_picture_has_one_cluster_per_worker_and_marked_crossings() -> None:
    plan = build_plan([UP_A, PAIR, FRAGILE_B], "split", 3, get_plugins())
    picture = describe_plan(plan, transport="zmq")
    assert [c.label for c in picture.clusters] == [f"worker {w.index}" for w in plan.workers]
    crossings = [e for e in picture.edges if e.crossing]
    assert len(crossings) == len(plan.edges) > 0
    assert {e.label for e in crossings} == {"zmq"}
    for edge in crossings:
        assert edge.source.split("_", 1)[0] != edge.target.split("_", 1)[0]
    for worker in plan.workers:
        inside = {n.title for n in picture.nodes if n.cluster == f"w{worker.index}"}
        assert {f.name for f in worker.computes} <= inside
        assert {f.name for f in worker.inputs} <= inside
    dot = to_dot(plan)
    assert dot.count("subgraph cluster_") == plan.size
    assert dot.count("style=dashed") == len(plan.edges)
    mermaid = to_mermaid(plan)
    assert mermaid.count("subgraph ") == plan.size and mermaid.count("-.->") == len(plan.edges)


def test_single_worker_plan_matches_the_graph_nodes() -> None:
    plan = build_plan([UP_A, PAIR], "single", 1, get_plugins())
    picture = describe_plan(plan)
    assert sorted(n.title for n in picture.nodes) == sorted(
        f.name for f in FeatureStreamGraph([UP_A, PAIR]).nodes()
    )
    assert not [e for e in picture.edges if e.crossing]


def test_pictures_pass_through_and_bad_subjects_fail() -> None:
    picture = Picture(nodes=(), edges=())
    assert to_mermaid(picture).startswith("flowchart LR")
    with pytest.raises(FeaturizerError, match="expected a FeatureStreamGraph"):
        to_dot([MID_A])


def test_node_ids_grow_when_short_keys_collide() -> None:
    a = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
    b = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "B"})
    clash = Feature(
        definition=ExampleTicker,
        params={},
        key=a.key[:10] + "f" * 54,
        name="clash",
        _hash=1,
    )
    ids = node_ids([a, b, clash])
    assert len(set(ids.values())) == 3
    assert all(len(i) > len("n_") + 10 for i in (ids[a], ids[clash]))
