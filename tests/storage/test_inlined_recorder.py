"""A graph writes the recorder's statements into its own code (no call per stored event) once
a series' first event is recorded: what is stored, and how a malformed event is refused, stay
exactly those of the called recorder."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurizer import Feature, FeatureStreamGraph
from featurizer.storage import SchemaMismatchError, Storage, StorageError
from featurizer.testing import ExampleMid, ExampleTicker
from tests.storage.storage_support import assert_bit_identical

TICKER = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
MID = Feature.create(ExampleMid, {}, {"ticker": TICKER})
WRONGS = ("type", "extra field", "missing field")


def _ticker(i: int) -> dict[str, Any]:
    # (sizes beyond the definition's schema: the first event makes them columns)
    return {
        "timestamp": float(i),
        "receipt_timestamp": i + 0.25,
        "bid": i / 3,
        "ask": i / 3 + 1.0,
        "bid_size": float(i % 5),
    }


def _spoil(event: dict[str, Any], wrong: str) -> dict[str, Any]:
    if wrong == "type":
        return {**event, "bid_size": "lots"}
    if wrong == "extra field":
        return {**event, "venue": "x"}
    return {k: v for k, v in event.items() if k != "bid_size"}


def _record(root: Path, events: list[dict[str, Any]], inline: bool) -> tuple[Any, str, str]:
    """Record ``events`` through a graph; the stored ticker and mid events, the errors (of
    the refused event and of the writer's stop: empty without) and the graph's generated
    code at the end."""
    graph = FeatureStreamGraph([MID])
    with Storage(root) as storage:
        writer = storage.writer([TICKER, MID])
        callbacks = {feature: writer.graph_callback(feature) for feature in (TICKER, MID)}
        if not inline:  # a plain function around each: the graph has to call it
            callbacks = {
                f: (lambda feature, event, c=c: c(feature, event)) for f, c in callbacks.items()
            }
        graph.set_callbacks(callbacks)
        dispatch = graph.input_callback(TICKER)
        error = ""
        try:
            for event in events:
                dispatch(event)
        except SchemaMismatchError as raised:
            error = str(raised)
        try:
            writer.stop()
        except StorageError as raised:
            error += f" / at the stop: {raised}"
        stored = (storage.read_events(TICKER), storage.read_events(MID))
        return stored, error, graph._generated_source


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(1, 30),
    bad=st.none() | st.tuples(st.integers(0, 29), st.sampled_from(WRONGS)),
)
def test_inlined_recorders_store_and_refuse_exactly_what_called_ones_do(
    count: int, bad: tuple[int, str] | None
) -> None:
    events = [_ticker(i) for i in range(count)]
    if bad is not None and bad[0] < count:
        events[bad[0]] = _spoil(events[bad[0]], bad[1])
    with tempfile.TemporaryDirectory() as inlined, tempfile.TemporaryDirectory() as called:
        got, got_error, source = _record(Path(inlined), events, inline=True)
        want, want_error, _ = _record(Path(called), events, inline=False)
    assert got_error == want_error
    assert_bit_identical(got[0], want[0], "ticker")
    assert_bit_identical(got[1], want[1], "mid")
    if bad is not None and 0 < bad[0] < count:  # (a first event fixes the extra fields' types)
        assert len(got[0]) == bad[0], "the events before the refused one are stored, no more"
        assert "cannot be stored" in got_error or "do not match" in got_error
    elif bad is None:
        assert len(got[0]) == count and not got_error
    if len(got[0]) > 1:  # a first event was recorded: the statements are in the graph's code
        assert "_pack_float(v0['timestamp']" in source and "cb0_0(" not in source


def test_a_refused_event_after_inlining_names_the_field_and_keeps_the_events_before(
    tmp_path: Path,
) -> None:
    events = [_ticker(i) for i in range(5)] + [_spoil(_ticker(5), "type")]
    (tickers, mids), error, source = _record(tmp_path, events, inline=True)
    assert "_pack_float(v0['timestamp']" in source
    assert "field 'bid_size' (float) cannot be stored" in error and "'lots'" in error
    assert_bit_identical(tickers, events[:5], "ticker")
    assert [m["timestamp"] for m in mids] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_recorder_of_a_stopped_writer_still_refuses_when_inlined(tmp_path: Path) -> None:
    graph = FeatureStreamGraph([MID])
    with Storage(tmp_path) as storage:
        writer = storage.writer([TICKER, MID], max_pending=4)
        graph.set_callbacks({f: writer.graph_callback(f) for f in (TICKER, MID)})
        dispatch = graph.input_callback(TICKER)
        dispatch(_ticker(0))
        writer.stop()
        with pytest.raises(StorageError, match="stopped"):
            for i in range(1, 10):
                dispatch(_ticker(i))
