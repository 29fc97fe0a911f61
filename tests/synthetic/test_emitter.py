"""The synthetic emitter: options, registration, bounds, threads, pacing and failures.

Every emitter in these tests is bounded by ``max_events`` or ``duration``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from featurizer_synthetic import ChannelRates, SyntheticEventEmitter, SyntheticOptions

from featurizer import (
    ConfigError,
    DataSourceDefinition,
    EmitterError,
    Event,
    EventValidationError,
    Feature,
    Schema,
)
from featurizer.testing import ExampleTicker
from tests.synthetic.synthetic_support import ALL_STREAMS, source, take


class Recorder:
    """Records ``(stream, event)`` per registered source, in emission order."""

    def __init__(self) -> None:
        self.events: list[tuple[tuple[str, str], Event]] = []

    def callback(self, channel: str, symbol: str) -> Any:
        stream = (channel, symbol)
        return lambda event: self.events.append((stream, event))


def emitter_for(streams: Any, recorder: Recorder, **options: Any) -> SyntheticEventEmitter:
    emitter = SyntheticEventEmitter.from_options(options)
    for channel, symbol in streams:
        emitter.register_callback(source(channel, symbol), recorder.callback(channel, symbol))
    return emitter


def test_options_are_parsed_and_unknown_options_ignored() -> None:
    options = SyntheticOptions.from_mapping(
        {
            "seed": 4,
            "max_events": 10,
            "duration": "2s",
            "pace": 2,
            "start_time": "2024-06-01T00:00:00Z",
            "ticker_rate": 1,
            "book_depth": 3,
            "validate": True,
            "transport": "zmq",
        }
    )
    assert options == SyntheticOptions(
        seed=4,
        max_events=10,
        duration=2.0,
        pace=2.0,
        start_time=1_717_200_000.0,
        rates=ChannelRates(ticker=1.0),
        book_depth=3,
        validate=True,
    )
    defaults = SyntheticOptions.from_mapping(
        {"seed": 0, "max_events": None, "duration": None, "pace": "max"}
    )
    assert defaults == SyntheticOptions()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pace": "fast"}, r"'pace'.*'max' or a positive speed factor.*'fast'"),
        ({"pace": 0}, r"'pace'"),
        ({"seed": 1.5}, r"'seed'.*integer.*1\.5"),
        ({"max_events": 0}, r"'max_events'.*positive integer.*0"),
        ({"duration": "soon"}, r"'duration'.*'soon'"),
        ({"start_time": "yesterday"}, r"'start_time'.*ISO-8601.*'yesterday'"),
        ({"book_depth": 0}, r"'book_depth'"),
        ({"trades_rate": "many"}, r"'trades_rate'.*'many'"),
        ({"ticker_rate": 0, "trades_rate": 0}, r"both be zero"),
    ],
)
def test_invalid_options_raise_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SyntheticEventEmitter.from_options(options)


def test_unknown_data_source_is_rejected_listing_what_it_serves() -> None:
    emitter = SyntheticEventEmitter.from_options({"max_events": 1})
    other = Feature.create(ExampleTicker, {"exchange": "synthetic", "symbol": "BTC-USDT"})
    with pytest.raises(EmitterError, match=r"'ticker', 'trades', 'l2_book'.*'example_ticker'"):
        emitter.register_callback(other, lambda event: None)


def test_max_events_counts_all_streams_and_is_a_prefix_of_the_market() -> None:
    recorder = Recorder()
    emitter = emitter_for(ALL_STREAMS, recorder, seed=9, max_events=1_000)
    emitter.start()
    assert emitter.wait(10)
    emitter.stop()
    assert emitter.failure() is None
    assert emitter.emitted == len(recorder.events) == 1_000
    assert recorder.events == take(ALL_STREAMS, 1_000, seed=9)


def test_output_is_identical_across_runs_threads_and_paces() -> None:
    streams = [("ticker", "ETH-USDT"), ("trades", "ETH-USDT"), ("l2_book", "BTC-USDT")]
    synchronous = Recorder()
    assert emitter_for(streams, synchronous, seed=1, max_events=300).run() == 300
    threaded = Recorder()
    emitter = emitter_for(streams, threaded, seed=1, max_events=300, pace=2_000.0)
    emitter.start()
    assert emitter.wait(10)
    emitter.stop()
    assert threaded.events == synchronous.events


def test_only_registered_streams_are_emitted_and_shared_streams_fan_out() -> None:
    received: dict[str, list[Event]] = {"a": [], "b": []}
    emitter = SyntheticEventEmitter.from_options({"max_events": 200, "validate": True})
    emitter.register_callback(source("trades", exchange="synthetic"), received["a"].append)
    emitter.register_callback(source("trades", exchange="BINANCE"), received["b"].append)
    assert emitter.run() == 200
    assert received["a"] == received["b"]
    assert len(received["a"]) == 200
    assert all("trade_id" in event for event in received["a"])


def test_duration_bound_is_honoured() -> None:
    recorder = Recorder()
    emitter = emitter_for([("ticker", "BTC-USDT")], recorder, duration=0.3)
    started = time.monotonic()
    emitter.start()
    assert emitter.wait(5)
    elapsed = time.monotonic() - started
    emitter.stop()
    assert 0.25 < elapsed < 2.0
    assert emitter.emitted == len(recorder.events) > 1_000


def test_stop_joins_the_thread_quickly_and_is_idempotent() -> None:
    emitter = emitter_for([("ticker", "BTC-USDT")], Recorder(), duration=30)
    emitter.start()
    time.sleep(0.05)
    assert not emitter.wait(0)
    started = time.monotonic()
    emitter.stop()
    assert time.monotonic() - started < 1.0
    assert emitter.wait(0)
    assert not any(t.name == "featurizer-synthetic-emitter" for t in threading.enumerate())
    emitter.stop()
    assert emitter.failure() is None


def test_stop_interrupts_a_paced_wait() -> None:
    emitter = emitter_for([("trades", "BTC-USDT")], Recorder(), duration=30, pace=0.001)
    emitter.start()
    time.sleep(0.05)
    started = time.monotonic()
    emitter.stop()
    assert time.monotonic() - started < 1.0
    assert emitter.wait(0)


def test_stop_before_start_makes_start_a_no_op() -> None:
    emitter = emitter_for([("ticker", "BTC-USDT")], Recorder(), max_events=10)
    emitter.stop()
    emitter.start()
    assert emitter.wait(1)
    assert emitter.emitted == 0
    emitter.stop()


def test_start_twice_and_late_registration_are_errors() -> None:
    emitter = emitter_for([("ticker", "BTC-USDT")], Recorder(), max_events=5)
    emitter.start()
    try:
        with pytest.raises(EmitterError, match="twice"):
            emitter.start()
        with pytest.raises(EmitterError, match="after start"):
            emitter.register_callback(source("trades"), lambda event: None)
    finally:
        emitter.stop()


def test_callback_error_stops_the_thread_and_surfaces_through_failure() -> None:
    seen: list[Event] = []

    def fragile(event: Event) -> None:
        if len(seen) == 10:
            raise RuntimeError("boom")
        seen.append(event)

    emitter = SyntheticEventEmitter.from_options({"max_events": 1_000})
    emitter.register_callback(source("ticker"), fragile)
    emitter.start()
    assert emitter.wait(5)
    emitter.stop()
    error = emitter.failure()
    assert isinstance(error, RuntimeError) and str(error) == "boom"
    assert emitter.emitted == len(seen) == 10


class MidTicker(DataSourceDefinition):
    """A ``ticker`` definition of another shape, to prove that ``validate`` checks events."""

    name = "ticker"

    @classmethod
    def event_schema(cls) -> Schema:
        """``mid`` only."""
        return {"mid": float}


def test_validate_option_checks_events_at_the_boundary() -> None:
    emitter = SyntheticEventEmitter.from_options({"max_events": 50, "validate": True})
    received: list[Event] = []
    for channel in ("ticker", "trades", "l2_book"):
        emitter.register_callback(source(channel), received.append)
    assert emitter.run() == 50
    checked = SyntheticEventEmitter.from_options({"max_events": 5, "validate": True})
    mid = Feature.create(MidTicker, {"exchange": "synthetic", "symbol": "BTC-USDT"})
    checked.register_callback(mid, received.append)
    with pytest.raises(EventValidationError, match=r"missing field 'mid'"):
        checked.run()


def test_paced_mode_follows_wall_time() -> None:
    recorder = Recorder()
    emitter = emitter_for(
        [("ticker", "BTC-USDT"), ("trades", "BTC-USDT")], recorder, duration=0.6, pace=1.0
    )
    started = time.monotonic()
    emitter.start()
    assert emitter.wait(5)
    elapsed = time.monotonic() - started
    emitter.stop()
    times = [event["timestamp"] for _, event in recorder.events]
    span = times[-1] - emitter.options.start_time
    assert 0.55 < elapsed < 1.5
    assert 0.3 < span <= elapsed + 0.05  # never ahead of the clock, not far behind it
    assert 20 < len(times) < 200  # about 100 events per second of event time
