"""Batch == per event, bit for bit, for every kernel and for whole DAGs, with random chunking.

The per-event path (the live :class:`FeatureStreamGraph`) is the reference. Inputs include
what breaks naive vectorization: equal timestamps, timestamps exactly one window apart (window
edges), decreasing timestamps, NaN and infinities, zeros of both signs, values whose exact
integers overflow int64 (so the Python-integer path runs), subnormals and huge magnitudes,
windows too short to hold their own event. Both paths run under the ``skip`` error policy so
that a run goes on after an error; the errors counted per feature must match too.
"""

from __future__ import annotations

import math
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from featurizer import FeatureStreamGraph
from featurizer.batch import BatchExecutor, backfill_events
from tests.batch.batch_support import (
    assert_rows_equal,
    config,
    features_of,
    per_event_rows,
    same,
    sources_by_name,
)
from tests.batch.state_support import assert_states_equal

NICE = [100.0, 100.5, 99.75, 101.25, 3000.1, 0.1, 0.3, 1.0, 2.0, 7.0]
EXTREME = [0.0, -0.0, -1.5, 5e-324, 1e-300, 1e300, 1.7976931348623157e308, 2.0**70 + 1.0]
SPECIAL = [math.nan, math.inf, -math.inf]
STEPS = [0.0, 0.0, 0.25, 0.5, 1.0, 1.0, 2.0, 0.1, 1e-9]
WINDOWS = [0.5, 1.0, 2.0, 3.0, 1e-12]

EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def values(draw: Any, special: bool, extreme: bool) -> float:
    pools = [st.sampled_from(NICE), st.floats(0.01, 1e5), st.integers(1, 10**6).map(float)]
    if extreme:
        pools.append(st.sampled_from(EXTREME))
        pools.append(st.floats(allow_nan=False, allow_infinity=False))
    if special and draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(SPECIAL))
    return draw(st.one_of(pools))


@st.composite
def market(draw: Any, max_events: int = 80) -> list[tuple[str, dict[str, Any]]]:
    """``(kind, event)`` ticker and trade events of one symbol."""
    special = draw(st.booleans())
    extreme = draw(st.booleans())
    disorder = draw(st.integers(0, 4)) == 0
    steps = [*STEPS, -0.5] if disorder else STEPS
    count = draw(st.integers(0, max_events))
    ts = 1_700_000_000.0 if draw(st.booleans()) else 10.0
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(count):
        ts += draw(st.sampled_from(steps))
        if draw(st.booleans()):
            out.append(
                (
                    "ticker",
                    {
                        "timestamp": ts,
                        "receipt_timestamp": ts + 0.001,
                        "bid": draw(values(special, extreme)),
                        "ask": draw(values(special, extreme)),
                        "bid_size": 1.0,
                        "ask_size": 2.0,
                    },
                )
            )
        else:
            out.append(
                (
                    "trades",
                    {
                        "timestamp": ts,
                        "receipt_timestamp": ts + 0.002,
                        "price": draw(values(special, extreme)),
                        "amount": draw(values(special, extreme)),
                        "side": draw(st.sampled_from(["buy", "sell"])),
                        "trade_id": str(i),
                    },
                )
            )
    return out


def _boundaries(draw: Any, count: int) -> list[int]:
    return sorted(set(draw(st.lists(st.integers(0, max(count, 0)), max_size=8))))


def check(entries: list[tuple[str, str, dict[str, Any]]], data: Any, per: str = "event") -> None:
    features = features_of(config(*entries))
    by_name = sources_by_name(features)
    events = [(by_name[kind], e) for kind, e in data.draw(market()) if kind in by_name]
    boundaries = _boundaries(data.draw, len(events))
    graph = FeatureStreamGraph(features, combine_outputs=True, error_policy="skip")
    want = per_event_rows(features, events, per, graph=graph)
    executor = BatchExecutor(features, error_policy="skip")
    got = backfill_events(features, events, boundaries=boundaries, per=per, executor=executor)
    assert_rows_equal(got.to_pylist(), want)
    assert dict(executor.error_counts) == dict(graph.error_counts)
    states = executor.states()
    for feature in executor.kernel_nodes:
        assert_states_equal(states[feature], graph.get_state(feature))


@EXAMPLES
@given(data=st.data())
def test_mid_price_and_relative_spread(data: Any) -> None:
    check([("mid", "mid_price", {}), ("spread", "relative_spread", {})], data)


@EXAMPLES
@given(data=st.data(), window=st.sampled_from(WINDOWS))
def test_volatility(data: Any, window: float) -> None:
    check([("vol", "volatility", {"window": window})], data)


@EXAMPLES
@given(data=st.data(), window=st.sampled_from(WINDOWS))
def test_trade_volume_imbalance(data: Any, window: float) -> None:
    check([("tvi", "trade_volume_imbalance", {"window": window})], data)


@EXAMPLES
@given(data=st.data(), window=st.sampled_from(WINDOWS))
def test_vwap(data: Any, window: float) -> None:
    check([("vwap", "vwap", {"window": window})], data)


@EXAMPLES
@given(data=st.data(), interval=st.sampled_from([*WINDOWS, 0.25, 4.0]))
def test_ohlcv(data: Any, interval: float) -> None:
    check([("bars", "ohlcv", {"interval": interval})], data)


@EXAMPLES
@given(data=st.data(), window=st.sampled_from(WINDOWS), per=st.sampled_from(["event", "timestamp"]))
def test_every_kernel_together(data: Any, window: float, per: str) -> None:
    check(
        [
            ("mid", "mid_price", {}),
            ("spread", "relative_spread", {}),
            ("vol", "volatility", {"window": window}),
            ("tvi", "trade_volume_imbalance", {"window": window}),
            ("vwap", "vwap", {"window": window}),
            ("bars", "ohlcv", {"interval": window}),
        ],
        data,
        per,
    )


def test_same_is_bitwise() -> None:
    assert not same(0.0, -0.0)
    assert same(math.nan, math.nan)
    assert not same(1.0, 1)


def test_decimal_prices_and_amounts_in_long_windows() -> None:
    """Cent prices and micro amounts: exact integers beyond int64 (the limb paths), windows of
    thousands of events, against the per-event path."""
    from tests.batch.batch_support import REFERENCE, reference_events

    features = features_of(REFERENCE)
    events = reference_events(features, 30_000, seed=3)
    for _, event in events:
        if "bid" in event:
            event["bid"] = round(event["bid"] + 0.01, 2)
            event["ask"] = round(event["ask"] + 0.03, 2)
    graph = FeatureStreamGraph(features, combine_outputs=True)
    want = per_event_rows(features, events, graph=graph)
    executor = BatchExecutor(features)
    got = backfill_events(features, events, chunk_rows=7_000, executor=executor)
    assert_rows_equal(got.to_pylist(), want)
    for feature in executor.kernel_nodes:
        assert_states_equal(executor.states()[feature], graph.get_state(feature))


def test_under_raise_the_first_error_is_the_per_event_one() -> None:
    import pytest

    from featurizer import FeatureComputationError

    features = features_of(config(("vol", "volatility", {"window": 1.0})))
    ticker = sources_by_name(features)["ticker"]
    events = [
        (ticker, {"timestamp": float(t), "receipt_timestamp": float(t), "bid": b, "ask": 2.0})
        for t, b in enumerate([1.0, 1.5, math.nan, 1.0, math.inf])
    ]
    graph = FeatureStreamGraph(features, combine_outputs=True)
    with pytest.raises(FeatureComputationError) as live:
        for item in events:
            graph.emit_named_data_event(item)
    with pytest.raises(FeatureComputationError) as batch:
        backfill_events(features, events, boundaries=[1])
    assert batch.value.feature == live.value.feature
    assert batch.value.event == live.value.event or (
        str(batch.value.event) == str(live.value.event)
    )
    assert type(batch.value.cause) is type(live.value.cause)
