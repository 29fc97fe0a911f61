"""The state protocol: restore(snapshot(s)) continues exactly like s, for every bundled feature,
for streamz's stateful operators and for Snapshotable objects; what cannot be snapshotted is a
start-up error naming the feature."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamz import Stream

from featurizer import (
    DataDefinition,
    Event,
    Feature,
    FeatureDefinition,
    FeatureStreamGraph,
    Param,
    Schema,
)
from featurizer.checkpoint import (
    SnapshotError,
    check_snapshotable,
    restore_graph,
    snapshot_graph,
)
from featurizer.testing import ExampleMid, ExampleTicker
from featurizer.testing.strategies import l2_book_streams, ticker_streams, trade_streams
from tests.features.features_support import FEW, exact, feature, source

features = pytest.importorskip("featurizer_features")


def _continue_both(
    outputs: Callable[[], list[Feature]],
    src_of: Callable[[Feature], Feature],
    events: Sequence[tuple[str, Event]],
    cut: int,
    *,
    combine: bool,
) -> tuple[list[Any], list[Any]]:
    """Run ``events`` through one graph; through another restored from a snapshot at ``cut``
    (taken after a pickle round trip, as on disk). Both outputs after the cut."""

    def build() -> tuple[FeatureStreamGraph, list[Any]]:
        outs = outputs()
        got: list[Any] = []
        graph = FeatureStreamGraph(outs, combine_outputs=combine, combined_out_callback=got.append)
        if not combine:
            for out in outs:
                graph.set_callback(out, lambda f, e, got=got: got.append((f.name, e)))
        return graph, got

    first, first_got = build()
    sources = {s.definition_name: s for s in first.get_ins()}
    for kind, event in events[:cut]:
        first.emit_named_data_event((sources[kind], dict(event)))
    snapshot = pickle.loads(pickle.dumps(snapshot_graph(first)))
    second, second_got = build()
    restore_graph(second, snapshot)
    first_got.clear()
    second_sources = {s.definition_name: s for s in second.get_ins()}
    for kind, event in events[cut:]:
        first.emit_named_data_event((sources[kind], dict(event)))
        second.emit_named_data_event((second_sources[kind], dict(event)))

    def plain(items: list[Any]) -> list[Any]:
        return [
            exact([(f.name, e) for f, e in item])
            if isinstance(item, tuple) and combine
            else exact(item)
            for item in items
        ]

    return plain(first_got), plain(second_got)


def _trade_features() -> list[Feature]:
    trades = source(features.TradesSource)
    return [
        feature(features.TradeVolumeImbalance, {"window": 3.0}, trades=trades),
        feature(features.VWAP, {"window": 2.0}, trades=trades),
        feature(features.OHLCV, {"interval": 1.0}, trades=trades),
    ]


def _book_features() -> list[Feature]:
    book = source(features.L2BookSource)
    snapshot = feature(features.L2Snapshot, {"depth": 3}, l2_book=book)
    top = feature(features.L2Snapshot, {"depth": 1}, l2_book=book)
    mid = feature(features.MidPriceL2, {}, l2_snapshot=snapshot)
    top_mid = feature(features.MidPriceL2, {}, l2_snapshot=top)
    return [
        snapshot,
        feature(features.OrderBookImbalance, {"depth": 2}, l2_snapshot=snapshot),
        mid,
        feature(features.RelativeSpreadL2, {}, l2_snapshot=snapshot),
        feature(features.Basis, {}, venue=mid, reference=top_mid),
    ]


def _ticker_features() -> list[Feature]:
    ticker = source(features.TickerSource)
    mid = feature(features.MidPrice, {}, ticker=ticker)
    return [
        mid,
        feature(features.Volatility, {"window": 3.0}, mid=mid),
        feature(features.RelativeSpread, {}, ticker=ticker),
    ]


@st.composite
def _cut(draw: st.DrawFn, stream: st.SearchStrategy[list[Event]], kind: str) -> tuple[Any, int]:
    events = [(kind, e) for e in draw(stream)]
    return events, draw(st.integers(0, len(events)))


@pytest.mark.parametrize("combine", [False, True])
@FEW
@given(case=_cut(trade_streams(max_size=60), "trades"))
def test_trade_features_continue_exactly(case: tuple[Any, int], combine: bool) -> None:
    events, cut = case
    uninterrupted, restored = _continue_both(_trade_features, source, events, cut, combine=combine)
    assert restored == uninterrupted


@pytest.mark.parametrize("combine", [False, True])
@FEW
@given(case=_cut(l2_book_streams(max_size=60), "l2_book"))
def test_book_features_continue_exactly(case: tuple[Any, int], combine: bool) -> None:
    events, cut = case
    uninterrupted, restored = _continue_both(_book_features, source, events, cut, combine=combine)
    assert restored == uninterrupted


@pytest.mark.parametrize("combine", [False, True])
@FEW
@given(case=_cut(ticker_streams(max_size=60), "ticker"))
def test_ticker_features_continue_exactly(case: tuple[Any, int], combine: bool) -> None:
    events, cut = case
    uninterrupted, restored = _continue_both(_ticker_features, source, events, cut, combine=combine)
    assert restored == uninterrupted


def test_every_bundled_feature_definition_is_covered() -> None:
    covered = {
        f.definition_name
        for build in (_trade_features, _book_features, _ticker_features)
        for f in build()
    }
    bundled = {
        getattr(features, name).name
        for name in features.__all__
        if isinstance(getattr(features, name), type)
        and issubclass(getattr(features, name), FeatureDefinition)
    }
    assert bundled <= covered, f"not round-tripped: {sorted(bundled - covered)}"


# --- streamz operators and the protocol -----------------------------------------------------


def _ticker(ts: float, bid: float) -> Event:
    return {"timestamp": ts, "receipt_timestamp": ts, "bid": bid, "ask": bid + 1.0}


def _user_feature(
    build: Callable[[Stream], Stream | tuple[Stream, Any]], name: str = "user"
) -> type[FeatureDefinition]:
    class User(FeatureDefinition):
        params: ClassVar[Mapping[str, Param]] = {}

        @classmethod
        def event_schema(cls) -> Schema:
            return {"value": float}

        @classmethod
        def dep_upstream_schema(
            cls, dep_schema: str | None = None
        ) -> Mapping[str, type[DataDefinition]]:
            return {"ticker": ExampleTicker}

        @classmethod
        def stream(
            cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]
        ) -> Stream | tuple[Stream, Any]:
            return build(upstreams["ticker"])

    User.name = name
    return User


def _wrap(value: Any, ts: float) -> Event:
    return {"timestamp": ts, "receipt_timestamp": ts, "value": repr(value)}


OPERATOR_CASES: dict[str, Callable[[Stream], Stream]] = {
    "accumulate": lambda s: s.accumulate(lambda acc, e: acc + e["bid"], start=0.0).map(
        lambda v: _wrap(v, 0.0)
    ),
    "sliding_window": lambda s: (
        s.map(lambda e: e["bid"])
        .sliding_window(3, return_partial=True)
        .map(lambda w: _wrap(w, 0.0))
    ),
    "partition": lambda s: s.map(lambda e: e["bid"]).partition(3).map(lambda w: _wrap(w, 0.0)),
    "unique": lambda s: s.map(lambda e: e["bid"]).unique().map(lambda v: _wrap(v, 0.0)),
    "collect_zip": lambda s: (
        s.map(lambda e: e["bid"]).zip(s.map(lambda e: e["ask"])).map(lambda p: _wrap(p, 0.0))
    ),
    "combine_latest": lambda s: (
        s.filter(lambda e: e["bid"] > 3)
        .combine_latest(s.map(lambda e: e["ask"]), emit_on=0)
        .map(lambda p: _wrap(p, 0.0))
    ),
    "slice": lambda s: s.slice(1, None, 2).map(lambda e: _wrap(e["bid"], 0.0)),
}


@pytest.mark.parametrize("name", sorted(OPERATOR_CASES))
@FEW
@given(
    bids=st.lists(st.integers(0, 6).map(float), min_size=0, max_size=25),
    data=st.data(),
)
def test_stateful_streamz_operators_continue_exactly(
    name: str, bids: list[float], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(bids)))
    definition = _user_feature(OPERATOR_CASES[name], name=f"op_{name}")
    ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})

    def outputs() -> list[Feature]:
        return [Feature.create(definition, {}, {"ticker": ticker})]

    events = [("example_ticker", _ticker(float(i), bid)) for i, bid in enumerate(bids)]
    uninterrupted, restored = _continue_both(outputs, source, events, cut, combine=False)
    assert restored == uninterrupted


class _Counter:
    """A Snapshotable state that refuses pickling: only its protocol methods work."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = __import__("threading").Lock()

    def update(self, event: Event) -> Event:
        self.count += 1
        return {
            "timestamp": event["timestamp"],
            "receipt_timestamp": event["timestamp"],
            "value": float(self.count),
        }

    def snapshot_state(self) -> Any:
        return self.count

    def restore_state(self, snapshot: Any) -> None:
        self.count = snapshot


def test_snapshotable_objects_use_their_own_protocol() -> None:
    definition = _user_feature(lambda s: _pair(s, _Counter()), name="counter")
    ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})

    def outputs() -> list[Feature]:
        return [Feature.create(definition, {}, {"ticker": ticker})]

    events = [("example_ticker", _ticker(float(i), 1.0)) for i in range(7)]
    uninterrupted, restored = _continue_both(outputs, source, events, 4, combine=False)
    assert restored == uninterrupted and len(restored) == 3


def _pair(stream: Stream, state: Any) -> tuple[Stream, Any]:
    return stream.map(state.update), state


def _graph_of(definition: type[FeatureDefinition]) -> FeatureStreamGraph:
    ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    return FeatureStreamGraph([Feature.create(definition, {}, {"ticker": ticker}, name="mine")])


class _Holder:
    """A state holding a lambda: pickle cannot take it."""

    def __init__(self) -> None:
        self.callback = lambda x: x

    def update(self, event: Event) -> Event:
        return event


def test_an_unpicklable_state_is_an_error_naming_the_feature() -> None:
    graph = _graph_of(_user_feature(lambda s: _pair(s, _Holder()), name="holder"))
    with pytest.raises(
        SnapshotError, match=r"feature 'mine' \(definition 'holder'\) cannot be snapshotted.*lambda"
    ):
        check_snapshotable(graph)


def test_state_hidden_from_stream_is_an_error_naming_the_feature() -> None:
    class Hidden:
        def __init__(self) -> None:
            self.seen = 0

        def update(self, event: Event) -> Event:
            self.seen += 1
            return event

    graph = _graph_of(_user_feature(lambda s: s.map(Hidden().update), name="hidden"))
    with pytest.raises(SnapshotError, match=r"feature 'mine'.*did not return"):
        check_snapshotable(graph)


def test_timer_operators_are_an_error_naming_the_feature() -> None:
    graph = _graph_of(_user_feature(lambda s: s.timed_window(1.0).flatten(), name="timed"))
    with pytest.raises(
        SnapshotError, match=r"feature 'mine'.*timed_window.*cannot be checkpointed"
    ):
        check_snapshotable(graph)


def test_a_snapshot_missing_a_feature_is_refused() -> None:
    ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    mid = Feature.create(ExampleMid, {}, {"ticker": ticker}, name="mid")
    snapshot = snapshot_graph(FeatureStreamGraph([mid]))
    snapshot["nodes"].clear()
    with pytest.raises(SnapshotError, match="no state for feature 'mid'"):
        restore_graph(FeatureStreamGraph([mid]), snapshot)
