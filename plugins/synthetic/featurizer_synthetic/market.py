"""The synthetic market: a seeded, deterministic generator of ticker, trades and L2 book events.

Each symbol is simulated by two independent processes, each with its own ``random.Random``
seeded from ``(seed, symbol, process)`` through SHA-256:

* the **top** process: Poisson arrivals at ``ticker + trades`` events per second of event time.
  An arrival is a *quote update* with probability ``ticker / (ticker + trades)`` (the reference
  price takes a random-walk step in ticks, the spread is redrawn between 1 and 4 ticks, the best
  bid and ask sizes are redrawn) or else a *trade* (aggressor side buy or sell with equal odds,
  a Pareto-distributed amount capped at the size of the best level it hits; a trade that takes
  the whole level removes it, so the best price moves one tick away until the next quote
  update). Each quote update emits one ``ticker`` event (the new best bid and offer).
* the **deep** process (only when the symbol's ``l2_book`` is generated): Poisson arrivals at
  ``l2_book`` events per second, each resetting the size of one level below the top.

At ``start_time`` each symbol emits its ``l2_book`` snapshot (``sequence`` 1) and a ``ticker``
of the opening quote. The ``l2_book`` stream then publishes every change of the book (from
quote updates, trades and deep updates) as a delta of the changed levels, ``size == 0.0``
removing a level, ``sequence`` increasing by one per message. The book is dense: ``depth``
consecutive ticks on each side of the spread. Trade ids are ``"1"``, ``"2"``, ... per symbol.

Because the top process never reads the deep book, and every symbol has its own generators,
**each stream is the same whichever other streams are generated alongside it**: the
``ticker`` of ``BTC-USDT`` does not change when ``ETH-USDT`` or the ``l2_book`` is added. Event
timestamps start at ``start_time`` and ``receipt_timestamp`` is the timestamp plus a constant
latency per stream (0.5 to 5 ms, derived from the symbol and channel).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeAlias

import attrs

from featurizer import Event
from featurizer_synthetic.instruments import Instrument, stable_seed, stable_unit

__all__ = [
    "CHANNELS",
    "DEFAULT_START_TIME",
    "ChannelRates",
    "Levels",
    "StreamKey",
    "SyntheticMarket",
]

CHANNELS = ("ticker", "trades", "l2_book")
"""The data-source definitions the synthetic market generates."""

DEFAULT_START_TIME = 1_704_067_200.0
"""2024-01-01T00:00:00Z, the default timestamp of the first events."""

StreamKey: TypeAlias = tuple[str, str]
"""``(channel, symbol)``: one generated stream."""

Levels: TypeAlias = tuple[tuple[float, float], ...]
"""``(price, size)`` levels of one side of a book, best first."""

_TRADE_ALPHA = 1.2
"""Pareto tail index of trade amounts (lower is heavier)."""
_TRADE_EXPONENT = -1.0 / _TRADE_ALPHA


def _check_rate(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"rate {attribute.name!r} must be a number, received {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"rate {attribute.name!r} must be a finite number >= 0, received {value!r}"
        )


@attrs.frozen(kw_only=True)
class ChannelRates:
    """Mean events per second of event time, per symbol.

    :param ticker: quote updates (one ``ticker`` event each).
    :param trades: trades (one ``trades`` event each).
    :param l2_book: updates of levels below the top of the book. The ``l2_book`` stream also
        carries a delta for every quote update and trade, so its rate is roughly the sum of
        the three.
    :raises ValueError: if a rate is negative or not finite, or ``ticker + trades`` is zero.
    """

    ticker: float = attrs.field(default=65.0, validator=_check_rate)
    trades: float = attrs.field(default=35.0, validator=_check_rate)
    l2_book: float = attrs.field(default=50.0, validator=_check_rate)

    def __attrs_post_init__(self) -> None:
        if not self.ticker + self.trades > 0:
            raise ValueError(
                f"the ticker and trades rates cannot both be zero, received ticker="
                f"{self.ticker!r}, trades={self.trades!r}"
            )


def _table(weights: Mapping[int, int]) -> tuple[int, ...]:
    """A lookup table of 100 entries: ``table[int(u * 100)]`` draws with percent ``weights``."""
    table = tuple(value for value, percent in weights.items() for _ in range(percent))
    assert len(table) == 100
    return table


_SPREADS = _table({1: 55, 2: 25, 3: 13, 4: 7})
"""Spread of a quote update in ticks: always at least one tick."""
_STEPS = _table({0: 60, 1: 18, -1: 18, 2: 2, -2: 2})
"""Random-walk step of the reference price at a quote update, in ticks."""

_Out: TypeAlias = list[tuple[StreamKey, Event]]


class _Symbol:
    """The state and the two processes of one simulated instrument.

    ``fire_top`` and ``fire_deep`` apply one arrival at its time, append the events it causes
    to ``out`` (a buffer shared by the whole market) and return the time of the next arrival.
    """

    def __init__(
        self,
        instrument: Instrument,
        channels: set[str],
        out: _Out,
        *,
        seed: int,
        rates: ChannelRates,
        depth: int,
        start_time: float,
    ) -> None:
        symbol = instrument.symbol
        self.instrument = instrument
        self.out = out
        self.start_time = start_time
        self.ticker_key: StreamKey | None = ("ticker", symbol) if "ticker" in channels else None
        self.trades_key: StreamKey | None = ("trades", symbol) if "trades" in channels else None
        self.l2_key: StreamKey | None = ("l2_book", symbol) if "l2_book" in channels else None
        latency = {
            channel: 0.0005 + 0.0045 * stable_unit(symbol, channel, "latency")
            for channel in CHANNELS
        }
        self.ticker_latency = latency["ticker"]
        self.trades_latency = latency["trades"]
        self.l2_latency = latency["l2_book"]
        self.ps = 10**instrument.price_decimals
        self.ls = 10**instrument.size_decimals
        self.top_mean = instrument.top_lots
        self.deep_mean = instrument.deep_lots
        self.min_trade = instrument.min_trade_lots
        self.depth = depth
        self.min_ref = depth + 4  # keeps every level of the book at a positive price

        self.rnd = random.Random(stable_seed(seed, symbol, "top")).random
        self.top_rate = float(rates.ticker + rates.trades)
        self.p_ticker = rates.ticker / self.top_rate
        self.ref = instrument.start_ticks
        spread = _SPREADS[int(self.rnd() * 100)]
        self.bid = self.ref - spread // 2
        self.ask = self.bid + spread
        self.bid_lots = self._top_lots()
        self.ask_lots = self._top_lots()
        self.trade_id = 0
        self.next_top = start_time - math.log(1.0 - self.rnd()) / self.top_rate

        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.sequence = 0
        self.next_deep = math.inf
        self.deep_rate = 0.0
        self.deep_rnd = random.Random(stable_seed(seed, symbol, "deep")).random
        if self.l2_key is not None:
            self.bids[self.bid] = self.bid_lots
            self.asks[self.ask] = self.ask_lots
            for k in range(1, depth):
                self.bids[self.bid - k] = self._deep_lots()
                self.asks[self.ask + k] = self._deep_lots()
            if rates.l2_book > 0 and depth > 1:
                self.deep_rate = float(rates.l2_book)
                self.next_deep = start_time - math.log(1.0 - self.deep_rnd()) / self.deep_rate

    def _top_lots(self) -> int:
        return 1 + int(-math.log(1.0 - self.rnd()) * self.top_mean)

    def _deep_lots(self) -> int:
        return 1 + int(-math.log(1.0 - self.deep_rnd()) * self.deep_mean)

    def opening(self) -> None:
        """Append the events at ``start_time``: the book snapshot, then the first ticker."""
        t = self.start_time
        if self.l2_key is not None:
            self.sequence += 1
            ps, ls = self.ps, self.ls
            bids = sorted(self.bids.items(), reverse=True)
            asks = sorted(self.asks.items())
            self.out.append(
                (
                    self.l2_key,
                    {
                        "timestamp": t,
                        "receipt_timestamp": t + self.l2_latency,
                        "bids": tuple([(i / ps, n / ls) for i, n in bids]),
                        "asks": tuple([(i / ps, n / ls) for i, n in asks]),
                        "sequence": self.sequence,
                        "is_snapshot": True,
                        "gap": False,
                    },
                )
            )
        if self.ticker_key is not None:
            self.out.append((self.ticker_key, self._ticker(t)))

    def _ticker(self, t: float) -> Event:
        ps, ls = self.ps, self.ls
        return {
            "timestamp": t,
            "receipt_timestamp": t + self.ticker_latency,
            "bid": self.bid / ps,
            "ask": self.ask / ps,
            "bid_size": self.bid_lots / ls,
            "ask_size": self.ask_lots / ls,
        }

    def _delta(self, t: float, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> Event:
        self.sequence += 1
        ps, ls = self.ps, self.ls
        if len(bids) > 1:
            bids.sort(reverse=True)
        if len(asks) > 1:
            asks.sort()
        return {
            "timestamp": t,
            "receipt_timestamp": t + self.l2_latency,
            "bids": tuple([(i / ps, n / ls) for i, n in bids]),
            "asks": tuple([(i / ps, n / ls) for i, n in asks]),
            "sequence": self.sequence,
            "is_snapshot": False,
            "gap": False,
        }

    def _move_side(
        self, levels: dict[int, int], old: int, new: int, top_lots: int, away: int
    ) -> list[tuple[int, int]]:
        """Shift one side's window of ``depth`` levels from top ``old`` to top ``new``.

        ``away`` is the direction of deeper levels: ``-1`` for bids, ``+1`` for asks. Levels
        leaving the window are removed, levels entering it get a fresh deep size, and the new
        top gets ``top_lots``.

        :returns: the changed ``(ticks, lots)`` levels, ``lots == 0`` for a removed one.
        """
        depth = self.depth
        changes: list[tuple[int, int]] = []
        shift = (new - old) * away
        if shift >= depth or -shift >= depth:
            for idx in levels:
                changes.append((idx, 0))
            levels.clear()
            for k in range(1, depth):
                idx = new + away * k
                levels[idx] = lots = self._deep_lots()
                changes.append((idx, lots))
        elif shift > 0:
            for k in range(shift):
                idx = old + away * k
                del levels[idx]
                changes.append((idx, 0))
            for k in range(depth - shift, depth):
                idx = new + away * k
                levels[idx] = lots = self._deep_lots()
                changes.append((idx, lots))
        elif shift < 0:
            for k in range(depth + shift, depth):
                idx = old + away * k
                del levels[idx]
                changes.append((idx, 0))
            for k in range(1, -shift):
                idx = new + away * k
                levels[idx] = lots = self._deep_lots()
                changes.append((idx, lots))
        if levels.get(new) != top_lots:
            levels[new] = top_lots
            changes.append((new, top_lots))
        return changes

    def fire_top(self, t: float) -> float:
        """Apply the top process's arrival at ``t`` (a quote update or a trade)."""
        rnd = self.rnd
        log = math.log
        old_bid, old_ask = self.bid, self.ask
        if rnd() < self.p_ticker:
            self.ref = ref = max(self.ref + _STEPS[int(rnd() * 100)], self.min_ref)
            spread = _SPREADS[int(rnd() * 100)]
            self.bid = bid = ref - spread // 2
            self.ask = ask = bid + spread
            top_mean = self.top_mean
            self.bid_lots = bid_lots = 1 + int(-log(1.0 - rnd()) * top_mean)
            self.ask_lots = ask_lots = 1 + int(-log(1.0 - rnd()) * top_mean)
            if self.l2_key is not None:
                bids = self._move_side(self.bids, old_bid, bid, bid_lots, -1)
                asks = self._move_side(self.asks, old_ask, ask, ask_lots, 1)
                if bids or asks:
                    self.out.append((self.l2_key, self._delta(t, bids, asks)))
            if self.ticker_key is not None:
                ps, ls = self.ps, self.ls
                self.out.append(
                    (
                        self.ticker_key,
                        {
                            "timestamp": t,
                            "receipt_timestamp": t + self.ticker_latency,
                            "bid": bid / ps,
                            "ask": ask / ps,
                            "bid_size": bid_lots / ls,
                            "ask_size": ask_lots / ls,
                        },
                    )
                )
        else:
            buy = rnd() < 0.5
            lots = int(self.min_trade * (1.0 - rnd()) ** _TRADE_EXPONENT)
            if buy:
                price = old_ask
                if lots >= self.ask_lots:
                    lots = self.ask_lots
                    self.ask += 1
                    self.ask_lots = self._top_lots()
                else:
                    self.ask_lots -= lots
            else:
                price = old_bid
                if lots >= self.bid_lots:
                    lots = self.bid_lots
                    self.bid -= 1
                    self.bid_lots = self._top_lots()
                else:
                    self.bid_lots -= lots
            self.trade_id += 1
            if self.trades_key is not None:
                self.out.append(
                    (
                        self.trades_key,
                        {
                            "timestamp": t,
                            "receipt_timestamp": t + self.trades_latency,
                            "price": price / self.ps,
                            "amount": lots / self.ls,
                            "side": "buy" if buy else "sell",
                            "trade_id": str(self.trade_id),
                        },
                    )
                )
            if self.l2_key is not None:
                if buy:
                    changes = self._move_side(self.asks, old_ask, self.ask, self.ask_lots, 1)
                    self.out.append((self.l2_key, self._delta(t, [], changes)))
                else:
                    changes = self._move_side(self.bids, old_bid, self.bid, self.bid_lots, -1)
                    self.out.append((self.l2_key, self._delta(t, changes, [])))
        return t - log(1.0 - rnd()) / self.top_rate

    def fire_deep(self, t: float) -> float:
        """Apply the deep process's arrival at ``t``: a new size for one level below the top."""
        assert self.l2_key is not None
        rnd = self.deep_rnd
        k = 1 + int(rnd() * (self.depth - 1))
        lots = self._deep_lots()
        if rnd() < 0.5:
            idx = self.bid - k
            self.bids[idx] = lots
            delta = self._delta(t, [(idx, lots)], [])
        else:
            idx = self.ask + k
            self.asks[idx] = lots
            delta = self._delta(t, [], [(idx, lots)])
        self.out.append((self.l2_key, delta))
        return t - math.log(1.0 - rnd()) / self.deep_rate


class SyntheticMarket:
    """A seeded, deterministic, endless market for the requested ``(channel, symbol)`` streams.

    Events are produced lazily by :meth:`events`, merged across symbols and channels in
    timestamp order; ties keep a stable order (symbols sorted by name, then the book delta
    before the ticker of the same quote update, and a trade before the delta it causes).
    Only the requested streams are emitted, and each stream is identical whichever other
    streams are requested with it (see the module documentation for the model).

    :param streams: ``(channel, symbol)`` pairs; channels among :data:`CHANNELS`.
    :param seed: the seed; the same seed and options give the same events in every run.
    :param start_time: the timestamp of the first events (seconds since the epoch).
    :param rates: mean events per second of event time per symbol.
    :param depth: levels per side of the L2 book.
    :param instruments: instrument constants by symbol; others derive from their symbol
        (:meth:`Instrument.from_symbol`).
    :raises ValueError: for an unknown channel or a depth below 1.

    >>> import itertools
    >>> market = SyntheticMarket([("ticker", "BTC-USDT"), ("trades", "BTC-USDT")], seed=7)
    >>> [key for key, event in itertools.islice(market.events(), 3)]  # doctest: +ELLIPSIS
    [('ticker', 'BTC-USDT'), ...]
    """

    def __init__(
        self,
        streams: Iterable[StreamKey],
        *,
        seed: int = 0,
        start_time: float = DEFAULT_START_TIME,
        rates: ChannelRates | None = None,
        depth: int = 10,
        instruments: Mapping[str, Instrument] | None = None,
    ) -> None:
        wanted = sorted(set(streams))
        for channel, symbol in wanted:
            if channel not in CHANNELS:
                raise ValueError(
                    f"the synthetic market generates {', '.join(map(repr, CHANNELS))}; "
                    f"received channel {channel!r} for symbol {symbol!r}"
                )
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1, received {depth!r}")
        self.streams: tuple[StreamKey, ...] = tuple(wanted)
        self.seed = seed
        self.start_time = float(start_time)
        self.rates = rates or ChannelRates()
        self.depth = depth
        channels_by_symbol: dict[str, set[str]] = {}
        for channel, symbol in wanted:
            channels_by_symbol.setdefault(symbol, set()).add(channel)
        known = instruments or {}
        self._out: _Out = []
        self._symbols = {
            symbol: _Symbol(
                known.get(symbol) or Instrument.from_symbol(symbol),
                channels,
                self._out,
                seed=seed,
                rates=self.rates,
                depth=depth,
                start_time=self.start_time,
            )
            for symbol, channels in sorted(channels_by_symbol.items())
        }
        self._started = False

    @property
    def symbols(self) -> tuple[str, ...]:
        """The generated symbols, sorted."""
        return tuple(self._symbols)

    def instrument(self, symbol: str) -> Instrument:
        """The constants of a generated symbol.

        :param symbol: one of :attr:`symbols`.
        """
        return self._symbols[symbol].instrument

    def events(self) -> Iterator[tuple[StreamKey, Event]]:
        """The endless, lazily generated ``(stream, event)`` sequence, in timestamp order.

        A market generates one sequence: call this once (a fresh market restarts from the
        beginning). Stop by ceasing to iterate (``itertools.islice``).

        :returns: an iterator of ``((channel, symbol), event)`` pairs; the stream tuples are
            the same objects for every event of a stream.
        :raises RuntimeError: if called twice.
        """
        if self._started:
            raise RuntimeError("SyntheticMarket.events() can be called once; build a new market")
        self._started = True
        return self._generate()

    def _generate(self) -> Iterator[tuple[StreamKey, Event]]:
        out = self._out
        sims = list(self._symbols.values())
        for sim in sims:
            sim.opening()
        yield from out
        out.clear()
        heap: list[tuple[float, int, Callable[[float], float]]] = []
        for i, sim in enumerate(sims):
            heap.append((sim.next_top, 2 * i, sim.fire_top))
            if sim.next_deep < math.inf:
                heap.append((sim.next_deep, 2 * i + 1, sim.fire_deep))
        if not heap:
            return
        heapq.heapify(heap)
        if len(heap) == 1:
            t, _, fire = heap[0]
            while True:
                t = fire(t)
                if out:
                    yield from out
                    out.clear()
        replace = heapq.heapreplace
        while True:
            t, order, fire = heap[0]
            replace(heap, (fire(t), order, fire))
            if out:
                yield from out
                out.clear()

    def top(self, symbol: str) -> tuple[float, float, float, float]:
        """The current best bid, ask, bid size and ask size of ``symbol``.

        :param symbol: one of :attr:`symbols`.
        :returns: ``(bid, ask, bid_size, ask_size)``.
        """
        sim = self._symbols[symbol]
        return (
            sim.bid / sim.ps,
            sim.ask / sim.ps,
            sim.bid_lots / sim.ls,
            sim.ask_lots / sim.ls,
        )

    def book(self, symbol: str) -> tuple[Levels, Levels]:
        """The current L2 book of ``symbol`` (kept only when its ``l2_book`` is generated).

        :param symbol: a symbol whose ``l2_book`` stream is generated.
        :returns: ``(bids, asks)``, each ``(price, size)`` levels best first.
        :raises ValueError: if the symbol's book is not generated.
        """
        sim = self._symbols.get(symbol)
        if sim is None or sim.l2_key is None:
            raise ValueError(f"the L2 book of {symbol!r} is not generated by this market")
        ps, ls = sim.ps, sim.ls
        return (
            tuple((i / ps, n / ls) for i, n in sorted(sim.bids.items(), reverse=True)),
            tuple((i / ps, n / ls) for i, n in sorted(sim.asks.items())),
        )
