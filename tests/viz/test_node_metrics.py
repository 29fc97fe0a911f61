"""NodeMetrics: exact counts against what the graph delivers, sampling, errors, zero cost off."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurizer import Feature, FeatureComputationError, FeatureStreamGraph, FeaturizerError
from featurizer.metrics import NodeMetrics, RunMetrics, quantile
from tests.viz.viz_support import (
    FRAGILE_B,
    MID_A,
    MID_B,
    PAIR,
    TICKER_A,
    TICKER_B,
    UP_A,
    ticker_event,
)

OUTPUT_SETS = {
    "chain": [UP_A],
    "diamond": [UP_A, PAIR],
    "errors": [UP_A, PAIR, FRAGILE_B],
}
INSTRUMENTATION = ("_o[", "_z[", "_cd[", "_tc[", "_last[", "_clock", "_timed")


def _observed(graph: FeatureStreamGraph) -> dict[Feature, int]:
    """Count what every node delivers, through the graph's own callbacks."""
    seen: dict[Feature, int] = dict.fromkeys(graph.nodes(), 0)

    def count(feature: Feature, _event: object) -> None:
        seen[feature] += 1

    for feature in graph.nodes():
        graph.set_callback(feature, count)
    return seen


@st.composite
def _streams(draw: st.DrawFn) -> list[tuple[Feature, dict[str, float]]]:
    count = draw(st.integers(min_value=0, max_value=60))
    events = []
    for i in range(count):
        source = draw(st.sampled_from([TICKER_A, TICKER_B]))
        bid = draw(st.sampled_from([-3.0, 5.0, 9.5, 12.0, 20.0]))
        events.append((source, ticker_event(float(i), bid, bid + 1.0)))
    return events


@given(
    events=_streams(),
    outputs=st.sampled_from(sorted(OUTPUT_SETS)),
    sample_every=st.sampled_from([1, 2, 3, 64]),
    fuse=st.booleans(),
    combine=st.booleans(),
)
def test_counts_equal_what_each_node_delivers(
    events: list[tuple[Feature, dict[str, float]]],
    outputs: str,
    sample_every: int,
    fuse: bool,
    combine: bool,
) -> None:
    metrics = NodeMetrics(sample_every=sample_every)
    graph = FeatureStreamGraph(
        OUTPUT_SETS[outputs],
        combine_outputs=combine,
        error_policy="skip",
        fuse=fuse,
        metrics=metrics,
    )
    plain = FeatureStreamGraph(
        OUTPUT_SETS[outputs], combine_outputs=combine, error_policy="skip", fuse=fuse
    )
    seen, seen_plain = _observed(graph), _observed(plain)
    for named in events:
        if named[0] in graph.get_ins():
            graph.emit_named_data_event(named)
            plain.emit_named_data_event(named)
    assert seen == seen_plain, "metrics must not change what the graph computes"
    readings = {r.feature: r for r in metrics.read()}
    for feature in graph.nodes():
        reading = readings[feature]
        assert reading.events_out == seen[feature], feature.name
        expected_in = (
            seen[feature]
            if feature in graph.get_ins()
            else sum(seen[up] for up in graph.upstreams_of(feature))
        )
        assert reading.events_in == expected_in, feature.name
        assert reading.errors == graph.error_counts[feature], feature.name
    for source in graph.get_ins():
        emitted = sum(1 for f, _ in events if f == source)
        assert readings[source].samples == emitted // sample_every
        last = [e for f, e in events if f == source]
        assert readings[source].last_event_time == (last[-1]["timestamp"] if last else None)


def test_raise_policy_keeps_counts_exact_after_an_error() -> None:
    metrics = NodeMetrics(sample_every=2)
    graph = FeatureStreamGraph([PAIR, FRAGILE_B], metrics=metrics)
    seen = _observed(graph)
    graph.emit_named_data_event((TICKER_A, ticker_event(0.0, 1.0, 2.0)))
    with pytest.raises(FeatureComputationError, match="negative mid"):
        graph.emit_named_data_event((TICKER_B, ticker_event(1.0, -5.0, -4.0)))
    graph.emit_named_data_event((TICKER_B, ticker_event(2.0, 5.0, 6.0)))
    readings = {r.feature: r for r in metrics.read()}
    assert readings[FRAGILE_B].errors == 1
    for feature in graph.nodes():
        assert readings[feature].events_out == seen[feature], feature.name
    assert readings[TICKER_B].events_in == 2 and readings[MID_B].events_out == 2
    assert readings[FRAGILE_B].events_in == 2 and readings[FRAGILE_B].events_out == 1


def test_timings_are_sampled_per_input_and_give_quantiles() -> None:
    metrics = NodeMetrics(sample_every=4, reservoir=8)
    graph = FeatureStreamGraph([UP_A, PAIR], metrics=metrics)
    for i in range(40):
        graph.emit_named_data_event((TICKER_A if i % 2 else TICKER_B, ticker_event(i, 12.0, 13.0)))
    readings = {r.feature: r for r in metrics.read()}
    assert readings[TICKER_A].samples == readings[TICKER_B].samples == 5
    assert readings[MID_A].samples == 5 and readings[PAIR].samples == 10
    for reading in readings.values():
        assert reading.p50_seconds is not None and reading.p99_seconds is not None
        assert 0 < reading.p50_seconds <= reading.p99_seconds < 1.0
        assert reading.sampled_seconds > 0
    # the source's time covers its whole dispatch, so it is at least its mid's
    assert readings[TICKER_A].sampled_seconds >= readings[MID_A].sampled_seconds


def test_metrics_off_compiles_no_instrumentation() -> None:
    plain = FeatureStreamGraph([UP_A, PAIR, FRAGILE_B], combine_outputs=True)
    assert plain.metrics is None
    for marker in INSTRUMENTATION:
        assert marker not in plain.generated_source, marker
    instrumented = FeatureStreamGraph(
        [UP_A, PAIR, FRAGILE_B], combine_outputs=True, metrics=NodeMetrics()
    )
    for marker in INSTRUMENTATION:
        assert marker in instrumented.generated_source, marker
    inputs = len(plain.get_ins())
    assert plain.generated_source.count("\ndef ") + 1 == 2 * inputs  # warming + ready
    assert instrumented.generated_source.count("\ndef ") + 1 == 3 * inputs  # + timed


def test_one_metrics_object_per_graph_and_argument_checks() -> None:
    metrics = NodeMetrics()
    FeatureStreamGraph([MID_A], metrics=metrics)
    with pytest.raises(FeaturizerError, match="another graph"):
        FeatureStreamGraph([MID_B], metrics=metrics)
    for bad in (0, -1, 1.5, True, 1 << 21):
        with pytest.raises(FeaturizerError, match="sample_every"):
            NodeMetrics(sample_every=bad)  # type: ignore[arg-type]
    with pytest.raises(FeaturizerError, match="reservoir"):
        NodeMetrics(reservoir=0)
    with pytest.raises(FeaturizerError, match=r"metrics=run_metrics\.nodes"):
        RunMetrics().attach(FeatureStreamGraph([MID_A]))


def test_quantile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert quantile(values, 0.5) == 50 and quantile(values, 0.99) == 99
    assert quantile([7], 0.99) == 7 and quantile([], 0.5) is None


def test_run_metrics_rates_lag_and_emitter_stats() -> None:
    clock = [100.0]
    wall = [1_000.0]
    run_metrics = RunMetrics(clock=lambda: clock[0], wall_clock=lambda: wall[0], rate_window=5.0)
    graph = FeatureStreamGraph([UP_A], metrics=run_metrics.nodes)

    class Stats:
        def stats(self) -> dict[str, object]:
            return {
                "gaps": 4,
                "reconnects": 1,
                "streams": [
                    {"exchange": "X", "symbol": "A", "channel": "example_ticker", "gaps": 4}
                ],
                "exchanges": [{"exchange": "x", "reconnects": 1}],
            }

    class Broken:
        def stats(self) -> None:
            raise RuntimeError("no stats today")

    run_metrics.attach(graph, {"live": Stats(), "other": Broken()}, {"live": [TICKER_A]})
    first = run_metrics.snapshot()
    assert first.events_in == 0 and first.sources[0].lag_seconds is None
    for i in range(30):
        graph.emit_named_data_event((TICKER_A, ticker_event(990.0 + i * 0.1, 12.0, 13.0)))
    clock[0] += 2.0
    snapshot = run_metrics.snapshot()
    (source,) = snapshot.sources
    assert source.events == 30 and source.events_per_second == pytest.approx(15.0)
    assert source.lag_seconds == pytest.approx(1_000.0 - 992.9)
    assert (source.gaps, source.reconnects, source.emitter) == (4, 1, "live")
    assert [(e.name, e.gaps, e.reconnects) for e in snapshot.emitters] == [("live", 4, 1)]
    assert snapshot.uptime_seconds == pytest.approx(2.0)
    nodes = {n.name: n for n in snapshot.nodes}
    assert nodes["mid_a"].in_per_second == pytest.approx(15.0)
    clock[0] += 10.0
    assert run_metrics.snapshot().sources[0].events_per_second == 0.0
    run_metrics.add_transport_edge(
        "w0 -> w1", "zmq", lambda: {"queue_depth": 3, "batches": 7, "bytes": 1024}
    )
    run_metrics.add_transport_edge("broken", "zmq", lambda: 1 / 0)
    (edge,) = run_metrics.snapshot().edges
    assert (edge.name, edge.queue_depth, edge.batches, edge.bytes) == ("w0 -> w1", 3, 7, 1024)


def test_readings_from_another_thread_are_monotonic() -> None:
    metrics = NodeMetrics(sample_every=3)
    graph = FeatureStreamGraph([UP_A, PAIR], metrics=metrics)
    stop = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        previous: dict[str, tuple[int, int]] = {}
        while not stop.is_set():
            for reading in metrics.read():
                now = (reading.events_in, reading.events_out)
                before = previous.get(reading.feature.key, (0, 0))
                if now[0] < before[0] or now[1] < before[1]:
                    problems.append(f"{reading.feature.name}: {before} -> {now}")
                previous[reading.feature.key] = now

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(20_000):
            graph.emit_named_data_event(
                (TICKER_A if i % 3 else TICKER_B, ticker_event(i, 12.0, 13.0))
            )
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not problems, problems[:5]
    final = {r.feature: r for r in metrics.read()}
    assert final[TICKER_A].events_out + final[TICKER_B].events_out == 20_000
