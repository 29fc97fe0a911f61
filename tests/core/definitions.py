"""Small definitions used by the core tests (no plugin needed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamz import Stream

from featurizer import DataDefinition, DataSourceDefinition, Event, FeatureDefinition, Param, Schema
from featurizer.testing import ExampleMid, ExampleTicker


class Prints(DataSourceDefinition):
    """A trade-like source with a ``price``."""

    name = "prints"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"price": float}


class CountingMid(FeatureDefinition):
    """Mid price that counts how often it is computed (class-level, reset by tests)."""

    name = "counting_mid"
    calls: ClassVar[list[float]] = []

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
            cls.calls.append(event["timestamp"])
            return {**_times(event), "mid": (event["bid"] + event["ask"]) / 2}

        return upstreams["ticker"].map(mid)


def _times(event: Event) -> Event:
    return {"timestamp": event["timestamp"], "receipt_timestamp": event["receipt_timestamp"]}


class RunningMax(FeatureDefinition):
    """Running max of ``mid`` via ``accumulate`` (fused) with a filter dropping repeats."""

    name = "running_max"
    params: ClassVar[Mapping[str, Param]] = {"scale": Param(kind="float", default=1.0)}

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
        scale = params["scale"]

        def step(state: tuple[float, bool], event: Event) -> tuple[tuple[float, bool], Event]:
            value = event["mid"] * scale
            best = max(state[0], value)
            return (best, best > state[0]), {**_times(event), "max": best}

        return (
            upstreams["mid"]
            .accumulate(step, start=(float("-inf"), False), returns_state=True)
            .filter(lambda event: event is not None)
        )


class Spread(FeatureDefinition):
    """Difference of two upstream mids, through streamz ``combine_latest`` (not fused)."""

    name = "mid_spread"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"spread": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"left": ExampleMid, "right": ExampleMid}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        def diff(pair: tuple[Event, Event]) -> Event:
            left, right = pair
            newest = left if left["timestamp"] >= right["timestamp"] else right
            return {**_times(newest), "spread": left["mid"] - right["mid"]}

        return upstreams["left"].combine_latest(upstreams["right"]).map(diff)


class Boom(FeatureDefinition):
    """Raises when the ticker's bid is negative."""

    name = "boom"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"ok": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"ticker": ExampleTicker}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        def check(event: Event) -> Event:
            if event["bid"] < 0:
                raise ValueError("negative bid")
            return {**_times(event), "ok": event["bid"]}

        return upstreams["ticker"].map(check)


def ticker_event(ts: float, bid: float, ask: float) -> Event:
    """An ExampleTicker event."""
    return {"timestamp": ts, "receipt_timestamp": ts, "bid": bid, "ask": ask}
