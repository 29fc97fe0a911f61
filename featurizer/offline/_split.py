"""Splitting an offline range for parallel work, with a warm-up margin per split."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from featurizer._errors import ConfigError
from featurizer._feature import Feature

if TYPE_CHECKING:
    from featurizer._config import FeaturizerConfig
    from featurizer._plugins import Plugins
    from featurizer.storage import Storage

__all__ = [
    "derived_warmup",
    "effective_warmup",
    "split",
    "to_datetime",
    "to_timestamp",
    "warmup_needs",
]


def to_timestamp(value: dt.datetime | float | None) -> float | None:
    """A datetime (naive = UTC) or epoch seconds as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    return float(value)


def to_datetime(value: float) -> dt.datetime:
    """Epoch seconds as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _floor_datetime(value: float) -> dt.datetime:
    """The latest microsecond datetime at or before ``value``."""
    result = _EPOCH + dt.timedelta(microseconds=math.floor(value * 1e6))
    while result.timestamp() > value:
        result -= dt.timedelta(microseconds=1)
    return result


def _ceil_datetime(value: float) -> dt.datetime:
    """The earliest microsecond datetime at or after ``value``."""
    result = _EPOCH + dt.timedelta(microseconds=math.ceil(value * 1e6))
    while result.timestamp() < value:
        result += dt.timedelta(microseconds=1)
    return result


def warmup_needs(features: Sequence[Feature]) -> dict[Feature, float]:
    """Per feature, how much history its latest value depends on, for windowed features:
    twice the sum of ``duration`` params along its longest path down to a data source.

    Twice, because a bucketed feature (OHLCV bars) reports a bucket once the next one has
    begun, so its latest value covers a bucket that started up to two intervals earlier; a
    trailing window needs only one, so the margin is conservative for it.

    >>> from featurizer.testing import ExampleTicker, ExampleMid
    >>> ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    >>> warmup_needs([Feature.create(ExampleMid, {}, {"ticker": ticker})])[ticker]
    0.0
    """
    memo: dict[Feature, float] = {}

    def need(feature: Feature) -> float:
        if feature in memo:
            return memo[feature]
        own = 0.0
        for name, param in feature.definition.params.items():
            value = feature.params.get(name)
            if param.kind == "duration" and isinstance(value, int | float):
                own += 2.0 * float(value)
        below = max((need(child) for child in feature.children.values()), default=0.0)
        memo[feature] = own + below
        return memo[feature]

    for feature in features:
        need(feature)
    return memo


def derived_warmup(features: Sequence[Feature]) -> float:
    """The warm-up a graph needs: the largest :func:`warmup_needs` of its outputs.

    Windowed features (volatility, trade volume imbalance, VWAP, OHLCV bars) keep only events
    from their trailing window (or current bar), so replaying this much data before a split's
    start gives them the state they have in an unsplit replay. (The generator extends it when
    an output's latest value at the start was computed earlier than that.) Features whose
    state depends on unbounded history (an order book rebuilt from a snapshot and deltas) need
    an explicit ``warmup`` in the config.

    >>> from featurizer.testing import ExampleTicker, ExampleMid
    >>> ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    >>> derived_warmup([Feature.create(ExampleMid, {}, {"ticker": ticker})])
    0.0
    """
    needs = warmup_needs(features)
    return max((needs[feature] for feature in features), default=0.0)


def effective_warmup(config: FeaturizerConfig, features: Sequence[Feature]) -> float:
    """The config's ``warmup``, else :func:`derived_warmup` of its features."""
    if config.warmup is not None:
        return config.warmup
    return derived_warmup(features)


@attrs.frozen(kw_only=True)
class _Range:
    start: float
    end: float


def _stored_range(config: FeaturizerConfig, storage: Storage, sources: Sequence[Feature]) -> _Range:
    stats = storage.catalog.series_stats()
    firsts, lasts = [], []
    for source in sources:
        entry = stats.get(source.key)
        if entry is None or entry[3] is None or entry[4] is None:
            raise ConfigError(
                f"data source {source.name!r} is not stored under {str(storage.root)!r}; "
                f"cannot derive the range to split",
                path=config.path,
                field="start_date",
            )
        firsts.append(entry[3])
        lasts.append(entry[4])
    return _Range(start=min(firsts), end=math.nextafter(max(lasts), math.inf))


def split(
    config: FeaturizerConfig,
    n: int,
    *,
    storage: Storage | None = None,
    plugins: Plugins | None = None,
) -> list[FeaturizerConfig]:
    """Split the config's ``start_date``..``end_date`` into ``n`` consecutive ranges.

    Each returned config covers one range (``[start, end)``, the ranges touching end to end)
    and carries the ``warmup`` to use: replaying each with
    :class:`~featurizer.offline.OfflineFeatureStreamGenerator` and concatenating the outputs
    gives the outputs of the whole range, for features whose state is bounded by their
    duration params (see :func:`derived_warmup`).

    :param config: the config; without dates, ``storage`` gives the stored data's extent.
    :param n: the number of splits (>= 1).
    :param storage: used only when the config has no dates.
    :param plugins: the plugins to resolve definitions with.
    :returns: ``n`` configs with ``start_date``, ``end_date`` and ``warmup`` set.
    :raises ConfigError: if ``n`` is not positive or the range cannot be determined.
    """
    from featurizer._config import construct_features_from_configs
    from featurizer._graph import FeatureStreamGraph

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"the number of splits must be a positive integer, received {n!r}")
    features = construct_features_from_configs(config, plugins)
    start = to_timestamp(config.start_date)
    end = to_timestamp(config.end_date)
    if start is None or end is None:
        if storage is None:
            raise ConfigError(
                "splitting needs start_date and end_date (or a storage to take the stored "
                "data's extent from)",
                path=config.path,
                field="start_date" if start is None else "end_date",
            )
        extent = _stored_range(config, storage, FeatureStreamGraph(features).get_ins())
        start = extent.start if start is None else start
        end = extent.end if end is None else end
    if not start < end:
        raise ConfigError(
            f"the range to split is empty ({start!r} to {end!r})",
            path=config.path,
            field="end_date",
        )
    warmup = effective_warmup(config, features)
    bounds = [config.start_date or _floor_datetime(start)]
    for i in range(1, n):
        bounds.append(to_datetime(start + (end - start) * i / n))
    bounds.append(config.end_date or _ceil_datetime(end))
    return [
        attrs.evolve(config, start_date=a, end_date=b, warmup=warmup)
        for a, b in itertools.pairwise(bounds)
    ]
