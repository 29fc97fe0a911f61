"""Skipping what a restarted emitter sends again, up to a checkpoint's cut of one source."""

from __future__ import annotations

from collections.abc import Callable

from featurizer._events import Event

__all__ = ["skip_resent"]


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
