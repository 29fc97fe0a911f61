"""Definitions and helpers shared by the scaling tests."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from streamz import Stream

from featurizer import DataDefinition, Event, Feature, FeatureDefinition, Param, Schema
from featurizer.scaling import FeatureStreamWorkerGraph
from featurizer.testing import ExampleMid, ExampleTicker, InMemoryEmitter


def times(event: Event) -> Event:
    return {"timestamp": event["timestamp"], "receipt_timestamp": event["receipt_timestamp"]}


class RunningMax(FeatureDefinition):
    """Stateful (accumulate, fused): running max of the mid."""

    name = "scaling_running_max"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"max": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"mid": ExampleMid}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        def step(state: float, event: Event) -> tuple[float, Event]:
            best = max(state, event["mid"])
            return best, {**times(event), "max": best}

        return upstreams["mid"].accumulate(step, start=float("-inf"), returns_state=True)


class Pairs(FeatureDefinition):
    """Not fusable (flatten): two events per mid event, so it is a multi-event node."""

    name = "scaling_pairs"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"mid": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"mid": ExampleMid}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        return (
            upstreams["mid"]
            .map(lambda e: [{**times(e), "mid": e["mid"]}, {**times(e), "mid": e["mid"] * 0.5}])
            .flatten()
        )


class Sum2(FeatureDefinition):
    """Two dependencies (a streamz kernel): running sum of both inputs' mids, in arrival order."""

    name = "scaling_sum2"
    params: ClassVar[Mapping[str, Param]] = {"scale": Param(kind="float", default=1.0)}

    @classmethod
    def event_schema(cls) -> Schema:
        return {"mid": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"a": ExampleMid, "b": ExampleMid}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        scale = params.get("scale", 1.0)

        def step(state: float, event: Event) -> tuple[float, Event]:
            total = state * 0.5 + event["mid"] * scale
            return total, {**times(event), "mid": total}

        return upstreams["a"].union(upstreams["b"]).accumulate(step, start=0.0, returns_state=True)


class Boom(FeatureDefinition):
    """Raises on a bid of exactly 13."""

    name = "scaling_boom"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"mid": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"ticker": ExampleTicker}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        def mid(event: Event) -> Event:
            if event["bid"] == 13.0:
                raise ValueError("unlucky bid 13")
            return {**times(event), "mid": event["bid"]}

        return upstreams["ticker"].map(mid)


def ticker(symbol: str) -> Feature:
    return Feature.create(ExampleTicker, {"exchange": "x", "symbol": symbol})


def mid(source: Feature) -> Feature:
    return Feature.create(ExampleMid, {}, {"ticker": source})


def tick(ts: float, bid: float, ask: float | None = None) -> Event:
    return {
        "timestamp": ts,
        "receipt_timestamp": ts,
        "bid": bid,
        "ask": bid + 1.0 if ask is None else ask,
    }


def canonical(
    plan: FeatureStreamWorkerGraph, events: Sequence[tuple[Feature, Event]]
) -> list[tuple[Feature, Event]]:
    """The single-process input order the distributed run reproduces: by time, then group."""
    return sorted(events, key=lambda named: (named[1]["timestamp"], plan.group_of(named[0])))


def memory_emitters(events: Sequence[tuple[Feature, Event]], *, delay: float = 0.0) -> Any:
    """An emitter factory: each worker replays its own sources' events, in the given order."""

    def make(plan: FeatureStreamWorkerGraph, index: int) -> dict[str, Any]:
        sources = list(plan.workers[index].sources)
        mine = [named for named in events if named[0] in sources]
        emitter = SlowEmitter(mine, delay) if delay else InMemoryEmitter(mine, validate=False)
        return {"memory": (emitter, sources)}

    return make


class SlowEmitter(InMemoryEmitter):
    """Sleeps ``delay`` seconds between events (live-like input)."""

    def __init__(self, events: Sequence[tuple[Feature, Event]], delay: float) -> None:
        super().__init__(events, validate=False)
        self.delay = delay

    def run(self) -> None:
        for feature, event in self._events:
            if self._stop.wait(self.delay):
                break
            callback = self._callbacks.get(feature)
            if callback is not None:
                callback(event)
                self.emitted += 1


class RaiseAfter(FeatureDefinition):
    """Mid price that raises on its ``after``-th event (a worker failing mid-run)."""

    name = "scaling_raise_after"
    params: ClassVar[Mapping[str, Param]] = {"after": Param(kind="int", default=100)}

    @classmethod
    def event_schema(cls) -> Schema:
        return {"mid": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        from featurizer_features import TickerSource

        return {"ticker": TickerSource}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        seen = [0]

        def mid(event: Event) -> Event:
            seen[0] += 1
            if seen[0] == params["after"]:
                raise RuntimeError(f"planned failure at event {seen[0]}")
            return {**times(event), "mid": event["bid"]}

        return upstreams["ticker"].map(mid)


STUCK = threading.Event()
"""Released by the tests using :class:`StuckAt13` when they end."""


class StuckAt13(FeatureDefinition):
    """Mid price that never returns (until :data:`STUCK` is set) from a bid of exactly 13."""

    name = "scaling_stuck_at_13"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"mid": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        from featurizer_features import TickerSource

        return {"ticker": TickerSource}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        def mid(event: Event) -> Event:
            if event["bid"] == 13.0:
                STUCK.wait(120.0)
            return {**times(event), "mid": event["bid"]}

        return upstreams["ticker"].map(mid)
