"""Small definitions, graphs and a scripted emitter for the visualization and metrics tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from streamz import Stream

from featurizer import (
    DataDefinition,
    DataSourceEventEmitter,
    EmitterSpec,
    Event,
    EventCallback,
    Feature,
    FeatureDefinition,
    Param,
    Plugins,
    Schema,
    hookimpl,
    make_plugin_manager,
)
from featurizer.testing import ExampleMid, ExampleTicker

ODD_NAME = 'we"ird [name] {ünïcødé} <b>#1</b> | back\\slash & `tick`\nnewline'
"""A feature name with every character the writers must escape."""


def times(event: Event) -> Event:
    return {"timestamp": event["timestamp"], "receipt_timestamp": event["receipt_timestamp"]}


def ticker_event(ts: float, bid: float, ask: float) -> Event:
    """An ExampleTicker event."""
    return {"timestamp": ts, "receipt_timestamp": ts, "bid": bid, "ask": ask}


class UpTicks(FeatureDefinition):
    """Mids that went up: a fused map + filter chain (drops events)."""

    name = "up_ticks"
    params: ClassVar[Mapping[str, Param]] = {"threshold": Param(kind="float", default=0.0)}

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
        threshold = params["threshold"]
        return upstreams["mid"].filter(lambda event: event["mid"] > threshold)


class Pair(FeatureDefinition):
    """Both mids of two tickers, through streamz ``combine_latest`` (not fused)."""

    name = "pair"

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
            return {**times(newest), "spread": left["mid"] - right["mid"]}

        return upstreams["left"].combine_latest(upstreams["right"]).map(diff)


class Fragile(FeatureDefinition):
    """Raises when the mid is negative."""

    name = "fragile"

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
        def check(event: Event) -> Event:
            if event["mid"] < 0:
                raise ValueError("negative mid")
            return event

        return upstreams["mid"].map(check)


TICKER_A = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
TICKER_B = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "B"})
MID_A = Feature.create(ExampleMid, {}, {"ticker": TICKER_A}, name="mid_a")
MID_B = Feature.create(ExampleMid, {}, {"ticker": TICKER_B}, name="mid_b")
UP_A = Feature.create(UpTicks, {"threshold": 10.0}, {"mid": MID_A}, name="up_a")
PAIR = Feature.create(Pair, {}, {"left": MID_A, "right": MID_B}, name="pair")
FRAGILE_B = Feature.create(Fragile, {}, {"mid": MID_B}, name="fragile_b")
ODD = Feature.create(ExampleMid, {}, {"ticker": TICKER_B}, name=ODD_NAME)


class ScriptedEmitter(DataSourceEventEmitter):
    """Emits the class-level ``script`` of ``(feature key, event)`` on its own thread, calling
    ``checkpoint(emitted_so_far)`` at every count in ``checkpoints`` (the graph is idle then).
    """

    script: ClassVar[list[tuple[str, Event]]] = []
    checkpoints: ClassVar[set[int]] = set()
    checkpoint: ClassVar[Callable[[int], None] | None] = None

    def __init__(self) -> None:
        self._callbacks: dict[str, EventCallback] = {}
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.emitted = 0

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        self._callbacks[feature.key] = callback

    def _run(self) -> None:
        try:
            for key, event in type(self).script:
                if self._stop.is_set():
                    break
                callback = self._callbacks.get(key)
                if callback is None:
                    continue
                callback(dict(event))
                self.emitted += 1
                if self.emitted in type(self).checkpoints and type(self).checkpoint is not None:
                    type(self).checkpoint(self.emitted)  # type: ignore[misc]
        except BaseException as error:
            self._error = error
        finally:
            self._done.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scripted-emitter")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def failure(self) -> BaseException | None:
        return self._error

    def stats(self) -> dict[str, Any]:
        """Cryptofeed-style counters, to check they reach the metrics."""
        return {
            "gaps": 3,
            "reconnects": 2,
            "streams": [
                {"exchange": "BINANCE", "symbol": "BTC-USDT", "channel": "ticker", "gaps": 3},
            ],
            "exchanges": [{"exchange": "BINANCE", "reconnects": 2}],
        }


class ScriptedPlugin:
    """Registers the ``scripted`` emitter (explicit ``--emitter scripted`` only)."""

    @hookimpl
    def featurizer_register_emitters(self) -> list[EmitterSpec]:
        return [
            EmitterSpec(
                name="scripted",
                emitter_class=ScriptedEmitter,
                data_sources=("ticker", "trades", "l2_book"),
                description="test emitter replaying a fixed script",
            )
        ]


def scripted_plugins() -> Plugins:
    """The installed plugins plus the scripted emitter."""
    return Plugins(make_plugin_manager(extra_plugins=[ScriptedPlugin()]))


def script_for(
    sources: Iterable[Feature], count: int, start: float = 1_700_000_000.0
) -> list[tuple[str, Event]]:
    """A deterministic script of ``count`` events over ``ticker`` and ``trades`` sources."""
    ordered = list(sources)
    script: list[tuple[str, Event]] = []
    for i in range(count):
        source = ordered[i % len(ordered)]
        ts = start + i * 0.01
        base = {"timestamp": ts, "receipt_timestamp": ts + 0.001}
        if source.definition_name == "ticker":
            mid = 100.0 + (i % 7) * 0.5
            event = {**base, "bid": mid - 0.5, "ask": mid + 0.5, "bid_size": 1.0, "ask_size": 2.0}
        else:
            event = {
                **base,
                "price": 100.0 + (i % 5),
                "amount": 0.1 + (i % 3) * 0.05,
                "side": "buy" if i % 2 else "sell",
                "trade_id": str(i),
            }
        script.append((source.key, event))
    return script
