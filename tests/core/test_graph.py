"""FeatureStreamGraph semantics: once per node, glitch-free combined output, errors, fusion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamz import Stream

from featurizer import Feature, FeatureComputationError, FeatureStreamGraph, FeaturizerError
from featurizer.testing import ExampleMid, ExampleTicker, run_graph
from tests.core.definitions import Boom, CountingMid, RunningMax, Spread, ticker_event

TICKER_A = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
TICKER_B = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "B"})
MID_A = Feature.create(ExampleMid, {}, {"ticker": TICKER_A})
MID_B = Feature.create(ExampleMid, {}, {"ticker": TICKER_B})
MAX_A = Feature.create(RunningMax, {"scale": 1.0}, {"mid": MID_A})
SPREAD = Feature.create(Spread, {}, {"left": MID_A, "right": MID_B})
SELF_SPREAD = Feature.create(Spread, {}, {"left": MID_A, "right": MID_A})


def test_shared_sub_features_are_one_node_computed_once_per_event() -> None:
    CountingMid.calls.clear()
    mid = Feature.create(CountingMid, {}, {"ticker": TICKER_A})
    mid_again = Feature.create(
        CountingMid, {}, {"ticker": Feature.create(ExampleTicker, {"symbol": "A", "exchange": "x"})}
    )
    assert mid == mid_again and hash(mid) == hash(mid_again)
    graph = FeatureStreamGraph([mid, mid_again])
    assert graph.nodes() == [TICKER_A, mid]
    for ts in range(5):
        graph.emit_named_data_event((TICKER_A, ticker_event(float(ts), 1.0, 2.0)))
    assert CountingMid.calls == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_diamond_combined_output_is_glitch_free() -> None:
    events = [(TICKER_A, ticker_event(float(i), float(i), float(i) + 2)) for i in range(1, 6)]
    sink = run_graph([MID_A, MAX_A], events)
    assert len(sink.combined) == 5
    for grouped in sink.combined:
        (mid_feature, mid), (max_feature, best) = grouped
        assert (mid_feature, max_feature) == (MID_A, MAX_A)
        assert mid["timestamp"] == best["timestamp"]
        assert best["max"] == mid["mid"]


def test_streamz_combine_latest_would_glitch_but_graph_does_not() -> None:
    source = Stream()
    mid = source.map(lambda e: e["bid"] + 1)
    doubled = mid.map(lambda m: m * 2)
    seen: list[tuple[float, float]] = []
    mid.combine_latest(doubled).sink(seen.append)
    source.emit({"bid": 1.0})
    source.emit({"bid": 2.0})
    assert (2.0, 6.0) in seen, "raw streamz fires with a stale mid: the glitch we avoid"
    sink = run_graph([MID_A, MAX_A], [(TICKER_A, ticker_event(t, t, t)) for t in (1.0, 2.0)])
    assert [g[1][1]["max"] for g in sink.combined] == [1.0, 2.0]


def test_combined_waits_until_every_output_has_a_value() -> None:
    events = [
        (TICKER_A, ticker_event(1.0, 1.0, 1.0)),
        (TICKER_A, ticker_event(2.0, 2.0, 2.0)),
        (TICKER_B, ticker_event(3.0, 5.0, 5.0)),
        (TICKER_A, ticker_event(4.0, 3.0, 3.0)),
    ]
    sink = run_graph([MID_A, MID_B], events)
    assert [(g[0][1]["mid"], g[1][1]["mid"]) for g in sink.combined] == [(2.0, 5.0), (3.0, 5.0)]


@st.composite
def _ticks(draw: st.DrawFn) -> list[tuple[Feature, dict[str, float]]]:
    count = draw(st.integers(min_value=0, max_value=40))
    events = []
    ts = 0.0
    for _ in range(count):
        ts += draw(st.sampled_from([0.0, 0.5, 1.0]))
        source = draw(st.sampled_from([TICKER_A, TICKER_B]))
        bid = draw(st.floats(min_value=-100, max_value=100, allow_nan=False))
        events.append((source, ticker_event(ts, bid, bid + draw(st.floats(0, 10)))))
    return events


@given(events=_ticks(), outputs=st.permutations([MID_A, MID_B, MAX_A, SPREAD, SELF_SPREAD]))
def test_combined_output_follows_the_documented_semantics(
    events: list[tuple[Feature, dict[str, float]]], outputs: list[Feature]
) -> None:
    sink = run_graph(outputs, events, observe=None)
    # Reference model: replay per-node outputs input by input.
    expected = []
    latest: dict[Feature, dict[str, float]] = {}
    graph = FeatureStreamGraph(outputs)
    updated: list[Feature] = []
    for feature in outputs:
        graph.set_callback(feature, lambda f, e: (updated.append(f), latest.__setitem__(f, e)))
    for named in events:
        updated.clear()
        graph.emit_named_data_event(named)
        if updated and all(f in latest for f in outputs):
            expected.append(tuple((f, latest[f]) for f in outputs))
    assert sink.combined == expected
    for grouped in sink.combined:
        assert [f for f, _ in grouped] == outputs


def test_each_input_flows_once_through_each_node_even_when_it_has_two_paths() -> None:
    sink = run_graph([SELF_SPREAD], [(TICKER_A, ticker_event(1.0, 1.0, 3.0))])
    assert len(sink.events[MID_A]) == 1
    # The node receives slot 0 then slot 1 of the same input; combine_latest fires once both
    # slots have a value, so exactly one output, computed from the fresh mid on both sides.
    assert [e["spread"] for e in sink.events[SELF_SPREAD]] == [0.0]


def test_fused_and_streamz_paths() -> None:
    graph = FeatureStreamGraph([MAX_A, SPREAD])
    assert graph.is_fused(MID_A) and graph.is_fused(MAX_A)
    assert not graph.is_fused(SPREAD)
    assert "m1_0" in graph.generated_source or "def _on_" in graph.generated_source


def test_params_give_separate_state() -> None:
    doubled = Feature.create(RunningMax, {"scale": 2.0}, {"mid": MID_A})
    sink = run_graph([MAX_A, doubled], [(TICKER_A, ticker_event(1.0, 1.0, 1.0))])
    assert sink.events[MAX_A][0]["max"] == 1.0
    assert sink.events[doubled][0]["max"] == 2.0


def test_raise_policy_names_feature_definition_and_event() -> None:
    boom = Feature.create(Boom, {}, {"ticker": TICKER_A})
    graph = FeatureStreamGraph([boom, MID_A])
    with pytest.raises(FeatureComputationError) as info:
        graph.emit_named_data_event((TICKER_A, ticker_event(1.0, -1.0, 1.0)))
    message = str(info.value)
    assert "'boom(example_ticker.x.A)'" in message and "definition 'boom'" in message
    assert "'bid': -1.0" in message and "negative bid" in message
    assert isinstance(info.value.__cause__, ValueError)


def test_skip_policy_counts_reports_and_keeps_other_branches() -> None:
    boom = Feature.create(Boom, {}, {"ticker": TICKER_A})
    errors: list[FeatureComputationError] = []
    combined: list[object] = []
    graph = FeatureStreamGraph(
        [boom, MID_A], True, combined.append, error_policy="skip", error_callback=errors.append
    )
    mids: list[float] = []
    graph.set_callback(MID_A, lambda f, e: mids.append(e["mid"]))
    graph.emit_named_data_event((TICKER_A, ticker_event(1.0, 1.0, 1.0)))
    graph.emit_named_data_event((TICKER_A, ticker_event(2.0, -1.0, 3.0)))
    assert mids == [1.0, 1.0]
    assert graph.error_counts[boom] == 1 and len(errors) == 1 and errors[0].feature == boom
    assert len(combined) == 2


def test_unknown_input_and_bad_policy_are_clear_errors() -> None:
    graph = FeatureStreamGraph([MID_A])
    with pytest.raises(FeaturizerError, match="not an input of this graph"):
        graph.emit_named_data_event((TICKER_B, ticker_event(1.0, 1.0, 1.0)))
    with pytest.raises(FeaturizerError, match="error_policy must be one of"):
        FeatureStreamGraph([MID_A], error_policy="ignore")
    with pytest.raises(FeaturizerError, match="not a node of this graph"):
        graph.set_callback(MID_B, print)


def test_set_callbacks_observes_several_nodes_with_one_compilation() -> None:
    graph = FeatureStreamGraph([SPREAD])
    seen: list[tuple[str, float]] = []
    compiles = []
    compile_graph = graph._compile
    graph._compile = lambda: (compiles.append(1), compile_graph())  # type: ignore[method-assign]
    with pytest.raises(FeaturizerError, match="not a node of this graph"):
        graph.set_callbacks({MID_A: print, MAX_A: print})
    assert compiles == []  # a bad mapping registers nothing
    graph.set_callbacks(
        {
            MID_A: lambda f, e: seen.append(("a", e["mid"])),
            MID_B: lambda f, e: seen.append(("b", e["mid"])),
        }
    )
    assert compiles == [1]
    graph.emit_named_data_event((TICKER_A, ticker_event(1.0, 1.0, 3.0)))
    graph.emit_named_data_event((TICKER_B, ticker_event(2.0, 5.0, 7.0)))
    assert seen == [("a", 2.0), ("b", 6.0)]


def test_get_stream_get_ins_get_outs_and_input_callback() -> None:
    graph = FeatureStreamGraph([MAX_A, MID_B])
    assert graph.get_outs() == [MAX_A, MID_B]
    assert graph.get_ins() == [TICKER_A, TICKER_B]
    seen: list[float] = []
    graph.get_stream(MID_A).map(lambda e: e["mid"] * 10).sink(seen.append)
    graph.input_callback(TICKER_A)(ticker_event(1.0, 1.0, 3.0))
    assert seen == [20.0]


def test_external_inputs_cut_the_dag_and_accept_upstream_events() -> None:
    graph = FeatureStreamGraph([MAX_A], external_inputs=[MID_A])
    assert graph.get_ins() == [MID_A] and graph.nodes() == [MID_A, MAX_A]
    out: list[float] = []
    graph.set_callback(MAX_A, lambda f, e: out.append(e["max"]))
    graph.emit_named_data_event((MID_A, {"timestamp": 1.0, "receipt_timestamp": 1.0, "mid": 4.0}))
    assert out == [4.0]


@given(events=_ticks())
def test_fused_and_unfused_graphs_give_identical_outputs(
    events: list[tuple[Feature, dict[str, float]]],
) -> None:
    outputs = [MID_A, MAX_A, SPREAD, MID_B]
    fused = run_graph(outputs, events)
    plain = CollectingSinkGraph(outputs, events)
    assert fused.combined == plain.combined and fused.events == plain.events


def CollectingSinkGraph(outputs: list[Feature], events: list[tuple[Feature, dict[str, float]]]):
    from featurizer.testing import CollectingSink

    sink = CollectingSink()
    graph = FeatureStreamGraph(outputs, True, sink.on_combined, fuse=False)
    assert not any(graph.is_fused(f) for f in graph.nodes())
    for feature in graph.nodes():
        graph.set_callback(feature, sink.on_event)
    for named in events:
        graph.emit_named_data_event(named)
    return sink
