"""Brute-force reference implementations of every standard feature, for tests.

Each function takes the events of a feature's one dependency, in order, and the feature's
params as keyword arguments, and returns the events the feature must produce. They rebuild
every window, bar and book from scratch, and compute sums and ratios with
:class:`fractions.Fraction` before a single final rounding, so they are slow (quadratic) and
plainly right. The incremental features match them bit for bit: their windowed sums are exact
(:mod:`featurizer_features._exact`), and ``int / int`` division rounds correctly just as
``float(Fraction)`` does.

Features over features compose: ``volatility(mid_price(ticks), window=5.0)`` or
``mid_price_l2(l2_snapshot(book, depth=10))``.

>>> ticks = [{"timestamp": float(t), "receipt_timestamp": float(t), "bid": bid, "ask": bid + 2.0,
...           "bid_size": 1.0, "ask_size": 1.0} for t, bid in enumerate([99.0, 100.0, 104.0])]
>>> [e["volatility"] for e in volatility(mid_price(ticks), window=2.0)]
[0.0, 0.5, 2.0]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from featurizer import Event

__all__ = [
    "REFERENCES",
    "imbalance",
    "l2_snapshot",
    "mid_price",
    "mid_price_l2",
    "ohlcv",
    "order_book_imbalance",
    "population_stddev",
    "relative_spread",
    "trade_volume_imbalance",
    "trailing_window",
    "volatility",
    "volume_weighted_price",
    "vwap",
]

Level = tuple[float, float]


def _out(event: Event, **fields: Any) -> Event:
    return {
        "timestamp": event["timestamp"],
        "receipt_timestamp": event["receipt_timestamp"],
        **fields,
    }


def trailing_window(events: Sequence[Event], index: int, window: float) -> list[Event]:
    """The events up to ``events[index]`` (included) with ``timestamp > t - window``.

    ``t`` is ``events[index]``'s timestamp and ``t - window`` is computed in float.

    :param events: the events, timestamps non-decreasing.
    :param index: the position of the event whose window to return.
    :param window: the window length in seconds.
    """
    horizon = events[index]["timestamp"] - window
    return [event for event in events[: index + 1] if event["timestamp"] > horizon]


def population_stddev(values: Sequence[float]) -> float:
    """``sqrt(float(pvariance))`` with the population variance computed exactly.

    :param values: at least one finite float.
    """
    exact = [Fraction(value) for value in values]
    mean = sum(exact, Fraction(0)) / len(exact)
    variance = sum(((value - mean) ** 2 for value in exact), Fraction(0)) / len(exact)
    return math.sqrt(float(variance))


def imbalance(trades: Sequence[Event]) -> float:
    """``(buy - sell) / (buy + sell)`` of the traded amounts, rounded once; ``0.0`` if both are 0.

    A trade counts as a buy when its ``side`` is ``"buy"``, as a sell otherwise.
    """
    buy = sum((Fraction(t["amount"]) for t in trades if t["side"] == "buy"), Fraction(0))
    sell = sum((Fraction(t["amount"]) for t in trades if t["side"] != "buy"), Fraction(0))
    total = buy + sell
    return float((buy - sell) / total) if total else 0.0


def volume_weighted_price(trades: Sequence[Event]) -> float | None:
    """``sum(price * amount) / sum(amount)`` rounded once; ``None`` when the amounts sum to 0."""
    notional = sum((Fraction(t["price"]) * Fraction(t["amount"]) for t in trades), Fraction(0))
    amount = sum((Fraction(t["amount"]) for t in trades), Fraction(0))
    return float(notional / amount) if amount else None


def mid_price(events: Sequence[Event]) -> list[Event]:
    """``mid_price`` over ``ticker`` events: ``(bid + ask) / 2.0`` each."""
    return [_out(e, mid_price=(e["bid"] + e["ask"]) / 2.0) for e in events]


def relative_spread(events: Sequence[Event]) -> list[Event]:
    """``relative_spread`` over ``ticker`` events; none where the mid price is zero."""
    out = []
    for e in events:
        mid = (e["bid"] + e["ask"]) / 2.0
        if mid != 0.0:
            out.append(_out(e, relative_spread=(e["ask"] - e["bid"]) / mid))
    return out


def volatility(events: Sequence[Event], window: float = 60.0) -> list[Event]:
    """``volatility`` over ``mid_price`` events: population stddev of each trailing window."""
    return [
        _out(
            e,
            volatility=population_stddev(
                [w["mid_price"] for w in trailing_window(events, i, window)]
            ),
        )
        for i, e in enumerate(events)
    ]


def trade_volume_imbalance(events: Sequence[Event], window: float = 60.0) -> list[Event]:
    """``trade_volume_imbalance`` over ``trades`` events, each window recomputed."""
    return [
        _out(e, tvi=imbalance(trailing_window(events, i, window))) for i, e in enumerate(events)
    ]


def vwap(events: Sequence[Event], window: float = 60.0) -> list[Event]:
    """``vwap`` over ``trades`` events; none where the window's amounts sum to zero."""
    out = []
    for i, e in enumerate(events):
        value = volume_weighted_price(trailing_window(events, i, window))
        if value is not None:
            out.append(_out(e, vwap=value))
    return out


def ohlcv(events: Sequence[Event], interval: float = 60.0) -> list[Event]:
    """``ohlcv`` bars over ``trades`` events.

    Trades are split into runs of one bucket (``floor(ts / interval) * interval``, in float;
    a trade whose bucket is not later than its run's joins it); every run but the last gives
    one bar, timestamped with the first trade of the next run.
    """
    starts = [math.floor(e["timestamp"] / interval) * interval for e in events]
    runs: list[list[int]] = []
    for i, start in enumerate(starts):
        if runs and start <= starts[runs[-1][0]]:
            runs[-1].append(i)
        else:
            runs.append([i])
    out = []
    for run, following in itertools.pairwise(runs):
        trades = [events[i] for i in run]
        prices = [t["price"] for t in trades]
        volume = sum((Fraction(t["amount"]) for t in trades), Fraction(0))
        weighted = volume_weighted_price(trades)
        out.append(
            _out(
                events[following[0]],
                open=prices[0],
                high=max(prices),
                low=min(prices),
                close=prices[-1],
                volume=float(volume),
                vwap=prices[-1] if weighted is None else weighted,
                count=len(trades),
                bucket_start=starts[run[0]],
            )
        )
    return out


def _rebuild(messages: Sequence[Event]) -> tuple[dict[float, float], dict[float, float]]:
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for message in messages:
        for book, levels in ((bids, message["bids"]), (asks, message["asks"])):
            for price, size in levels:
                if size == 0.0:
                    book.pop(price, None)
                else:
                    book[price] = size
    return bids, asks


def l2_snapshot(events: Sequence[Event], depth: int = 10) -> list[Event]:
    """``l2_snapshot`` over ``l2_book`` events, each book rebuilt from its last snapshot.

    An event yields an output unless it is a gap marker or no snapshot came since the start or
    the last gap; the book is that snapshot then every delta after it, up to the event.
    """
    out = []
    for i, event in enumerate(events):
        if event["gap"]:
            continue
        start = None
        for j in range(i, -1, -1):
            if events[j]["gap"]:
                break
            if events[j]["is_snapshot"]:
                start = j
                break
        if start is None:
            continue
        bids, asks = _rebuild(events[start : i + 1])
        out.append(
            _out(
                event,
                bids=tuple(sorted(bids.items(), reverse=True)[:depth]),
                asks=tuple(sorted(asks.items())[:depth]),
            )
        )
    return out


def mid_price_l2(events: Sequence[Event]) -> list[Event]:
    """``mid_price_l2`` over ``l2_snapshot`` events; none while a side is empty."""
    out = []
    for e in events:
        if e["bids"] and e["asks"]:
            best_bid = max(price for price, _ in e["bids"])
            best_ask = min(price for price, _ in e["asks"])
            out.append(_out(e, mid_price=(best_bid + best_ask) / 2.0))
    return out


def order_book_imbalance(events: Sequence[Event], depth: int = 5) -> list[Event]:
    """``order_book_imbalance`` over ``l2_snapshot`` events, over their best ``depth`` levels."""
    out = []
    for e in events:
        top_bids: list[Level] = sorted(e["bids"], reverse=True)[:depth]
        top_asks: list[Level] = sorted(e["asks"])[:depth]
        bid = sum((Fraction(size) for _, size in top_bids), Fraction(0))
        ask = sum((Fraction(size) for _, size in top_asks), Fraction(0))
        total = bid + ask
        out.append(_out(e, obi=float((bid - ask) / total) if total else 0.0))
    return out


REFERENCES: dict[str, Callable[..., list[Event]]] = {
    "mid_price": mid_price,
    "mid_price_l2": mid_price_l2,
    "relative_spread": relative_spread,
    "volatility": volatility,
    "trade_volume_imbalance": trade_volume_imbalance,
    "ohlcv": ohlcv,
    "l2_snapshot": l2_snapshot,
    "order_book_imbalance": order_book_imbalance,
    "vwap": vwap,
}
"""Feature name to its reference function."""
