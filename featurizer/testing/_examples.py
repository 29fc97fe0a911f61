"""Two tiny definitions used in docstring examples and core tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamz import Stream

from featurizer._definitions import DataDefinition, DataSourceDefinition, FeatureDefinition
from featurizer._events import Event, Schema


class ExampleTicker(DataSourceDefinition):
    """Best bid and ask of one instrument."""

    name = "example_ticker"

    @classmethod
    def event_schema(cls) -> Schema:
        """``bid`` and ``ask`` prices."""
        return {"bid": float, "ask": float}


def _mid(event: Event) -> Event:
    return {
        "timestamp": event["timestamp"],
        "receipt_timestamp": event["receipt_timestamp"],
        "mid": (event["bid"] + event["ask"]) / 2,
    }


class ExampleMid(FeatureDefinition):
    """Mid price of an :class:`ExampleTicker`."""

    name = "example_mid"

    @classmethod
    def event_schema(cls) -> Schema:
        """``mid`` price."""
        return {"mid": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """One dependency, ``ticker``."""
        return {"ticker": ExampleTicker}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        """``(bid + ask) / 2``."""
        return upstreams["ticker"].map(_mid)
