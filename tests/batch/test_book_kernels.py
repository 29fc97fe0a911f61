"""Book kernels == per event, bit for bit: snapshots, deltas before the first snapshot, gap
markers (resets), empty sides, NaN and infinite levels, any chunking; carried books equal."""

from __future__ import annotations

import math
from typing import Any

import hypothesis.strategies as st
import pyarrow as pa
from featurizer_features.batch._book import _levels
from hypothesis import HealthCheck, given, settings

from featurizer import FeatureStreamGraph
from featurizer.batch import BatchExecutor, backfill_events
from featurizer.testing.strategies import l2_book_streams
from tests.batch.batch_support import (
    assert_rows_equal,
    config,
    features_of,
    per_event_rows,
    sources_by_name,
)
from tests.batch.state_support import assert_states_equal

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ODD = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1e308]


@st.composite
def book_streams(draw: Any) -> list[dict[str, Any]]:
    """``l2_book`` streams, some levels' prices or sizes replaced by odd values."""
    events = draw(l2_book_streams(max_size=60))
    if not draw(st.booleans()):
        return events
    out = []
    for event in events:
        sides = {}
        for side in ("bids", "asks"):
            levels = []
            for level in event[side]:
                pair = list(level)
                if draw(st.integers(0, 7)) == 0:
                    pair[draw(st.integers(0, 1))] = draw(st.sampled_from(ODD))
                levels.append((pair[0], pair[1]))
            sides[side] = tuple(levels)
        out.append({**event, **sides})
    return out


def _book_config(depth: int, obi_depth: int) -> Any:
    snapshot = {"feature": {"l2_snapshot": {"depth": depth}}}
    return config(
        ("book", "l2_snapshot", {"depth": depth}),
        ("obi", "order_book_imbalance", {"depth": obi_depth, **snapshot}),
        ("mid", "mid_price_l2", snapshot),
        ("spread", "relative_spread_l2", snapshot),
    )


@EXAMPLES
@given(
    data=st.data(),
    depth=st.integers(1, 6),
    obi_depth=st.integers(1, 8),
    per=st.sampled_from(["event", "timestamp"]),
)
def test_book_features_equal_the_per_event_path(
    data: Any, depth: int, obi_depth: int, per: str
) -> None:
    features = features_of(_book_config(depth, obi_depth))
    source = sources_by_name(features)["l2_book"]
    events = [(source, event) for event in data.draw(book_streams())]
    boundaries = sorted(set(data.draw(st.lists(st.integers(0, len(events)), max_size=8))))
    graph = FeatureStreamGraph(features, combine_outputs=True, error_policy="skip")
    want = per_event_rows(features, events, per, graph=graph)
    executor = BatchExecutor(features, error_policy="skip")
    got = backfill_events(features, events, boundaries=boundaries, per=per, executor=executor)
    assert {f.definition_name for f in executor.kernel_nodes} == {
        "l2_snapshot",
        "order_book_imbalance",
        "mid_price_l2",
        "relative_spread_l2",
    }
    assert_rows_equal(got.to_pylist(), want)
    assert dict(executor.error_counts) == dict(graph.error_counts)
    states = executor.states()
    for feature in executor.kernel_nodes:
        assert_states_equal(states[feature], graph.get_state(feature))


@EXAMPLES
@given(events=book_streams(), cut=st.integers(0, 60), length=st.integers(0, 60))
def test_stored_level_lists_read_as_the_decoder_reads_them(
    events: list[dict[str, Any]], cut: int, length: int
) -> None:
    """The kernels read stored ``list<list<double>>`` columns (sliced, as chunks are) as the
    per-event decoder does: tuples of ``(price, size)`` tuples."""
    bids = [event["bids"] for event in events]
    column = pa.array([[list(level) for level in levels] for levels in bids])
    column = column.slice(min(cut, len(bids)), length)
    want = bids[min(cut, len(bids)) : min(cut, len(bids)) + length]
    got = _levels(column)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert type(g) is tuple and all(type(level) is tuple for level in g)
        assert repr(g) == repr(w)  # NaN equal to NaN, -0.0 distinct from 0.0
