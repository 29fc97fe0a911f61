"""Featurizer's offline emitter: replays recorded data sources from Featurizer Storage.

Registers the ``offline`` emitter, used with ``featurizer run CONFIG --emitter offline``: it
serves ``ticker``, ``trades``, ``l2_book`` and any other data source that has a stored series,
so the recorded events go through exactly the live code path. It is never chosen by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from featurizer import EmitterSpec, hookimpl
from featurizer_offline.emitter import OfflineEventEmitter
from featurizer_offline.options import OfflineOptions

if TYPE_CHECKING:
    from featurizer._runner import RunContext

__all__ = ["OfflineEventEmitter", "OfflineOptions", "StoredSourcesEmitterSpec"]


@attrs.frozen(kw_only=True)
class StoredSourcesEmitterSpec(EmitterSpec):
    """An emitter spec serving every data-source definition.

    Whether a data source can be replayed depends on what is stored, not on its definition:
    the emitter checks the storage when it starts and names what is missing.
    """

    def serves(self, definition_name: str) -> bool:
        """Every data-source definition (availability is checked against the storage)."""
        return True


@hookimpl
def featurizer_register_emitters() -> list[EmitterSpec]:
    """The ``offline`` emitter."""
    return [
        StoredSourcesEmitterSpec(
            name="offline",
            emitter_class=OfflineEventEmitter,
            data_sources=("ticker", "trades", "l2_book"),
            exchanges=(),
            description="replays recorded data sources from Featurizer Storage (any stored "
            "data source, merged in timestamp order; pace max or xN)",
        )
    ]


@hookimpl
def featurizer_before_run(context: RunContext) -> None:
    """Give offline emitters the run's config (storage root and date range)."""
    for emitter in context.emitters.values():
        if isinstance(emitter, OfflineEventEmitter):
            emitter.bind_config(context.config)
