"""Small helpers shared by the feature modules."""

from __future__ import annotations

from featurizer import Event


def derived(event: Event, **fields: object) -> Event:
    """A new event at ``event``'s timestamps carrying ``fields``."""
    return {
        "timestamp": event["timestamp"],
        "receipt_timestamp": event["receipt_timestamp"],
        **fields,
    }
