"""Carried state is live state: a backfill's windows equal the per-event windows, and a live
graph given them continues exactly as a graph that processed everything itself."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from featurizer import FeatureStreamGraph, FeaturizerError
from featurizer.batch import BatchExecutor, backfill_events, restore_states
from tests.batch.batch_support import WINDOWED, features_of, market_events
from tests.batch.state_support import assert_states_equal, state_fields

FEATURES = features_of(WINDOWED)
EVENTS = market_events(FEATURES, 3_000, seed=13)


def _outputs(graph: FeatureStreamGraph, events: Any) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {f.name: [] for f in FEATURES}
    for feature in FEATURES:
        graph.set_callback(feature, lambda f, e: seen[f.name].append(e))
    for item in events:
        graph.emit_named_data_event(item)
    return seen


@settings(max_examples=5, deadline=None)
@given(cut=st.integers(1, len(EVENTS) - 1), chunk=st.sampled_from([97, 1000, 65_536]))
def test_backfill_then_live_equals_live_throughout(cut: int, chunk: int) -> None:
    executor = BatchExecutor(FEATURES)
    backfill_events(FEATURES, EVENTS[:cut], chunk_rows=chunk, executor=executor)
    live = FeatureStreamGraph(FEATURES)
    for item in EVENTS[:cut]:
        live.emit_named_data_event(item)
    states = executor.states()
    for feature in executor.kernel_nodes:
        assert_states_equal(states[feature], live.get_state(feature))
    continued = FeatureStreamGraph(FEATURES)
    restored = restore_states(continued, states)
    assert {f.name for f in restored} == {"vol", "tvi", "vwap", "bars"}
    assert _outputs(continued, EVENTS[cut:]) == _outputs(live, EVENTS[cut:])


def test_restored_state_is_a_copy() -> None:
    executor = BatchExecutor(FEATURES)
    backfill_events(FEATURES, EVENTS[:500], executor=executor)
    graph = FeatureStreamGraph(FEATURES)
    restore_states(graph, executor.states())
    vol = next(f for f in FEATURES if f.name == "vol")
    before = state_fields(executor.states()[vol])
    for item in EVENTS[500:1000]:
        graph.emit_named_data_event(item)
    assert state_fields(executor.states()[vol]) == before


def test_restoring_into_another_kind_of_state_is_refused() -> None:
    vol = next(f for f in FEATURES if f.name == "vol")
    graph = FeatureStreamGraph(FEATURES)
    with pytest.raises(FeaturizerError, match="keeps a state of type VolatilityWindow"):
        restore_states(graph, {vol: object()})
