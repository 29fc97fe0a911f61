"""Book snapshots taken from runs of stored events (``apply_table``) are exactly those taken
event by event: same snapshots, as of the same events, same book after, whatever the
messages (deltas with repeated and removed levels, snapshots, gaps, clocks going back) and
however the blocks are cut and chunked."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurizer import Feature
from featurizer.storage import Storage
from featurizer.storage._codec import EventEncoder
from featurizer.storage._snapshots import SnapshotTrack
from featurizer.storage._writer import series_info_for
from featurizer.testing import EventByEventKeeper

pa = pytest.importorskip("pyarrow")
featurizer_features = pytest.importorskip("featurizer_features")
from featurizer_features.sources import BookKeeper  # noqa: E402  (after the skip)

BOOK = Feature.create(featurizer_features.L2BookSource, {"exchange": "x", "symbol": "S"})
INFO = series_info_for(BOOK)
PRICES = st.sampled_from([99.5, 100.0, 100.5, 101.0, 101.5, 102.0])
SIZES = st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.25])
LEVELS = st.lists(st.tuples(PRICES, SIZES), max_size=4).map(tuple)


@st.composite
def _messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    kinds = draw(
        st.lists(st.sampled_from(["delta"] * 6 + ["snapshot", "gap"]), min_size=1, max_size=60)
    )
    stamp = draw(st.floats(0.0, 5.0))
    messages = []
    for sequence, kind in enumerate(kinds, start=1):
        stamp += draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5, -0.75]))
        empty = kind == "gap"
        messages.append(
            {
                "timestamp": stamp,
                "receipt_timestamp": stamp,
                "bids": () if empty else draw(LEVELS),
                "asks": () if empty else draw(LEVELS),
                "sequence": sequence,
                "is_snapshot": kind == "snapshot",
                "gap": kind == "gap",
            }
        )
    return messages


def _tables(messages: list[dict[str, Any]], cuts: list[int], chunk: int) -> list[Any]:
    """The messages as stored tables (arrival numbers 10, 11, ...): one table per block
    (cut at ``cuts``), each made of batches of ``chunk`` rows."""
    encoder = EventEncoder(INFO.label, INFO.schema)
    encoder.encode_with_seqs([{**messages[0], "bids": ((1.0, 1.0),), "asks": ((2.0, 1.0),)}], [0])
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(messages))), len(messages)]
    tables = []
    for low, high in itertools.pairwise(bounds):
        batches = [
            encoder.encode_with_seqs(
                messages[i : min(i + chunk, high)], range(10 + i, 10 + min(i + chunk, high))
            )
            for i in range(low, high, chunk)
        ]
        tables.append(pa.Table.from_batches(batches))
    return tables


def _track(root: Path, keeper: Any, interval: float) -> SnapshotTrack:
    return SnapshotTrack(Storage(root), INFO, keeper, "s", interval, full_state_field="is_snapshot")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    messages=_messages(),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    chunk=st.integers(1, 7),
    interval=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    after=st.integers(-1, 40),
)
def test_runs_take_the_snapshots_events_one_by_one_take(
    tmp_path: Path,
    messages: list[dict[str, Any]],
    cuts: list[int],
    chunk: int,
    interval: float,
    after: int,
) -> None:
    fast = _track(tmp_path / "fast", BookKeeper(), interval)
    reference = _track(tmp_path / "reference", EventByEventKeeper(BookKeeper()), interval)
    for table in _tables(messages, cuts, chunk):
        fast.feed(table, after)
        reference.feed(table, after)
    assert fast._seqs == reference._seqs
    assert fast._events == reference._events
    assert fast.due == reference.due
    last = messages[-1]
    assert fast.keeper.snapshot(last) == reference.keeper.snapshot(last)
    fast.storage.close()
    reference.storage.close()


@settings(max_examples=100, deadline=None)
@given(messages=_messages(), chunk=st.integers(1, 7))
def test_apply_table_leaves_the_book_apply_leaves(
    messages: list[dict[str, Any]], chunk: int
) -> None:
    (table,) = _tables(messages, [], chunk)
    by_table, by_event = BookKeeper(), BookKeeper()
    by_table.apply_table(table)
    for message in messages:
        by_event.apply(message)
    assert by_table.snapshot(messages[-1]) == by_event.snapshot(messages[-1])


def _message(stamp: float, bids: tuple, asks: tuple, *, snapshot: bool = False) -> dict:
    return {
        "timestamp": stamp,
        "receipt_timestamp": stamp,
        "bids": bids,
        "asks": asks,
        "sequence": int(stamp) + 1,
        "is_snapshot": snapshot,
        "gap": False,
    }


def test_levels_other_than_float_pairs_are_applied_message_by_message() -> None:
    rows = [
        _message(0.0, ((1, 2), (4, 1)), ((3, 4),), snapshot=True),
        _message(1.0, ((1, 0), (2, 5)), ()),
    ]
    table = pa.Table.from_pylist(rows)  # (integer levels)
    by_table, by_event = BookKeeper(), BookKeeper()
    by_table.apply_table(table)
    for row in rows:
        by_event.apply(row)
    assert by_table.snapshot(rows[-1]) == by_event.snapshot(rows[-1])
    assert by_table.snapshot(rows[-1])["bids"] == ((4, 1), (2, 5))


def test_a_level_that_is_not_a_pair_is_refused_alike() -> None:
    rows = [
        _message(0.0, ((1.0, 2.0),), ((3.0, 4.0),), snapshot=True),
        _message(1.0, ((2.0, 6.0, 7.0),), ((3.0, 1.0),)),
    ]
    table = pa.Table.from_pylist(rows)
    by_event = BookKeeper()
    by_event.apply(rows[0])
    with pytest.raises(ValueError):
        by_event.apply(rows[1])
    with pytest.raises(ValueError):
        BookKeeper().apply_table(table)
