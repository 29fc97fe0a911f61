"""Parts of a parallel backfill: consecutive ranges with equal numbers of stored events.

:func:`featurizer.offline.split` gives the whole range and the warm-up each part replays
before its start; the bounds between parts are then moved so that every part holds about the
same number of stored events (the catalog's blocks give each block's rows and time span, and
events are taken as evenly spread inside a block), so that skewed data (a busy hour among quiet
ones) does not leave one worker with most of the work.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from featurizer._config import FeaturizerConfig
    from featurizer._feature import Feature
    from featurizer._plugins import Plugins
    from featurizer.storage import Storage

__all__ = ["WARMUP_MARGIN", "Part", "plan_parts"]

WARMUP_MARGIN = 0.1
"""Parts replay this much more warm-up than :func:`featurizer.offline.split` gives (a
fraction of it; see :func:`plan_parts`)."""


def _when(value: dt.datetime | None, open_end: str) -> str:
    if value is None:
        return open_end
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@attrs.frozen(kw_only=True)
class Part:
    """One part of a parallel backfill.

    :param index: its position (0 is the first range).
    :param count: how many parts there are.
    :param config: the config of the part (its dates and warm-up set).
    :param floor: for a later part, where the whole backfill starts reading (its start less
        its warm-up; ``-inf``: the first stored event): how far back the part may go for the
        values the whole backfill has at the part's start (``None`` for the first part).
    :param start: the exact start when it is a float that ``config``'s microsecond datetimes
        cannot hold (the first part's, given in epoch seconds); ``None``: the config's.
    :param end: likewise, the last part's exact end.
    """

    index: int
    count: int
    config: FeaturizerConfig
    floor: float | None = None
    start: float | None = None
    end: float | None = None

    @property
    def label(self) -> str:
        """``part 2 of 3 (T0 to T1)``: how errors name it."""
        start = _when(self.config.start_date, "the first stored event")
        end = _when(self.config.end_date, "the last stored event")
        return f"part {self.index + 1} of {self.count} ({start} to {end})"


class _Blocks:
    """The stored blocks' time spans and rows, to estimate events before a time."""

    def __init__(self, blocks: list[Any]) -> None:
        import numpy as np

        self._starts = np.array([b.start_ts for b in blocks], dtype=np.float64)
        self._ends = np.array([b.end_ts for b in blocks], dtype=np.float64)
        self._rows = np.array([b.rows for b in blocks], dtype=np.float64)
        self._spans = np.maximum(self._ends - self._starts, np.finfo(np.float64).tiny)

    def before(self, when: float) -> float:
        """Estimated stored events with timestamps before ``when`` (evenly spread in a block)."""
        import numpy as np

        share = np.clip((when - self._starts) / self._spans, 0.0, 1.0)
        share[when > self._ends] = 1.0
        share[when <= self._starts] = 0.0
        return float((self._rows * share).sum())


def _balanced(blocks: _Blocks, start: float, end: float, n: int) -> list[float] | None:
    """``n - 1`` timestamps inside ``(start, end)`` cutting the stored events into ``n`` equal
    shares, or ``None`` when the catalog lists no events there."""
    first = blocks.before(start)
    total = blocks.before(end) - first
    if total <= 0:
        return None
    cuts = []
    for i in range(1, n):
        target = first + total * i / n
        lo, hi = start, end
        for _ in range(80):  # bisection: bounded, and down to adjacent floats well before 80
            mid = (lo + hi) / 2
            if mid in (lo, hi):
                break
            if blocks.before(mid) < target:
                lo = mid
            else:
                hi = mid
        cuts.append(hi)
    return cuts


def plan_parts(
    config: FeaturizerConfig,
    storage: Storage,
    count: int,
    *,
    plugins: Plugins | None = None,
    start: float | None = None,
    end: float | None = None,
) -> list[Part]:
    """``count`` consecutive parts of the config's range, each with about the same number of
    stored events and with the warm-up of :func:`featurizer.offline.split`.

    An open start or end stays open in the first or last part, as in one process. ``start``
    and ``end`` override the config's dates exactly (epoch seconds).

    :raises ConfigError: when the range cannot be determined or is empty.
    """
    from featurizer._config import construct_features_from_configs
    from featurizer._graph import FeatureStreamGraph
    from featurizer.offline import split
    from featurizer.offline._split import to_datetime, to_timestamp

    if start is not None:
        config = attrs.evolve(config, start_date=_microseconds(start, math.floor))
    if end is not None:
        config = attrs.evolve(config, end_date=_microseconds(end, math.ceil))
    timed = split(config, count, storage=storage, plugins=plugins)
    configs = list(timed)
    if count > 1:
        start = to_timestamp(timed[0].start_date)
        end = to_timestamp(timed[-1].end_date)
        assert start is not None and end is not None  # split sets every date
        sources: list[Feature] = FeatureStreamGraph(
            construct_features_from_configs(config, plugins)
        ).get_ins()
        blocks = [b for s in sources for b in storage.catalog.blocks(s.key, start, end)]
        cuts = _balanced(_Blocks(blocks), start, end, count)
        first, last = timed[0].start_date, timed[-1].end_date
        if cuts is not None and first is not None and last is not None:
            dates = [first, *(to_datetime(cut) for cut in cuts), last]
            if all(a < b for a, b in itertools.pairwise(dates)):
                configs = [
                    attrs.evolve(part, start_date=a, end_date=b)
                    for part, (a, b) in zip(timed, itertools.pairwise(dates), strict=True)
                ]
    # A part whose outputs were last updated before its start reads again from further back
    # (as a replay from that start does), throwing its first chunk away; a margin on the
    # warm-up makes that rare (an output needs more only when its last update came more than
    # the margin before the start). More warm-up never changes a part's rows.
    # The first part is the start of the whole backfill: its warm-up stays the whole's.
    configs[1:] = [
        attrs.evolve(c, warmup=(c.warmup or 0.0) * (1.0 + WARMUP_MARGIN)) for c in configs[1:]
    ]
    begins = start if start is not None else to_timestamp(config.start_date)
    floor = -math.inf if begins is None else begins - (timed[0].warmup or 0.0)
    # open ends stay open: the first part reads from the first stored event and the last to
    # the last one, exactly as one process does (no hole reported beyond the data)
    if config.start_date is None:
        configs[0] = attrs.evolve(configs[0], start_date=None)
    if config.end_date is None:
        configs[-1] = attrs.evolve(configs[-1], end_date=None)
    return [
        Part(
            index=i,
            count=count,
            config=c,
            floor=floor if i else None,
            start=start if i == 0 else None,
            end=end if i == count - 1 else None,
        )
        for i, c in enumerate(configs)
    ]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _microseconds(value: float, rounding: Any) -> dt.datetime:
    """``value`` as a microsecond datetime at or before it (``math.floor``) or at or after it
    (``math.ceil``)."""
    step = dt.timedelta(microseconds=1)
    result = _EPOCH + dt.timedelta(microseconds=rounding(value * 1e6))
    sign = 1 if rounding is math.floor else -1
    for _ in range(4):  # the float product is off by at most a microsecond or two
        if (result.timestamp() - value) * sign <= 0:
            break
        result -= step * sign
    return result
