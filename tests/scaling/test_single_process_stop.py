"""A single-process run stuck in a feature: Ctrl-C ends it within seconds, with an error and
nothing published (an emitter's ``stop()`` that waits for the stuck thread is not waited for
without bound)."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Iterator

import pytest

from featurizer import (
    DataSourceEventEmitter,
    EmitterError,
    EmitterSpec,
    EventCallback,
    Feature,
    FeaturizerConfig,
    Plugins,
    hookimpl,
    make_plugin_manager,
)
from featurizer._plugins import reset_plugins
from featurizer._runner import RunOptions, run
from tests.scaling.scaling_support import STUCK, tick

CONFIG = FeaturizerConfig.from_dict(
    {
        "feature_configs": [
            {
                "name": "stuck",
                "feature_definition": "tests.scaling.scaling_support:StuckAt13",
                "params": {"data_source": {"exchange": "STUCK", "symbol": "BTC-USDT"}},
            }
        ]
    }
)


class JoiningEmitter(DataSourceEventEmitter):
    """Emits bids 10..13 then stays open; ``stop()`` joins its thread without a timeout."""

    delivered = threading.Event()

    def __init__(self) -> None:
        self._callbacks: list[EventCallback] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    def _run(self) -> None:
        for i, bid in enumerate((10.0, 11.0, 12.0, 13.0)):
            if bid == 13.0:
                type(self).delivered.set()
            for callback in self._callbacks:
                callback(tick(1_700_000_000.0 + i, bid))
        self._stop.wait()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="joining-emitter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()  # for ever, while the feature is stuck


class Hooks:
    @hookimpl
    def featurizer_register_emitters(self) -> list[EmitterSpec]:
        return [
            EmitterSpec(
                name="joining",
                emitter_class=JoiningEmitter,
                data_sources=("ticker",),
                exchanges=("STUCK",),
                description="an emitter whose stop() waits for its thread",
            )
        ]


class Sink:
    def __init__(self) -> None:
        self.closed: list[bool] = []

    def write_row(self, row: object) -> None:
        pass

    def close(self, ok: bool = True) -> None:
        self.closed.append(ok)


@pytest.fixture
def joining() -> Iterator[None]:
    STUCK.clear()
    JoiningEmitter.delivered.clear()
    reset_plugins(Plugins(make_plugin_manager(extra_plugins=[Hooks()])))
    try:
        yield
    finally:
        STUCK.set()
        reset_plugins(None)


def test_ctrl_c_ends_a_stuck_single_process_run_within_seconds(joining: None) -> None:
    def interrupt() -> None:
        if JoiningEmitter.delivered.wait(30.0):
            _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    sink = Sink()
    started = time.monotonic()
    with pytest.raises(EmitterError, match=r"'joining' did not stop within 5 s"):
        run(CONFIG, RunOptions(), sink)  # type: ignore[arg-type]
    assert time.monotonic() - started < 15.0
    assert sink.closed == [False]
