"""Distributed output == single-process output, for generated configs, inputs and worker counts.

Many examples run on the ``local`` scaler (worker threads, in-process transport, optionally
serialising every batch); ``test_ray.py`` repeats a few on real Ray actors and ZeroMQ.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from featurizer import Feature, FeatureStreamGraph, get_plugins
from featurizer._runner import RunOptions
from featurizer.scaling import PlanError, build_plan, run_scaled
from featurizer.testing import CollectingSink
from tests.scaling.scaling_support import (
    Pairs,
    RunningMax,
    Sum2,
    canonical,
    memory_emitters,
    mid,
    tick,
    ticker,
)

SYMBOLS = ("A", "B", "C")


@st.composite
def configs(draw: st.DrawFn) -> list[Feature]:
    count = draw(st.integers(1, 3))
    sources = [ticker(s) for s in SYMBOLS[:count]]
    mids = [mid(s) for s in sources]
    pool: list[Feature] = list(mids)
    for m in mids:
        pool.append(Feature.create(RunningMax, {}, {"mid": m}))
        pool.append(Feature.create(Pairs, {}, {"mid": m}))
        pool.append(Feature.create(Sum2, {"scale": 2.0}, {"a": m, "b": m}))
    if count > 1:
        pool.append(Feature.create(Sum2, {}, {"a": mids[0], "b": mids[1]}))
    outputs = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5, unique=True))
    return outputs


@st.composite
def inputs(draw: st.DrawFn, outputs: list[Feature]) -> list[tuple[Feature, dict[str, Any]]]:
    sources = sorted({s for f in outputs for s in f.data_sources()}, key=lambda f: f.name)
    events = []
    for source in sources:
        size = draw(st.integers(0, 25))
        ts = 0.0
        for _ in range(size):
            ts += draw(st.sampled_from([0.0, 0.25, 0.5, 3.0]))
            events.append((source, tick(ts, float(draw(st.integers(1, 9))))))
    draw(st.randoms(use_true_random=False)).shuffle(events)
    events.sort(key=lambda named: named[1]["timestamp"])
    return events


def single_process(
    outputs: list[Feature], events: list[tuple[Feature, dict[str, Any]]], combine: bool
) -> list[Any]:
    got: list[Any] = []
    graph = FeatureStreamGraph(outputs, combine_outputs=combine, combined_out_callback=got.append)
    if not combine:
        for feature in graph.get_outs():
            graph.set_callback(feature, lambda f, e: got.append({"feature": f.name, **e}))
    for named in events:
        graph.emit_named_data_event(named)
    return got


@settings(max_examples=60)
@given(
    data=st.data(),
    strategy=st.sampled_from(["single", "by_source", "split"]),
    workers=st.integers(1, 3),
    combine=st.booleans(),
    batch_size=st.sampled_from([1, 3, 1024]),
    serialise=st.booleans(),
)
def test_distributed_output_equals_single_process_output(
    data: st.DataObject,
    strategy: str,
    workers: int,
    combine: bool,
    batch_size: int,
    serialise: bool,
) -> None:
    outputs = data.draw(configs())
    try:
        plan = build_plan(outputs, strategy, workers, get_plugins())
    except PlanError:
        assume(False)
        raise
    events = canonical(plan, data.draw(inputs(outputs)))
    expected = single_process(outputs, events, combine)
    got: list[Any] = []
    sink = CollectingSink()
    summary = run_scaled(
        outputs,
        RunOptions(combine_outputs=combine),
        sink,
        workers=workers,
        strategy=strategy,
        transport_options={"batch_size": batch_size, "hwm": 2, "serialise": serialise},
        make_emitters=memory_emitters(events),
        on_combined=got.append,
        flush_interval=0.001,
    )
    if combine:
        assert got == expected
        assert [tuple(f.key for f, _ in row) for row in got] == [
            tuple(f.key for f in plan.outputs)
        ] * len(got)
    else:
        assert sink.rows == expected
    assert summary.events_in == len(events)
    assert summary.outputs_out == len(expected)
    assert summary.late_events == 0
