"""Skipping what a restarted emitter sends again, up to a checkpoint's cut of one source, and
the gap events that say what a live source lost while the run was down."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from featurizer._events import Event
from featurizer._feature import Feature

__all__ = ["GAPS_DEFINITION", "send_gap_events", "skip_resent", "skip_resent_from"]

GAPS_DEFINITION = "feed_gaps"
"""The data-source definition of gap events (the cryptofeed plugin's): a live source that lost
data while the run was down gets a ``disconnect`` gap event there, if the graph reads it."""


def send_gap_events(
    lost: Feature,
    sources: Iterable[Feature],
    deliver: Mapping[str, Callable[[Event], None]],
) -> None:
    """Send a ``disconnect`` gap event for ``lost`` (stamped now) to every ``feed_gaps`` source
    of the same exchange and symbol among ``sources`` that ``deliver`` (by feature key) reaches."""
    instrument = (lost.params.get("exchange"), lost.params.get("symbol"))
    for gaps in sources:
        if gaps.definition_name != GAPS_DEFINITION:
            continue
        if (gaps.params.get("exchange"), gaps.params.get("symbol")) != instrument:
            continue
        callback = deliver.get(gaps.key)
        if callback is not None:
            now = time.time()
            callback(
                {
                    "timestamp": now,
                    "receipt_timestamp": now,
                    "channel": lost.definition_name,
                    "reason": "disconnect",
                }
            )


def skip_resent(
    callback: Callable[[Event], None],
    consumed: int,
    max_receipt: float,
    on_gap: Callable[[Event], None],
) -> Callable[[Event], None]:
    """``callback`` behind a filter dropping the events a source had consumed at the cut.

    The first ``consumed`` events whose ``receipt_timestamp`` is at most ``max_receipt`` (the
    largest one consumed) are dropped: a replaying emitter (synthetic, offline) sends exactly
    them again. The first event that is not one of them ends the skipping; if it comes before
    ``consumed`` were dropped, the source is live and lost what it sent while the run was down:
    ``on_gap`` is called with that event (before it goes to ``callback``).

    :param callback: receives every event after the skipped ones.
    :param consumed: events of the source consumed at the cut.
    :param max_receipt: the largest receipt time among them.
    :param on_gap: called once, with the first new event, when fewer came back than consumed.
    """
    skipping = [consumed > 0]
    skipped = [0]

    def filtered(event: Event) -> None:
        if skipping[0]:
            if skipped[0] < consumed and event["receipt_timestamp"] <= max_receipt:
                skipped[0] += 1
                return
            skipping[0] = False
            if skipped[0] < consumed:
                on_gap(event)
        callback(event)

    return filtered


def skip_resent_from(
    callback: Callable[[Event], None],
    position: Sequence[Any],
    on_gap: Callable[[Event], None],
) -> Callable[[Event], None]:
    """:func:`skip_resent` with the cut read from ``position`` (``[consumed, max receipt]``)
    when the first event comes, not when the filter is made.

    A worker that replays its input log's tail before it starts its emitters registers its
    callbacks first: the cut its emitters resume from is where that replay ended.
    """
    filtered: list[Callable[[Event], None]] = []

    def first(event: Event) -> None:
        if not filtered:
            consumed, max_receipt = int(position[0]), float(position[1])
            filtered.append(
                skip_resent(callback, consumed, max_receipt, on_gap) if consumed else callback
            )
        filtered[0](event)

    return first
