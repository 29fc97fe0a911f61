"""The garbage collector's first threshold while writers record container fields: raised by
the first holder, restored by the last, never clobbering a change someone else made."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import featurizer_features
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurizer import Feature
from featurizer.storage import Storage
from featurizer.storage._collector import raise_first_threshold
from featurizer.testing import ExampleTicker

BOOK = Feature.create(featurizer_features.L2BookSource, {"exchange": "x", "symbol": "S"})
TICKER = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})


@pytest.fixture(autouse=True)
def _default_collector() -> Iterator[None]:
    """Every test starts from Python's defaults and leaves the collector as it found it."""
    before, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(700, 10, 10)
    gc.enable()
    yield
    gc.set_threshold(*before)
    if not enabled:
        gc.disable()


def test_the_last_holder_restores_the_thresholds() -> None:
    first = raise_first_threshold(50_000)
    assert gc.get_threshold() == (50_000, 10, 10)
    second = raise_first_threshold(80_000)  # (the first holder's setting stays)
    first()
    first()  # (a second call gives nothing back twice)
    assert gc.get_threshold() == (50_000, 10, 10)
    second()
    assert gc.get_threshold() == (700, 10, 10)


def test_a_change_made_meanwhile_is_left_as_it_is() -> None:
    release = raise_first_threshold(50_000)
    gc.set_threshold(1234, 5, 5)
    release()
    assert gc.get_threshold() == (1234, 5, 5)


@pytest.mark.parametrize("setting", ["disabled", "zero", "higher"])
def test_nothing_changes_when_collection_is_off_or_rarer(setting: str) -> None:
    if setting == "disabled":
        gc.disable()
    wanted = {"disabled": (700, 10, 10), "zero": (0, 10, 10), "higher": (90_000, 10, 10)}[setting]
    gc.set_threshold(*wanted)
    release = raise_first_threshold(50_000)
    assert gc.get_threshold() == wanted
    release()
    assert gc.get_threshold() == wanted


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("take"), st.integers(1, 100_000)),
            st.tuples(st.just("give"), st.integers(0, 9)),
            st.tuples(st.just("change"), st.integers(1, 100_000)),
        ),
        max_size=25,
    )
)
def test_claims_in_any_order(steps: list[tuple[str, int]]) -> None:
    """Whatever the order of claims, releases (repeated or not) and outside changes: while
    claims are held (and nobody else changed it) the first threshold is the larger of the
    first claim's and what it was; once every claim is given back it is what it was before
    the first claim, or the outside change made meanwhile."""
    gc.set_threshold(700, 10, 10)
    releases: list[Callable[[], None]] = []
    held: set[int] = set()
    before = gc.get_threshold()
    first_wanted = 0
    changed = False
    for action, value in steps:
        if action == "take":
            if not held:
                before, first_wanted, changed = gc.get_threshold(), value, False
            releases.append(raise_first_threshold(value))
            held.add(len(releases) - 1)
        elif action == "give" and releases:
            index = value % len(releases)
            releases[index]()
            held.discard(index)
        elif action == "change" and gc.get_threshold() != (value, 10, 10):
            gc.set_threshold(value, 10, 10)
            before, changed = gc.get_threshold(), True
        if held and not changed:
            assert gc.get_threshold() == (max(first_wanted, before[0]), 10, 10)
        elif not held:
            assert gc.get_threshold() == before
    for release in releases:
        release()
    assert gc.get_threshold() == before


def _book_event(i: int) -> dict[str, object]:
    return {
        "timestamp": float(i),
        "receipt_timestamp": float(i),
        "bids": ((1.0, float(i)),),
        "asks": ((2.0, 1.0),),
        "sequence": i + 1,
        "is_snapshot": i == 0,
        "gap": False,
    }


def _ticker_event(i: int) -> dict[str, float]:
    return {"timestamp": float(i), "receipt_timestamp": float(i), "bid": 1.0, "ask": 2.0}


@pytest.mark.parametrize(
    ("features", "options", "while_recording"),
    [
        ([BOOK, TICKER], {}, (50_000, 10, 10)),
        ([BOOK], {"gc_threshold": 20_000}, (20_000, 10, 10)),
        ([BOOK], {"gc_threshold": None}, (700, 10, 10)),
        ([TICKER], {}, (700, 10, 10)),  # flat fields: the collector tracks none of them
    ],
)
def test_a_writer_holds_the_threshold_while_it_records_containers(
    tmp_path: Path,
    features: list[Feature],
    options: dict[str, Any],
    while_recording: tuple[int, int, int],
) -> None:
    with Storage(tmp_path / "root") as storage:
        writer = storage.writer(features, **options)
        try:
            appends = {f.definition_name: writer.event_callback(f) for f in features}
            for i in range(50):
                if "l2_book" in appends:
                    appends["l2_book"](_book_event(i))
                if TICKER.definition_name in appends:
                    appends[TICKER.definition_name](_ticker_event(i))
            assert gc.get_threshold() == while_recording
        finally:
            writer.stop()
        assert gc.get_threshold() == (700, 10, 10)
        writer.stop()  # (stopping twice gives nothing back twice)
        assert gc.get_threshold() == (700, 10, 10)
        assert len(list(storage.read_events(features[0]))) == 50
