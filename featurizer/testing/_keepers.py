"""A state keeper fed event by event: the reference for a keeper's ``apply_table``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["EventByEventKeeper"]


class EventByEventKeeper:
    """Wraps a state keeper (see Featurizer Storage, "State rebuilt from snapshots") without
    its ``apply_table``: storage then feeds it event by event, through ``apply``. Snapshots
    taken through a keeper and through this wrapper of another one must be the same: the
    test of an ``apply_table``.

    :param keeper: a fresh state keeper.
    """

    def __init__(self, keeper: Any) -> None:
        self.keeper = keeper

    def apply(self, event: Mapping[str, Any]) -> None:
        """The wrapped keeper's ``apply``."""
        self.keeper.apply(event)

    def snapshot(self, last: Mapping[str, Any]) -> Any:
        """The wrapped keeper's ``snapshot``."""
        return self.keeper.snapshot(last)
