"""Feature plots: what a run or a replay produced, one panel per feature on a shared time axis.

Rows come from ``featurizer run`` output files (Parquet or JSON Lines, combined rows with
``<feature>.<field>`` columns or per-feature rows with a ``feature`` column) or from running a
config in memory. Drawing uses matplotlib's object API with the Agg canvas: no ``pyplot``
global state, no display needed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from featurizer._errors import FeaturizerError
from featurizer._params import parse_timestamp

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from featurizer._config import FeaturizerConfig
    from featurizer._plugins import Plugins
    from featurizer._runner import RunOptions

__all__ = [
    "FeatureSeries",
    "PlotError",
    "is_time_field",
    "load_rows",
    "parse_time",
    "plot_features",
    "rows_from_config",
    "save_figure",
    "series_from_rows",
]

logger = logging.getLogger(__name__)

_TIMESTAMPS = ("timestamp", "receipt_timestamp")
ROW_FILE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CONFIG_SUFFIXES = (".yaml", ".yml")


class PlotError(FeaturizerError):
    """Feature rows cannot be read or plotted as asked."""


@attrs.frozen(kw_only=True)
class FeatureSeries:
    """One numeric field of one feature over time.

    :param feature: the feature's name.
    :param field: the event field (``mid_price``, ``volatility``, ...).
    :param times: event timestamps, seconds since the epoch (UTC).
    :param values: the values (``nan`` where missing).
    """

    feature: str
    field: str
    times: tuple[float, ...]
    values: tuple[float, ...]


def _number(value: Any) -> float | None:
    """A float for plottable values (``nan`` for a missing one), ``None`` for anything else."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def series_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[FeatureSeries]:
    """Split output rows into numeric series, features in column order.

    Combined rows (``timestamp`` and ``<feature>.<field>`` columns) and per-feature rows
    (``feature``, ``timestamp`` and the fields) are both understood; non-numeric fields (strings,
    lists) are left out.

    :param rows: rows as ``featurizer run`` writes them.
    :returns: one series per (feature, numeric field).
    :raises PlotError: if a row has no ``timestamp``.

    >>> rows = [{"timestamp": 1.0, "mid.mid_price": 2.0, "mid.side": "buy"},
    ...         {"timestamp": 2.0, "mid.mid_price": 3.0, "mid.side": "sell"}]
    >>> [(s.feature, s.field, s.values) for s in series_from_rows(rows)]
    [('mid', 'mid_price', (2.0, 3.0))]
    """
    times: dict[tuple[str, str], list[float]] = {}
    values: dict[tuple[str, str], list[float]] = {}
    rejected: set[tuple[str, str]] = set()
    for number, row in enumerate(rows):
        timestamp = row.get("timestamp")
        if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
            raise PlotError(f"row {number} has no numeric 'timestamp' (received {row!r:.200})")
        feature_name = row.get("feature")
        for column, value in row.items():
            if column in _TIMESTAMPS or column == "feature":
                continue
            if isinstance(feature_name, str):
                key = (feature_name, column)
            elif "." in column:
                feature, _, field = column.rpartition(".")
                key = (feature, field)
            else:
                continue
            if key in rejected:
                continue
            number_value = _number(value)
            if number_value is None:
                rejected.add(key)
                continue
            times.setdefault(key, []).append(float(timestamp))
            values.setdefault(key, []).append(number_value)
    return [
        FeatureSeries(
            feature=key[0], field=key[1], times=tuple(times[key]), values=tuple(values[key])
        )
        for key in times
        if key not in rejected
    ]


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read the rows of a ``featurizer run`` output file (``.parquet`` or ``.jsonl``).

    :param path: the file.
    :raises PlotError: if it cannot be read or is not such a file.
    """
    source = Path(path)
    kind = ROW_FILE_SUFFIXES.get(source.suffix.lower())
    if kind is None:
        raise PlotError(
            f"cannot plot {str(source)!r}: expected a feature file "
            f"({', '.join(ROW_FILE_SUFFIXES)}) or a config ({', '.join(CONFIG_SUFFIXES)})"
        )
    if not source.is_file():
        raise PlotError(f"cannot plot {str(source)!r}: no such file")
    if kind == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as error:
            raise PlotError("reading Parquet needs pyarrow: pip install pyarrow") from error
        try:
            table = pq.read_table(source)
        except Exception as error:
            raise PlotError(f"cannot read {str(source)!r} as Parquet: {error}") from error
        rows: list[dict[str, Any]] = table.to_pylist()
        return rows
    rows = []
    with source.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise PlotError(f"{source}:{line_number}: not a JSON line: {error}") from error
            if not isinstance(row, dict):
                raise PlotError(f"{source}:{line_number}: expected a JSON object per line")
            rows.append(row)
    return rows


def rows_from_config(
    config: FeaturizerConfig, options: RunOptions, *, plugins: Plugins | None = None
) -> list[dict[str, Any]]:
    """Run a config in memory (bounded by ``options``) and return one row per output event.

    Rows are per feature (``combine_outputs`` is turned off): a feature that is slow to
    produce its first value (a 1-minute bar) does not hold back the others' points.

    :param config: the features to compute.
    :param options: the run options; give a bound (``max_events`` or ``duration``).
    :param plugins: the plugins to use (installed ones by default).
    """
    from featurizer._runner import run

    options = attrs.evolve(options, combine_outputs=False)

    collected: list[dict[str, Any]] = []

    class _ListSink:
        def write_row(self, row: Mapping[str, Any]) -> None:
            collected.append(dict(row))

        def close(self, ok: bool = True) -> None:
            """Nothing to flush."""

    run(config, options, _ListSink(), plugins=plugins)
    return collected


def parse_time(text: str) -> float:
    """Seconds since the epoch from ``--start``/``--end``: a number or an ISO date/time (UTC
    unless it carries an offset).

    >>> parse_time("2024-01-01T00:00:01"), parse_time("1704067201.5")
    (1704067201.0, 1704067201.5)
    """
    try:
        return parse_timestamp(text)
    except ValueError as error:
        raise PlotError(f"expected a time such as '2024-01-31' or epoch seconds: {error}") from None


_TIME_SUFFIXES = ("_time", "_timestamp", "_start", "_end")


def is_time_field(field: str) -> bool:
    """Whether a field holds a time (``bucket_start``, ``open_time``): not drawn by default,
    its values would flatten every other line of the panel.
    """
    return field.endswith(_TIME_SUFFIXES)


def _select(
    series: Sequence[FeatureSeries], features: Sequence[str] | None
) -> list[tuple[str, list[FeatureSeries]]]:
    by_feature: dict[str, list[FeatureSeries]] = {}
    for one in series:
        by_feature.setdefault(one.feature, []).append(one)
    if not features:
        panels = [
            (name, [one for one in group if not is_time_field(one.field)])
            for name, group in by_feature.items()
        ]
        return [(name, group) for name, group in panels if group]
    panels = []
    missing = []
    for wanted in dict.fromkeys(features):
        if wanted in by_feature:
            group = [one for one in by_feature[wanted] if not is_time_field(one.field)]
            panels.append((wanted, group or by_feature[wanted]))
            continue
        feature, _, field = wanted.rpartition(".")
        chosen = [one for one in by_feature.get(feature, []) if one.field == field]
        if chosen:
            panels.append((wanted, chosen))
        else:
            missing.append(wanted)
    if missing:
        raise PlotError(
            f"no numeric column for feature{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}; available: "
            f"{', '.join(map(repr, by_feature)) or 'none'} (or FEATURE.FIELD for one field)"
        )
    return panels


def _window(
    one: FeatureSeries, start: float | None, end: float | None
) -> tuple[list[float], list[float]]:
    if start is None and end is None:
        return list(one.times), list(one.values)
    low = -math.inf if start is None else start
    high = math.inf if end is None else end
    kept = [(t, v) for t, v in zip(one.times, one.values, strict=True) if low <= t <= high]
    return [t for t, _ in kept], [v for _, v in kept]


def plot_features(
    series: Sequence[FeatureSeries],
    *,
    features: Sequence[str] | None = None,
    start: float | None = None,
    end: float | None = None,
    title: str | None = None,
) -> Figure:
    """Draw features over time: one panel per feature, one line per numeric field, one shared
    time axis (UTC).

    :param series: from :func:`series_from_rows`.
    :param features: the features to draw, in panel order (default: all, in column order); a
        ``FEATURE.FIELD`` name draws one field only. Time fields (:func:`is_time_field`) are
        drawn only when asked for by ``FEATURE.FIELD``.
    :param start: first time drawn, seconds since the epoch (default: the first row).
    :param end: last time drawn (default: the last row).
    :param title: a caption above the panels.
    :returns: the matplotlib figure (Agg canvas), one axes per feature.
    :raises PlotError: if a requested feature has no numeric column, or no row is in range.
    """
    try:
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotError(
            "plotting needs matplotlib: pip install 'featurizer[viz]' (or pip install matplotlib)"
        ) from error

    if start is not None and end is not None and not start < end:
        raise PlotError(f"--start ({start!r}) must be before --end ({end!r})")
    panels = _select(series, features)
    if not panels:
        raise PlotError("there is no numeric feature column to plot")
    windowed = [
        (
            name,
            [(f"{one.feature}.{one.field}", one.field, *_window(one, start, end)) for one in group],
        )
        for name, group in panels
    ]
    if not any(times for _, group in windowed for _, _, times, _ in group):
        raise PlotError(
            f"no rows between {_describe(start, 'the first row')} and "
            f"{_describe(end, 'the last row')}"
        )
    empty = [name for name, group in windowed if not any(times for _, _, times, _ in group)]
    if empty:
        logger.warning("not drawn, no value in the time range: %s", ", ".join(empty))
        windowed = [(name, group) for name, group in windowed if name not in empty]
    figure = Figure(figsize=(10.0, 0.8 + 2.2 * len(windowed)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(windowed), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, group) in zip(axes, windowed, strict=True):
        for _, field, times, values in group:
            stamps = (np.asarray(times, dtype=np.float64) * 1e9).astype("datetime64[ns]")
            ax.plot(stamps, np.asarray(values, dtype=np.float64), linewidth=0.9, label=field)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.grid(True, linewidth=0.3, alpha=0.6)
        if len(group) > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
        else:
            ax.set_title(group[0][0], loc="left", fontsize="small")
    locator = AutoDateLocator()
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes[-1].set_xlabel("event time (UTC)")
    if title:
        figure.suptitle(title)
    return figure


def _describe(moment: float | None, default: str) -> str:
    if moment is None:
        return default
    return dt.datetime.fromtimestamp(moment, tz=dt.UTC).isoformat()


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Save a figure all at once (temporary file, then rename); format from the suffix.

    :param figure: the figure.
    :param path: ``.png``, ``.svg`` or ``.pdf``.
    :raises FeaturizerError: if the path cannot be written; nothing is left behind.
    """
    from featurizer.viz._files import write_atomically

    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("png", "svg", "pdf"):
        raise PlotError(f"cannot tell the image format of {str(path)!r}: use .png, .svg or .pdf")
    return write_atomically(
        path, lambda temporary: figure.savefig(temporary, format=suffix, dpi=110)
    )
