"""``max_events`` ends a run as soon as the N-th input event was dispatched, even when the
emitter (a live feed) sends nothing more after it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from featurizer import (
    DataSourceEventEmitter,
    EmitterSpec,
    EventCallback,
    Feature,
    FeaturizerConfig,
    Plugins,
    RunOptions,
    hookimpl,
    make_plugin_manager,
    reset_plugins,
    run,
)
from featurizer.testing import CollectingSink

QUIET_AFTER_SECONDS = 20.0

CONFIG = FeaturizerConfig.from_dict(
    {
        "feature_configs": [
            {
                "name": "mid",
                "feature_definition": "featurizer.testing:ExampleMid",
                "params": {"data_source": {"exchange": "QUIET", "symbol": "BTC-USDT"}},
            }
        ]
    }
)


class QuietAfterThree(DataSourceEventEmitter):
    """Sends three ticks, then stays connected and silent (as a live feed may) until stopped."""

    def __init__(self) -> None:
        self._callbacks: list[EventCallback] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    def _run(self) -> None:
        for i in range(3):
            for callback in self._callbacks:
                t = 1_700_000_000.0 + i
                callback({"timestamp": t, "receipt_timestamp": t, "bid": 1.0, "ask": 2.0})
        self._stop.wait(QUIET_AFTER_SECONDS)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="quiet-emitter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def wait(self, timeout: float | None = None) -> bool:
        return self._thread is not None and not self._thread.is_alive()


class Hooks:
    @hookimpl
    def featurizer_register_emitters(self) -> list[EmitterSpec]:
        return [
            EmitterSpec(
                name="quiet",
                emitter_class=QuietAfterThree,
                data_sources=("example_ticker",),
                exchanges=("QUIET",),
                description="three ticks, then silence",
            )
        ]


@pytest.fixture
def quiet_emitter() -> Iterator[None]:
    reset_plugins(Plugins(make_plugin_manager(extra_plugins=[Hooks()])))
    try:
        yield
    finally:
        reset_plugins(None)


def test_max_events_stops_at_the_last_event_without_waiting_for_one_more(
    quiet_emitter: None,
) -> None:
    sink = CollectingSink()
    started = time.monotonic()
    summary = run(CONFIG, RunOptions(max_events=3), sink)
    assert summary.stopped_by == "max_events"
    assert summary.events_in == 3
    assert time.monotonic() - started < QUIET_AFTER_SECONDS / 2
