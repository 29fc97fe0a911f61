"""GeneratorEmitter: the author yields events; bounds, pacing, stopping and errors are ours."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurizer import (
    ConfigError,
    EmitterError,
    EmitterOption,
    Feature,
    FeatureStreamGraph,
    GeneratorEmitter,
    parse_pace,
)
from featurizer.testing import CollectingSink, ExampleMid, ExampleTicker, run_graph
from featurizer.testing.strategies import ticker_streams

TICKER = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
OTHER = Feature.create(ExampleTicker, {"exchange": "y", "symbol": "S"})


def _tick(t: float) -> dict[str, float]:
    return {"timestamp": t, "receipt_timestamp": t, "bid": 1.0, "ask": 2.0}


class Ticks(GeneratorEmitter):
    """``count`` ticks per source, one second of event time apart."""

    declared_options = (EmitterOption(name="count", parse=int, default=10),)

    def events(self) -> Iterator[tuple[Feature, dict[str, float]]]:
        for i in range(self.settings["count"]):
            for source in self.sources:
                yield source, _tick(float(i))


def _collect(emitter: GeneratorEmitter, *sources: Feature) -> list[tuple[str, float]]:
    got: list[tuple[str, float]] = []
    for source in sources:
        emitter.register_callback(source, lambda e, n=source.name: got.append((n, e["timestamp"])))
    emitter.start()
    assert emitter.wait(30)
    assert emitter.failure() is None
    return got


@given(count=st.integers(0, 30), max_events=st.none() | st.integers(1, 80))
def test_max_events_gives_a_prefix_of_the_same_sequence(count: int, max_events: int | None) -> None:
    whole = _collect(Ticks({"count": count}), TICKER, OTHER)
    bounded = _collect(Ticks({"count": count, "max_events": max_events}), TICKER, OTHER)
    assert len(whole) == 2 * count
    assert bounded == whole[: max_events if max_events is not None else len(whole)]


def test_options_are_parsed_and_checked() -> None:
    assert Ticks({"count": "3"}).settings["count"] == 3
    assert Ticks({}).settings["count"] == 10 and Ticks({}).settings["pace"] == "max"
    assert Ticks({"pace": "2", "max_events": "5"}).limits().pace == 2.0
    with pytest.raises(ConfigError, match=r"emitter 'Ticks' option 'count': .*received 'many'"):
        Ticks({"count": "many"})
    with pytest.raises(ConfigError, match="option 'pace'"):
        Ticks({"pace": "fast"})
    assert parse_pace("2") == 2.0


def test_pace_follows_event_time_and_stop_interrupts_the_wait() -> None:
    emitter = Ticks({"count": 1000, "pace": 0.001})  # the next event is 1,000 s away
    got: list[float] = []
    first = threading.Event()
    emitter.register_callback(TICKER, lambda e: (got.append(e["timestamp"]), first.set()))
    emitter.start()
    assert first.wait(30)
    started = time.monotonic()
    emitter.stop()  # the emitter waits 1,000 s for the next event: stop must not wait for it
    assert emitter.wait(0) and time.monotonic() - started < 500
    assert got == [0.0]


def test_duration_bounds_a_paced_run() -> None:
    emitter = Ticks({"count": 1000, "pace": 0.001, "duration": 0.2})
    got = _collect(emitter, TICKER)
    assert got == [(TICKER.name, 0.0)]


def test_errors_end_the_emitter_and_are_reported() -> None:
    class Broken(GeneratorEmitter):
        def events(self) -> Iterator[tuple[Feature, dict[str, float]]]:
            yield self.sources[0], _tick(0.0)
            raise OSError("disk gone")

    emitter = Broken()
    emitter.register_callback(TICKER, lambda e: None)
    emitter.start()
    assert emitter.wait(30)
    assert isinstance(emitter.failure(), OSError) and emitter.emitted == 1

    def failing(event: Any) -> None:
        raise ValueError("bad callback")

    emitter = Ticks()
    emitter.register_callback(TICKER, failing)
    emitter.start()
    assert emitter.wait(30) and isinstance(emitter.failure(), ValueError)

    class Stray(GeneratorEmitter):
        def events(self) -> Iterator[tuple[Feature, dict[str, float]]]:
            yield OTHER, _tick(0.0)

    emitter = Stray()
    emitter.register_callback(TICKER, lambda e: None)
    emitter.start()
    assert emitter.wait(30)
    assert "yielded an event for" in str(emitter.failure())


def test_lifecycle_rules() -> None:
    emitter = Ticks()
    emitter.register_callback(TICKER, lambda e: None)
    emitter.start()
    with pytest.raises(EmitterError, match="start\\(\\) called twice"):
        emitter.start()
    with pytest.raises(EmitterError, match="after start"):
        emitter.register_callback(OTHER, lambda e: None)
    emitter.stop()
    emitter.stop()
    stopped_first = Ticks()
    stopped_first.stop()
    stopped_first.start()
    assert stopped_first.wait(0)


def test_instance_never_returns_a_finished_emitter() -> None:
    first = Ticks.instance()
    assert Ticks.instance() is first, "shared while not finished"
    first.register_callback(TICKER, lambda e: None)
    first.start()
    assert first.wait(30)
    second = Ticks.instance()
    assert second is not first and not second.wait(0)
    second.register_callback(TICKER, lambda e: None)
    second.start()
    assert second.wait(30) and second.emitted == 10


def test_validate_checks_events_against_the_schema() -> None:
    class Wrong(GeneratorEmitter):
        def events(self) -> Iterator[tuple[Feature, dict[str, Any]]]:
            yield self.sources[0], {**_tick(0.0), "bid": "1.0"}

    emitter = Wrong({"validate": True})
    emitter.register_callback(TICKER, lambda e: None)
    emitter.start()
    assert emitter.wait(30)
    assert "Wrong, data source 'example_ticker.x.S': field 'bid'" in str(emitter.failure())


CSV_EMITTER = """
import csv
from pathlib import Path

from featurizer import EmitterOption, GeneratorEmitter


class CsvTickerEmitter(GeneratorEmitter):
    declared_options = (EmitterOption(name="directory", parse=Path, default=Path(".")),)

    def path(self, source):
        return self.settings["directory"] / f"{source.params['symbol']}.csv"

    def events(self):
        for source in self.sources:
            with open(self.path(source), newline="") as rows:
                for row in csv.DictReader(rows):
                    yield source, {key: float(value) for key, value in row.items()}
"""


def test_a_csv_emitter_is_fifteen_lines(tmp_path: Path) -> None:
    lines = [line for line in CSV_EMITTER.strip().splitlines() if line.strip()]
    assert len(lines) <= 15
    namespace: dict[str, Any] = {}
    exec(compile(CSV_EMITTER, "csv_emitter", "exec"), namespace)
    (tmp_path / "S.csv").write_text(
        "timestamp,receipt_timestamp,bid,ask\n1,1,10,12\n2,2,11,13\n3,3,12,14\n", encoding="utf-8"
    )
    emitter = namespace["CsvTickerEmitter"]({"directory": str(tmp_path), "max_events": 2})
    mid = Feature.create(ExampleMid, {}, {"ticker": TICKER}, name="mid")
    sink = CollectingSink()
    graph = FeatureStreamGraph([mid])
    graph.set_callback(mid, sink.on_event)
    emitter.register_callback(TICKER, graph.input_callback(TICKER))
    emitter.start()
    assert emitter.wait(30) and emitter.failure() is None
    assert [e["mid"] for e in sink.events[mid]] == [11.0, 12.0]


@given(ticks=ticker_streams(min_size=30, max_size=30))
def test_ticker_streams_document_their_sizes(ticks: list[dict[str, float]]) -> None:
    assert all(t["bid_size"] >= 0.0 and t["ask_size"] >= 0.0 for t in ticks)


def test_ticker_streams_generate_zero_sizes() -> None:
    seen_zero = []

    @given(ticks=ticker_streams(min_size=5, max_size=5))
    def probe(ticks: list[dict[str, float]]) -> None:
        seen_zero.append(any(t["bid_size"] == 0.0 for t in ticks))

    probe()
    assert any(seen_zero)


def test_collecting_sink_events_of_a_silent_feature_are_empty() -> None:
    mid = Feature.create(ExampleMid, {}, {"ticker": TICKER}, name="mid")
    sink = run_graph([mid], [])
    assert sink.events[mid] == [] and sink.events[TICKER] == []


def test_prepare_raises_from_start_and_release_always_follows() -> None:
    calls: list[str] = []

    class Opened(Ticks):
        fail = False

        def prepare(self) -> None:
            calls.append("prepare")
            if self.fail:
                raise OSError("no such store")

        def release(self) -> None:
            calls.append("release")

    emitter = Opened({"count": 3})
    emitter.register_callback(TICKER, lambda e: None)
    emitter.start()
    assert emitter.wait(30) and emitter.emitted == 3
    assert calls == ["prepare", "release"]
    calls.clear()
    broken = Opened()
    broken.fail = True
    broken.register_callback(TICKER, lambda e: None)
    with pytest.raises(OSError, match="no such store"):
        broken.start()
    assert calls == ["prepare", "release"] and broken.wait(0)
    calls.clear()
    never = Opened()
    never.stop()
    assert calls == ["release"]
