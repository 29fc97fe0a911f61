"""The stored range an offline computation reads: storage, features, bounds and warm-up.

One place resolves what :class:`~featurizer.offline.OfflineFeatureStreamGenerator` (per event)
and :class:`~featurizer.batch.Backfill` (columnar) both need, so the two read exactly the same
range with the same warm-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from featurizer._errors import FeaturizerError
from featurizer._feature import Feature
from featurizer.offline._split import effective_warmup, to_timestamp, warmup_needs
from featurizer.storage._settings import resolve_root
from featurizer.storage._storage import Storage

if TYPE_CHECKING:
    import datetime as dt

    from featurizer._config import FeaturizerConfig
    from featurizer._plugins import Plugins

__all__ = ["PER_CHOICES", "StoredRange"]

PER_CHOICES = ("event", "timestamp")
"""``event``: one vector per input event that updated an output (exactly what the live
combined callback receives). ``timestamp``: of consecutive vectors with the same timestamp,
only the last (the state once every input of that timestamp was applied)."""


@attrs.frozen(kw_only=True)
class StoredRange:
    """What an offline computation over stored data reads.

    :param storage: the opened storage.
    :param owns_storage: whether the storage was opened here (and must be closed by the user
        of this range).
    :param features: the config's features.
    :param start: the first output timestamp (``None``: from the beginning).
    :param end: the end of the range, exclusive (``None``: to the end).
    :param warmup: seconds of data replayed before ``start`` without output.
    :param needs: per feature, how far back its latest value may depend on data.
    """

    storage: Storage
    owns_storage: bool
    features: list[Feature]
    start: float | None
    end: float | None
    warmup: float
    needs: Mapping[Feature, float]

    @classmethod
    def resolve(
        cls,
        config: FeaturizerConfig,
        storage: Storage | str | os.PathLike[str] | None,
        *,
        start: dt.datetime | float | None,
        end: dt.datetime | float | None,
        warmup: float | None,
        per: str,
        plugins: Plugins | None,
    ) -> StoredRange:
        """Check the arguments, open the storage (read-only) unless given one, build features.

        :raises FeaturizerError: for an unknown ``per`` or an empty range.
        """
        from featurizer._config import construct_features_from_configs

        if per not in PER_CHOICES:
            raise FeaturizerError(
                f"per must be one of {', '.join(map(repr, PER_CHOICES))}, received {per!r}"
            )
        first = to_timestamp(start if start is not None else config.start_date)
        last = to_timestamp(end if end is not None else config.end_date)
        if first is not None and last is not None and not first < last:
            raise FeaturizerError(f"start {first!r} must be before end {last!r}")
        features = construct_features_from_configs(config, plugins)
        owns = not isinstance(storage, Storage)
        if isinstance(storage, Storage):
            opened = storage
        else:
            root = resolve_root(config.storage, config_path=config.path, override=storage)
            opened = Storage.open(root, readonly=True)
        return cls(
            storage=opened,
            owns_storage=owns,
            features=features,
            start=first,
            end=last,
            warmup=warmup if warmup is not None else effective_warmup(config, features),
            needs=warmup_needs(features),
        )

    @property
    def replay_start(self) -> float | None:
        """Where reading starts: ``start`` minus the warm-up."""
        if self.start is None:
            return None
        return self.start - self.warmup if self.warmup else self.start

    @property
    def checked(self) -> bool:
        """Whether no warm-up check is needed (no warm-up, or no start)."""
        return not self.warmup or self.start is None
