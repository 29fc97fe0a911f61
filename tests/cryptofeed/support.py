"""Helpers of the cryptofeed emitter tests: subscribing, expected events, book rebuilding."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from featurizer_cryptofeed import BookTickerSource, CryptofeedEventEmitter, FeedGapsSource
from featurizer_features import L2BookSource, TickerSource, TradesSource

from featurizer import Event, Feature
from tests.cryptofeed.fake_binance import FakeBinance, Sent, price_text, qty_text

SOURCES = {
    "ticker": TickerSource,
    "book_ticker": BookTickerSource,
    "trades": TradesSource,
    "l2_book": L2BookSource,
    "feed_gaps": FeedGapsSource,
}


def source(channel: str, symbol: str, exchange: str = "BINANCE") -> Feature:
    """The data-source feature of one stream."""
    return Feature.create(SOURCES[channel], {"exchange": exchange, "symbol": symbol})


def subscribe(
    emitter: CryptofeedEventEmitter, channels: Iterable[str], symbols: Iterable[str]
) -> dict[tuple[str, str], list[Event]]:
    """Register one collecting callback per (channel, symbol); returns the lists."""
    received: dict[tuple[str, str], list[Event]] = {}
    for channel in channels:
        for symbol in symbols:
            events: list[Event] = []
            emitter.register_callback(source(channel, symbol), events.append)
            received[(channel, symbol)] = events
    return received


def expected_trade(sent: Sent) -> dict[str, Any]:
    """The trade event the emitter must deliver for a sent ``aggTrade`` message."""
    data = sent.step.data
    return {
        "timestamp": data["T"] / 1000.0,
        "price": float(data["p"]),
        "amount": float(data["q"]),
        "side": "sell" if data["m"] else "buy",
        "trade_id": str(data["a"]),
    }


def expected_ticker(sent: Sent) -> dict[str, Any]:
    """The ``ticker`` fields the emitter must deliver for a sent ``bookTicker`` message."""
    data = sent.step.data
    return {"bid": float(data["b"]), "ask": float(data["a"])}


def expected_sizes(sent: Sent) -> tuple[float, float]:
    """The ``book_ticker`` sizes the emitter must deliver for a sent ``bookTicker`` message."""
    data = sent.step.data
    return float(data["B"]), float(data["A"])


def without(event: Event, *fields: str) -> dict[str, Any]:
    """``event`` without ``fields``."""
    return {k: v for k, v in event.items() if k not in fields}


def rebuild_book(events: Sequence[Event]) -> dict[str, dict[float, float]] | None:
    """The full book from ``l2_book`` events (``None`` while out of sync after a gap)."""
    book: dict[str, dict[float, float]] | None = None
    for event in events:
        if event["gap"]:
            book = None
        elif event["is_snapshot"]:
            book = {"bids": dict(event["bids"]), "asks": dict(event["asks"])}
        elif book is not None:
            for side in ("bids", "asks"):
                for price, size in event[side]:
                    if size == 0.0:
                        book[side].pop(price, None)
                    else:
                        book[side][price] = size
    return book


def book_after(fake: FakeBinance, symbol: str, last_step: int) -> dict[str, dict[float, float]]:
    """The server's book of ``symbol`` after script steps ``0..last_step`` were applied."""
    levels = {side: dict(book) for side, book in fake.script.initial_books[symbol].items()}
    for step in fake.script.steps[: last_step + 1]:
        if step.symbol == symbol and step.kind in ("depth", "gap", "bad_depth"):
            for side, price, units in step.changes:
                if units == 0:
                    levels[side].pop(price, None)
                else:
                    levels[side][price] = units
    return {
        side: {float(price_text(p)): float(qty_text(q)) for p, q in book.items()}
        for side, book in levels.items()
    }


def top(book: Mapping[str, Mapping[float, float]], depth: int) -> dict[str, list[list[float]]]:
    """The best ``depth`` levels of each side, as JSON writes them."""
    return {
        "bids": [[p, q] for p, q in sorted(book["bids"].items(), reverse=True)[:depth]],
        "asks": [[p, q] for p, q in sorted(book["asks"].items())[:depth]],
    }


def client_sockets(server_ports: Iterable[int]) -> list[str]:
    """TCP sockets this process holds open *to* ``server_ports`` (Linux ``/proc``).

    Only sockets whose file descriptor is still open count: a cleanly closed client
    connection lingers in the kernel (TIME_WAIT) without belonging to the process.
    """
    import os

    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = {f"{port:04X}" for port in server_ports}
    found = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]  # noqa: SIM115
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = fields[2].rsplit(":", 1)[1]
            if remote_port in ports and fields[9] in inodes:
                found.append(line.strip())
    return found


def books_settled(
    fake: FakeBinance, received: Mapping[tuple[str, str], Sequence[Event]], symbols: Iterable[str]
) -> Callable[[], bool]:
    """A predicate: the books rebuilt from ``received`` equal the server's books.

    Messages arrive in order on one connection, but the last depth updates of a script may
    follow its last trade: wait for this too before comparing.
    """
    wanted = list(symbols)

    def settled() -> bool:
        return all(rebuild_book(list(received[("l2_book", s)])) == fake.book(s) for s in wanted)

    return settled
