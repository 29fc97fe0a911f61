"""Callbacks carrying statements (``featurizer._inline``) are written into the graph's generated
code instead of being called, and the graph compiles itself again when they change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from featurizer import Feature, FeatureStreamGraph
from featurizer._inline import INLINE_ATTRIBUTE, InlineCode
from featurizer.testing import ExampleMid, ExampleTicker
from tests.core.definitions import ticker_event

TICKER = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
MID = Feature.create(ExampleMid, {}, {"ticker": TICKER})


class Collector:
    """Collects mids; inlinable once ``ready`` (before that, the graph must call it)."""

    def __init__(self) -> None:
        self.called: list[float] = []
        self.inlined: list[float] = []
        self.ready = False
        self.listeners: list[Callable[[], None]] = []

    def inline(self, event: str, prefix: str) -> InlineCode | None:
        if not self.ready:
            return None
        return InlineCode(
            lines=(f"{prefix}_keep({event}['mid'])",),
            namespace={f"{prefix}_keep": self.inlined.append},
        )

    def on_change(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    def become_ready(self) -> None:
        self.ready = True
        for listener in self.listeners:
            listener()


def _callback(collector: Collector) -> Callable[[Any, Any], None]:
    def callback(_feature: Any, event: Any) -> None:
        collector.called.append(event["mid"])

    setattr(callback, INLINE_ATTRIBUTE, collector)
    return callback


def test_the_graph_calls_until_the_statements_exist_then_writes_them_in() -> None:
    collector = Collector()
    graph = FeatureStreamGraph([MID])
    graph.set_callback(MID, _callback(collector))
    dispatch = graph.input_callback(TICKER)
    dispatch(ticker_event(1.0, 1.0, 3.0))
    assert (collector.called, collector.inlined) == ([2.0], [])
    collector.become_ready()  # the graph is told and compiles itself again
    assert "_keep(v" in graph._generated_source
    dispatch(ticker_event(2.0, 2.0, 4.0))
    dispatch(ticker_event(3.0, 3.0, 7.0))
    assert (collector.called, collector.inlined) == ([2.0], [3.0, 5.0])


def test_two_inlined_callbacks_of_one_node_keep_their_own_names_and_order() -> None:
    first, second = Collector(), Collector()
    first.ready = second.ready = True
    graph = FeatureStreamGraph([MID])
    graph.set_callbacks({MID: _callback(first)})
    graph.set_callbacks({MID: _callback(second)})
    for ts in range(3):
        graph.emit_named_data_event((TICKER, ticker_event(float(ts), float(ts), ts + 2.0)))
    assert first.inlined == second.inlined == [1.0, 2.0, 3.0]
    assert first.called == second.called == []
