"""Reading a series: its blocks over a time range, in order, with holes reported."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from featurizer.storage._blocks import open_block, read_block_bytes, schema_from_bytes
from featurizer.storage._catalog import BlockInfo, Catalog, SeriesInfo
from featurizer.storage._codec import require_pyarrow
from featurizer.storage._errors import OverlapError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "HOLE_RESOLUTION",
    "Hole",
    "SeriesPlan",
    "conform",
    "cut_sorted",
    "float_view",
    "format_ts",
    "plan_series",
    "read_tables",
    "series_arrow_schema",
]


HOLE_RESOLUTION = 1e-6
"""Gaps of at most this many seconds are not holes: timestamps are not more precise (and a
range end converted from a datetime may land a few ulps after the last event)."""


def format_ts(value: float | None) -> str:
    """A timestamp as ISO-8601 UTC (``-`` for ``None``, the number itself if out of range)."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return repr(value)
    try:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return repr(value)


@attrs.frozen(kw_only=True)
class Hole:
    """A time span for which a series has no stored data although it was asked for.

    :param series: the series' label.
    :param start: the last covered timestamp before the hole (or the range start).
    :param end: the first covered timestamp after the hole (or the range end).
    :param reason: why: not recorded, or blocks missing from the catalog.
    """

    series: str
    start: float
    end: float
    reason: str

    def describe(self) -> str:
        """One line naming the series, the span and the reason."""
        return (
            f"series {self.series!r}: no data from {format_ts(self.start)} to "
            f"{format_ts(self.end)} ({self.end - self.start:,.3f} s): {self.reason}"
        )


@attrs.frozen(kw_only=True)
class SeriesPlan:
    """The blocks of one series over a range, and what is missing in it.

    :param series: the series.
    :param start: the range start (``None``: from the beginning).
    :param end: the range end, exclusive (``None``: to the end).
    :param blocks: the blocks overlapping the range, in recording order.
    :param holes: spans of the range the series was not recorded for.
    :param committed_end: when the series' latest data is from a session still recording,
        the time before which all its events of that session are committed (a reader must
        not read further: later events of this series may still be on their way), else
        ``None``.
    :param recording: that session's id, if any.
    """

    series: SeriesInfo
    start: float | None
    end: float | None
    blocks: tuple[BlockInfo, ...]
    holes: tuple[Hole, ...]
    committed_end: float | None = None
    recording: str | None = None

    @property
    def rows(self) -> int:
        """Rows in the planned blocks (an upper bound of the rows in range)."""
        return sum(block.rows for block in self.blocks)


def plan_series(
    catalog: Catalog, series: SeriesInfo, start: float | None, end: float | None
) -> SeriesPlan:
    """Plan reading ``series`` over ``[start, end)``.

    Coverage is what recording sessions covered: a session that recorded this series covers
    from the first to the last event timestamp it stored (of any series). Time not covered
    by any session, and blocks whose catalog rows are gone (a session's block ordinals must be
    0, 1, 2, ...), are reported as holes. Two sessions whose blocks of the series overlap in
    time would duplicate events, so they are an error.

    :raises OverlapError: naming the series and both sessions.
    """
    with catalog.snapshot():
        return _plan_series(catalog, series, start, end)


def _plan_series(
    catalog: Catalog, series: SeriesInfo, start: float | None, end: float | None
) -> SeriesPlan:
    blocks = tuple(catalog.blocks(series.key, start, end))
    label = series.label
    holes: list[Hole] = []
    sessions = {info.id: info for info in catalog.sessions()}
    stored = catalog.session_series(series.key)
    extents: list[tuple[float, float, str]] = []
    coverage: list[tuple[float, float, str]] = []
    every_block = catalog.blocks(series.key)
    by_session: dict[str, list[BlockInfo]] = {}
    for block in every_block:
        by_session.setdefault(block.session, []).append(block)
    covers = catalog.covers(series.key)
    dropped = catalog.dropped_ordinals()
    live: list[tuple[float, str]] = []
    for entry in stored:
        session = sessions.get(entry.session)
        if session is None or session.first_ts is None or session.last_ts is None:
            continue
        if session.status == "recording":
            cover = covers.get(session.id)
            if cover is None:
                continue
            live.append((cover, session.id))
            coverage.append((session.first_ts, min(session.last_ts, cover), session.id))
        else:
            coverage.append((session.first_ts, session.last_ts, session.id))
        own = sorted(by_session.get(entry.session, []), key=lambda b: b.ordinal)
        if own:
            extents.append((min(b.start_ts for b in own), max(b.end_ts for b in own), session.id))
        expected = entry.blocks
        present = {b.ordinal for b in own} | dropped.get((series.key, entry.session), set())
        missing = sorted(set(range(expected)) - present)
        if missing:
            by_ordinal = {b.ordinal: b for b in own}
            runs: list[list[int]] = []
            for ordinal in missing:
                if runs and runs[-1][-1] == ordinal - 1:
                    runs[-1].append(ordinal)
                else:
                    runs.append([ordinal])
            for run in runs:
                before = by_ordinal.get(run[0] - 1)
                after = by_ordinal.get(run[-1] + 1)
                hole_start = before.end_ts if before else session.first_ts
                hole_end = after.start_ts if after else session.last_ts
                holes.append(
                    Hole(
                        series=label,
                        start=hole_start,
                        end=hole_end,
                        reason=f"block ordinal(s) {run[0]}..{run[-1]} of session "
                        f"{session.id} are missing from the catalog",
                    )
                )
    extents.sort()
    for (a_start, a_end, a_id), (b_start, b_end, b_id) in itertools.pairwise(extents):
        if (
            b_start <= a_end
            and _intersects(a_start, a_end, start, end)
            and _intersects(b_start, b_end, start, end)
        ):
            raise OverlapError(
                f"sessions {a_id} ({format_ts(a_start)} to {format_ts(a_end)}) and {b_id} "
                f"({format_ts(b_start)} to {format_ts(b_end)}) both stored events of this "
                f"series for the same time; replaying both would duplicate them. Record into "
                f"separate storage roots, or ask for a range covered by only one session",
                series=label,
                path=str(catalog.path),
            )
    coverage.sort()
    merged: list[list[Any]] = []
    for first, last, session_id in coverage:
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
            merged[-1][2] = session_id
        else:
            merged.append([first, last, session_id])
    if merged:
        if start is not None and start < merged[0][0]:
            holes.append(
                Hole(
                    series=label, start=start, end=merged[0][0], reason="before the first recording"
                )
            )
        for (_, a_last, a_id), (b_first, _, b_id) in itertools.pairwise(merged):
            if _intersects(a_last, b_first, start, end):
                holes.append(
                    Hole(
                        series=label,
                        start=a_last,
                        end=b_first,
                        reason=f"not recorded (between sessions {a_id} and {b_id})",
                    )
                )
        last = merged[-1][1]
        if end is not None and end > last and math.nextafter(last, math.inf) < end:
            holes.append(
                Hole(series=label, start=merged[-1][1], end=end, reason="after the last recording")
            )
    for recorded in catalog.recorded_holes(series.key):
        holes.append(
            Hole(
                series=label,
                start=recorded.start_ts,
                end=recorded.end_ts,
                reason=f"lost in session {recorded.session}: {recorded.reason}",
            )
        )
    holes = [
        h
        for h in holes
        if _intersects(h.start, h.end, start, end)
        and (h.end - h.start > HOLE_RESOLUTION or h.reason.startswith("lost"))
    ]
    holes.sort(key=lambda h: (h.start, h.end))
    committed_end, recording = None, None
    if live:
        newest = max(
            (c for c in coverage if c[2] not in {s for _, s in live}),
            default=None,
            key=lambda c: c[1],
        )
        cover, recording = max(live)
        if newest is not None and newest[1] >= cover:
            recording = None
        else:
            committed_end = cover
    return SeriesPlan(
        series=series,
        start=start,
        end=end,
        blocks=blocks,
        holes=tuple(holes),
        committed_end=committed_end,
        recording=recording,
    )


def _intersects(a: float, b: float, start: float | None, end: float | None) -> bool:
    lo = -math.inf if start is None else start
    hi = math.inf if end is None else end
    return a < hi and b >= lo


def float_view(array: pa.Array) -> Any:
    """A zero-copy sequence of a float64 array's values (a ``memoryview``), for bisecting."""
    if array.null_count == 0:
        data = array.buffers()[1]
        try:
            view = memoryview(data).cast("d")
            return view[array.offset : array.offset + len(array)]
        except TypeError:
            pass
    return array.to_pylist()


def series_arrow_schema(series: SeriesInfo) -> pa.Schema | None:
    """The series' Arrow schema from the catalog, if a block was stored."""
    if series.arrow_schema is None:
        return None
    return schema_from_bytes(series.arrow_schema, series.label)


def conform(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """Cast ``list<null>`` columns (blocks of only empty values) to the series' types."""
    if schema is None:
        return table
    pa = require_pyarrow()
    for i, field in enumerate(table.schema):
        if field.name not in schema.names:
            continue
        want = schema.field(field.name).type
        got = field.type
        if pa.types.is_dictionary(got) or got.equals(want):
            continue
        table = table.set_column(i, field.name, table.column(i).cast(want))
    return table


def read_tables(
    root: Path,
    plan: SeriesPlan,
    *,
    raw_range: bool = True,
) -> Iterator[pa.Table]:
    """Read the planned blocks row group by row group, keeping rows in ``[start, end)``.

    Every block is checked (size, checksum, Parquet structure, schema) before its rows are
    returned.

    :param root: the storage root.
    :param plan: the series plan.
    :param raw_range: filter on each row's own timestamp (else no filtering).
    :returns: tables with the series' columns and the arrival-number column.
    """
    require_pyarrow()
    import pyarrow.compute as pc

    schema = series_arrow_schema(plan.series)
    label = plan.series.label
    for block in plan.blocks:
        data = read_block_bytes(root, block, label)
        parquet = open_block(data, block, label, root / block.path, schema)
        for group in range(parquet.num_row_groups):
            table = conform(parquet.read_row_group(group), schema)
            if raw_range and (plan.start is not None or plan.end is not None):
                ts = table.column("timestamp")
                mask = None
                if plan.start is not None:
                    mask = pc.greater_equal(ts, plan.start)
                if plan.end is not None:
                    upper = pc.less(ts, plan.end)
                    mask = upper if mask is None else pc.and_(mask, upper)
                table = table.filter(mask)
            if table.num_rows:
                yield table


def cut_sorted(keys: Any, seqs: Any, key: float, seq: int) -> int:
    """How many leading rows have ``(key, seq) <= (key, seq)`` in rows sorted by both."""
    index = bisect.bisect_right(keys, key)
    while index > 0 and keys[index - 1] == key and seqs[index - 1] > seq:
        index -= 1
    return index
