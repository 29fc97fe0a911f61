"""Hypothesis strategies for event streams.

Streams are lists of event dicts whose timestamps never decrease and are multiples of
:data:`STEP` (0.25 s), so ``t - window`` is exact for windows that are multiples of it too and
events land exactly on window edges and bucket boundaries. Steps of zero (equal timestamps) and
long gaps are frequent. Float fields draw from a small per-stream pool as well as freshly, so
equal values (zero variance, exactly balanced buy and sell volume) are common, and magnitudes
span many orders (tiny and huge values in the same stream).

* :func:`timestamps` and :func:`event_streams` are generic: any schema, with per-field
  overrides.
* :func:`ticker_streams`, :func:`trade_streams` and :func:`l2_book_streams` generate valid
  streams for the standard ``ticker``, ``trades`` and ``l2_book`` schemas (by field names;
  the core never imports the plugin that defines them).

Hypothesis must be installed (it is a development dependency, not a runtime one).

>>> from hypothesis import given, settings
>>> @settings(max_examples=5, derandomize=True, database=None)
... @given(trade_streams(max_size=5))
... def check(trades):
...     assert all(a["timestamp"] <= b["timestamp"] for a, b in zip(trades, trades[1:]))
>>> check()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

from featurizer._events import Event, Schema

__all__ = [
    "STEP",
    "event_streams",
    "l2_book_streams",
    "pooled",
    "positive_floats",
    "ticker_streams",
    "timestamps",
    "trade_streams",
]

STEP = 0.25
"""Every generated timestamp is a multiple of this many seconds."""

_EPOCH = 1_600_000_000.0


def positive_floats(
    *, min_value: float = 1e-100, max_value: float = 1e100
) -> st.SearchStrategy[float]:
    """Finite positive floats across many magnitudes, with simple values mixed in.

    :param min_value: the smallest value (inclusive).
    :param max_value: the largest value (inclusive).
    """
    simple = st.sampled_from([0.25, 0.5, 1.0, 1.5, 3.0, 100.0, 100.25, 0.1, 1e-3, 30_000.5])
    return st.one_of(
        simple.filter(lambda x: min_value <= x <= max_value),
        st.floats(min_value=min_value, max_value=max_value, allow_nan=False, allow_infinity=False),
        st.floats(min_value=1.0, max_value=1000.0).filter(lambda x: min_value <= x <= max_value),
    )


@st.composite
def pooled(
    draw: st.DrawFn, base: st.SearchStrategy[Any], *, max_pool: int = 3
) -> st.SearchStrategy[Any]:
    """A strategy drawing from a small pool of ``base`` values, or from ``base`` directly.

    Draw it once per stream and use the result for each element: values repeat often.

    :param base: the values' strategy.
    :param max_pool: the most distinct pooled values.
    """
    pool = draw(st.lists(base, min_size=1, max_size=max_pool))
    fresh = draw(st.booleans())
    return st.sampled_from(pool) | base if fresh else st.sampled_from(pool)


@st.composite
def timestamps(
    draw: st.DrawFn,
    *,
    min_size: int = 0,
    max_size: int = 40,
    max_gap: float = 10_000.0,
) -> list[float]:
    """Non-decreasing timestamps, multiples of :data:`STEP`.

    Steps are zero (equal timestamps), small (a few :data:`STEP`), medium, or long gaps.

    :param min_size: the fewest timestamps.
    :param max_size: the most timestamps.
    :param max_gap: the longest step between two timestamps, in seconds.
    """
    size = draw(st.integers(min_size, max_size))
    start = draw(st.sampled_from([0.0, _EPOCH]))
    max_steps = max(1, int(max_gap / STEP))
    step = st.one_of(
        st.just(0),
        st.integers(1, 4),
        st.integers(1, min(40, max_steps)),
        st.integers(1, max_steps),
    )
    ticks = 0
    out = []
    for _ in range(size):
        ticks += draw(step)
        out.append(start + ticks * STEP)
    return out


def _default_field(name: str, kind: type) -> st.SearchStrategy[Any]:
    if kind is float:
        return st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False)
    if kind is bool:
        return st.booleans()
    if kind is int:
        return st.integers(-(2**63), 2**63 - 1)
    if kind is str:
        return st.text(max_size=8)
    raise TypeError(
        f"no default strategy for field {name!r} of type {kind.__name__}; pass one in fields= "
        f"(defaults exist for float, int, str and bool)"
    )


@st.composite
def event_streams(
    draw: st.DrawFn,
    schema: Schema,
    *,
    fields: Mapping[str, st.SearchStrategy[Any]] | None = None,
    min_size: int = 0,
    max_size: int = 40,
    max_gap: float = 10_000.0,
) -> list[Event]:
    """Streams of events of ``schema``, timestamps from :func:`timestamps`.

    ``receipt_timestamp`` is the timestamp plus a small non-negative multiple of :data:`STEP`.

    :param schema: the definition's fields (``event_schema()``), timestamps excluded.
    :param fields: a strategy per field name overriding the default for its type.
    :param min_size: the fewest events.
    :param max_size: the most events.
    :param max_gap: the longest step between two timestamps, in seconds.
    :raises TypeError: for a field of a type without a default and no override.
    """
    overrides = dict(fields or {})
    strategies = {
        name: overrides[name] if name in overrides else _default_field(name, kind)
        for name, kind in schema.items()
    }
    times = draw(timestamps(min_size=min_size, max_size=max_size, max_gap=max_gap))
    latency = st.integers(0, 4)
    events = []
    for ts in times:
        event: Event = {"timestamp": ts, "receipt_timestamp": ts + draw(latency) * STEP}
        for name, strategy in strategies.items():
            event[name] = draw(strategy)
        events.append(event)
    return events


@st.composite
def ticker_streams(
    draw: st.DrawFn,
    *,
    min_size: int = 0,
    max_size: int = 40,
    max_gap: float = 10_000.0,
    prices: st.SearchStrategy[float] | None = None,
    sizes: st.SearchStrategy[float] | None = None,
) -> list[Event]:
    """Valid ``ticker`` streams: ``bid``, ``ask >= bid``, ``bid_size``, ``ask_size``.

    Sizes include ``0.0`` (an empty side of the book, as exchanges report it) unless
    ``sizes`` says otherwise: a feature dividing by a size must handle it.

    :param min_size: the fewest events.
    :param max_size: the most events.
    :param max_gap: the longest step between two timestamps, in seconds.
    :param prices: the bid prices (default :func:`positive_floats`).
    :param sizes: the bid and ask sizes (default ``0.0`` or :func:`positive_floats`).
    """
    bid = draw(pooled(positive_floats() if prices is None else prices))
    spread = draw(pooled(st.just(0.0) | positive_floats()))
    size = draw(pooled(st.just(0.0) | positive_floats() if sizes is None else sizes))
    events = draw(
        event_streams(
            {"bid": float, "spread": float, "bid_size": float, "ask_size": float},
            fields={"bid": bid, "spread": spread, "bid_size": size, "ask_size": size},
            min_size=min_size,
            max_size=max_size,
            max_gap=max_gap,
        )
    )
    for event in events:
        event["ask"] = event["bid"] + event.pop("spread")
    return events


@st.composite
def trade_streams(
    draw: st.DrawFn,
    *,
    min_size: int = 0,
    max_size: int = 40,
    max_gap: float = 10_000.0,
    prices: st.SearchStrategy[float] | None = None,
    amounts: st.SearchStrategy[float] | None = None,
) -> list[Event]:
    """Valid ``trades`` streams: ``price``, ``amount``, ``side`` (buy/sell), ``trade_id``.

    Amounts come from a small pool, so windows with exactly equal buy and sell volume are
    common.

    :param min_size: the fewest events.
    :param max_size: the most events.
    :param max_gap: the longest step between two timestamps, in seconds.
    :param prices: the prices (default :func:`positive_floats`).
    :param amounts: the amounts (default :func:`positive_floats`).
    """
    events = draw(
        event_streams(
            {"price": float, "amount": float, "side": str},
            fields={
                "price": draw(pooled(positive_floats() if prices is None else prices)),
                "amount": draw(pooled(positive_floats() if amounts is None else amounts)),
                "side": st.sampled_from(["buy", "sell"]),
            },
            min_size=min_size,
            max_size=max_size,
            max_gap=max_gap,
        )
    )
    for number, event in enumerate(events):
        event["trade_id"] = str(number)
    return events


_KINDS = ("delta",) * 6 + ("snapshot",) * 2 + ("gap",)


@st.composite
def l2_book_streams(
    draw: st.DrawFn,
    *,
    min_size: int = 0,
    max_size: int = 40,
    max_gap: float = 10_000.0,
    max_levels: int = 8,
    price_levels: int = 12,
) -> list[Event]:
    """Valid ``l2_book`` streams: snapshots, deltas and gap markers.

    Prices come from a per-stream grid (bids below asks) at one of several magnitudes, so
    deltas often update or remove (size ``0.0``) existing levels, and levels beyond the top
    ones exist. Streams may start with deltas (before any snapshot); snapshots may have empty
    sides; gap markers have empty sides. ``sequence`` increases by one per message.

    :param min_size: the fewest messages.
    :param max_size: the most messages.
    :param max_gap: the longest step between two timestamps, in seconds.
    :param max_levels: the most levels per side in one message.
    :param price_levels: the number of distinct prices per side.
    """
    times = draw(timestamps(min_size=min_size, max_size=max_size, max_gap=max_gap))
    scale = draw(st.sampled_from([1e-20, 0.01, 1.0, 1e4, 1e20]))
    tick = draw(st.sampled_from([0.5, 0.01, 1.0]))
    bid_prices = [scale * (100.0 - k * tick) for k in range(price_levels)]
    ask_prices = [scale * (100.0 + tick + k * tick) for k in range(price_levels)]
    size = draw(pooled(positive_floats(min_value=1e-12, max_value=1e12)))
    sizes = {"snapshot": size, "delta": st.just(0.0) | size}
    levels = {
        (kind, side): st.lists(
            st.tuples(st.sampled_from(prices), sizes[kind]), max_size=max_levels
        ).map(tuple)
        for kind in sizes
        for side, prices in (("bids", bid_prices), ("asks", ask_prices))
    }
    kinds = st.sampled_from(_KINDS)
    events = []
    for sequence, ts in enumerate(times):
        kind = draw(kinds)
        gap = kind == "gap"
        events.append(
            {
                "timestamp": ts,
                "receipt_timestamp": ts,
                "bids": () if gap else draw(levels[kind, "bids"]),
                "asks": () if gap else draw(levels[kind, "asks"]),
                "sequence": sequence,
                "is_snapshot": kind == "snapshot",
                "gap": gap,
            }
        )
    return events
