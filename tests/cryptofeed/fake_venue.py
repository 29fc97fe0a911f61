"""A fake exchange on 127.0.0.1 speaking one venue's wire protocol (see ``venues.py``).

The real cryptofeed client talks to it: REST instrument lists over HTTP, the websocket over
``wss://`` (a self-signed certificate). A script of market actions (tickers, trades, book
deltas) and faults (a book message failing the venue's sequence or checksum check, a
malformed book message, garbage, a dropped connection) is played in order and recorded.

It runs in lock-step with the client, so every run of a seed is the same: on each connection
it waits for the client's subscription messages, then sends a book snapshot of every symbol
(as the venues do on subscription), then plays the script from where the last connection
stopped. After a fault that makes the client renew its connection it waits for the client to
close it, so that nothing is sent into a connection the client is abandoning.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs
from aiohttp import WSMsgType, web

from tests.cryptofeed.tls import SelfSignedCertificate

START_MS = 1_700_000_000_000
BASE_PRICES = {0: 3_000_000, 1: 200_000}
"""Mid prices in ticks of 0.01 of the first and second symbol of a script."""

Book = dict[str, dict[int, int]]
"""``{"bids": {price ticks: size units}, "asks": ...}``: ticks of 0.01, units of 0.001."""


def price_text(ticks: int) -> str:
    """Ticks of 0.01 as a decimal string."""
    return f"{ticks // 100}.{ticks % 100:02d}"


def size_text(units: int) -> str:
    """Units of 0.001 as a decimal string."""
    return f"{units // 1000}.{units % 1000:03d}"


@attrs.frozen(kw_only=True)
class Action:
    """One scripted action.

    :param kind: ``ticker``, ``trade``, ``delta``, ``bad_book`` (a delta whose message fails
        the venue's check: wrong checksum, skipped sequence, or malformed), ``garbage`` or
        ``drop``.
    :param symbol: the normalised symbol of market actions.
    :param ms: the exchange time, in milliseconds.
    :param changes: book changes ``(side, price ticks, size units)`` (0 units: removed).
    :param values: ticker ``(bid, ask, bid size, ask size)`` or trade ``(price, amount, side,
        id)``.
    """

    kind: str
    symbol: str | None = None
    ms: int = 0
    changes: tuple[tuple[str, int, int], ...] = ()
    values: tuple[Any, ...] = ()


RESYNC_KINDS = ("bad_book", "garbage")
"""Faults after which the client renews its connection (the venues of these tests recover
their books by subscribing again)."""


class Venue(Protocol):
    """One venue's wire protocol (frames are rendered when they are sent)."""

    exchange: str
    symbols: Mapping[str, str]
    ws_path: str

    def routes(self) -> Mapping[str, Any]:
        """REST path to a JSON payload, or to a callable of the request returning one."""

    def subscribe_messages(self, symbols: int) -> int:
        """How many messages the client sends to subscribe to every channel of ``symbols``."""

    def snapshot(self, symbol: str, book: Book, ms: int) -> list[str]:
        """The frames of a full book."""

    def delta(self, symbol: str, action: Action, book: Book, before: Book, bad: bool) -> list[str]:
        """The frames of a book change (``book``: after it; ``bad``: make it fail the check)."""

    def ticker(self, symbol: str, action: Action) -> str:
        """A ticker frame."""

    def trade(self, symbol: str, action: Action) -> str:
        """A trade frame."""


def generate(
    seed: int,
    symbols: Sequence[str],
    steps: int,
    *,
    specials: Mapping[int, tuple[Any, ...]] | None = None,
    levels: int = 12,
) -> tuple[dict[str, Book], list[Action]]:
    """A seeded script: the initial books and the actions.

    :param specials: actions inserted before step ``i``: ``("bad_book", symbol)``,
        ``("garbage",)``, ``("drop",)``.
    """
    rng = random.Random(seed)
    books: dict[str, Book] = {}
    mids = {}
    for i, symbol in enumerate(symbols):
        mid = BASE_PRICES[i]
        mids[symbol] = mid
        books[symbol] = {
            "bids": {mid - k: rng.randint(1, 5000) for k in range(1, levels + 1)},
            "asks": {mid + k: rng.randint(1, 5000) for k in range(1, levels + 1)},
        }
    initial = {s: {side: dict(b) for side, b in book.items()} for s, book in books.items()}
    actions: list[Action] = []
    trade_id = 500_000
    specials = dict(specials or {})

    def changes_for(symbol: str, one_side: bool = False) -> tuple[tuple[str, int, int], ...]:
        book = books[symbol]
        found: list[tuple[str, int, int]] = []
        sides = (rng.choice(("bids", "asks")),) if one_side else ("bids", "asks")
        for _ in range(rng.randint(1, 3)):
            side = rng.choice(sides)
            offset = rng.randint(1, levels + 4)
            price = mids[symbol] - offset if side == "bids" else mids[symbol] + offset
            if any(p == price for _, p, _ in found):
                continue
            if price in book[side] and len(book[side]) > 4 and rng.random() < 0.3:
                units = 0
            else:
                units = rng.randint(1, 5000)
            found.append((side, price, units))
            if units == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = units
        return tuple(found)

    for i in range(steps):
        ms = START_MS + i * 10
        if i in specials:
            special = specials[i]
            if special[0] == "bad_book":
                actions.append(
                    Action(
                        kind="bad_book",
                        symbol=special[1],
                        ms=ms,
                        changes=changes_for(special[1], one_side=True),
                    )
                )
            else:
                actions.append(Action(kind=special[0], ms=ms))
        symbol = rng.choice(list(symbols))
        roll = rng.random()
        if roll < 0.3:
            book = books[symbol]
            bid, ask = max(book["bids"]), min(book["asks"])
            actions.append(
                Action(
                    kind="ticker",
                    symbol=symbol,
                    ms=ms,
                    values=(bid, ask, book["bids"][bid], book["asks"][ask]),
                )
            )
        elif roll < 0.6:
            trade_id += 1
            price = mids[symbol] + rng.randint(-3, 3)
            side = rng.choice(("buy", "sell"))
            actions.append(
                Action(
                    kind="trade",
                    symbol=symbol,
                    ms=ms,
                    values=(price, rng.randint(1, 9000), side, trade_id),
                )
            )
        else:
            actions.append(Action(kind="delta", symbol=symbol, ms=ms, changes=changes_for(symbol)))
    return initial, actions


@attrs.frozen
class Sent:
    """An action as sent: on which connection, with which frames."""

    action: Action
    connection: int
    frames: tuple[str, ...]


class FakeVenue:
    """Serves ``actions`` in ``venue``'s protocol on two loopback ports.

    :param venue: the protocol.
    :param books: the initial books by normalised symbol.
    :param actions: the script.
    :param certificate: the wss certificate.
    :param subscribed: how many symbols the client subscribes to (default: all); the server
        sends every symbol's frames regardless.
    :param subscribe_messages: how many subscription messages to wait for (default: the
        venue's count for every channel of ``subscribed`` symbols).
    """

    def __init__(
        self,
        venue: Venue,
        books: Mapping[str, Book],
        actions: Sequence[Action],
        certificate: SelfSignedCertificate,
        subscribed: int | None = None,
        subscribe_messages: int | None = None,
    ) -> None:
        self.venue = venue
        self.subscribed = len(books) if subscribed is None else subscribed
        self.subscribe_messages = subscribe_messages
        self.books: dict[str, Book] = {
            s: {side: dict(b) for side, b in book.items()} for s, book in books.items()
        }
        self.actions = list(actions)
        self.certificate = certificate
        self.sent: list[Sent] = []
        self.snapshots: list[tuple[str, int]] = []
        self.connections = 0
        self.client_messages: list[str] = []
        self.lockstep_timeouts: list[str] = []
        self.finished = threading.Event()
        self._cursor = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.ws_port = 0
        self.http_port = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeVenue:
        """Serve on two free loopback ports; returns once both listen."""
        self._thread = threading.Thread(target=self._serve, name="fake-venue", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake venue did not start within 10 s")
        if self._error is not None:
            raise RuntimeError("the fake venue failed to start") from self._error
        return self

    def stop(self) -> None:
        """Stop serving and join the server thread (bounded)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def emitter_options(self, **extra: Any) -> dict[str, Any]:
        """Run options pointing the emitter's feed of this venue at this server."""
        return {
            "cryptofeed_endpoints": {
                self.venue.exchange: {
                    "websocket": f"wss://127.0.0.1:{self.ws_port}",
                    "rest": f"http://127.0.0.1:{self.http_port}",
                }
            },
            "cryptofeed_ca_file": str(self.certificate.cert_file),
            "cryptofeed_retries": 3,
            **extra,
        }

    def sent_of(self, kind: str, symbol: str | None = None) -> list[Sent]:
        """Sent actions of ``kind`` (for ``symbol``), in order."""
        return [
            s
            for s in list(self.sent)
            if s.action.kind == kind and (symbol is None or s.action.symbol == symbol)
        ]

    def book(self, symbol: str) -> dict[str, dict[float, float]]:
        """The server's current book of ``symbol`` as floats."""
        return {
            side: {float(price_text(p)): float(size_text(q)) for p, q in levels.items()}
            for side, levels in self.books[symbol].items()
        }

    def frames(self) -> list[str]:
        """Every frame of one uninterrupted connection, rendered without serving (benchmarks):
        the snapshots, then the market actions (faults are skipped)."""
        venue = self.venue
        ms = self.actions[0].ms if self.actions else 0
        found = [f for symbol, book in self.books.items() for f in venue.snapshot(symbol, book, ms)]
        for action in self.actions:
            if action.kind in ("drop", "garbage", "bad_book"):
                continue
            if action.kind == "ticker" and "ticker" not in getattr(venue, "channels", ("ticker",)):
                continue
            found.extend(self._render(action))
        return found

    # -- serving -------------------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._main())
        except BaseException as error:
            self._error = error
            self._ready.set()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=2))
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        for path, payload in self.venue.routes().items():
            app.router.add_get(path, self._rest(payload))
        app.router.add_get(self.venue.ws_path, self._stream)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        http_site = web.TCPSite(runner, "127.0.0.1", 0)
        ws_site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.certificate.server_context())
        await http_site.start()
        await ws_site.start()
        self.http_port = http_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ws_port = ws_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def _rest(self, payload: Any) -> Any:
        async def handle(request: web.Request) -> web.Response:
            body = payload(request) if callable(payload) else payload
            return web.json_response(body)

        return handle

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(timeout=2.0)
        await ws.prepare(request)
        self.connections += 1
        received = asyncio.Event()
        count = [0]
        player = asyncio.create_task(self._play(ws, received, count, self.connections))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self.client_messages.append(message.data)
                    count[0] += 1
                    received.set()
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            if not player.done():
                player.cancel()
            await asyncio.gather(player, return_exceptions=True)
        return ws

    async def _await_subscription(self, received: asyncio.Event, count: list[int]) -> None:
        wanted = self.subscribe_messages or self.venue.subscribe_messages(self.subscribed)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while count[0] < wanted:
            received.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.lockstep_timeouts.append(f"subscription: {count[0]} of {wanted} messages")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(received.wait(), remaining)

    async def _play(
        self, ws: web.WebSocketResponse, received: asyncio.Event, count: list[int], connection: int
    ) -> None:
        await self._await_subscription(received, count)
        venue = self.venue
        ms = self.actions[min(self._cursor, len(self.actions) - 1)].ms if self.actions else 0
        for symbol, book in self.books.items():
            for frame in venue.snapshot(symbol, book, ms):
                await ws.send_str(frame)
            self.snapshots.append((symbol, connection))
        sent_here = 0
        while self._cursor < len(self.actions):
            if ws.closed:
                return
            action = self.actions[self._cursor]
            self._cursor += 1
            kind = action.kind
            if kind == "drop":
                self.sent.append(Sent(action, connection, ()))
                await ws.close(code=1001, message=b"going away")
                return
            if kind == "ticker" and "ticker" not in getattr(venue, "channels", ("ticker",)):
                continue  # the venue has no ticker channel
            frames = self._render(action)
            for frame in frames:
                await ws.send_str(frame)
            self.sent.append(Sent(action, connection, tuple(frames)))
            if kind in RESYNC_KINDS:
                await self._await_close(ws)
                return
            sent_here += 1
            if sent_here % 16 == 0:
                await asyncio.sleep(0)
        self.finished.set()
        await self._stop.wait()  # type: ignore[union-attr]

    async def _await_close(self, ws: web.WebSocketResponse) -> None:
        """The client renews its connection after this fault: wait for it to close this one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while not ws.closed and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if not ws.closed:
            self.lockstep_timeouts.append("the client did not renew its connection")

    def _render(self, action: Action) -> list[str]:
        venue = self.venue
        symbol = action.symbol
        if action.kind == "garbage":
            return ["this is not json {"]
        assert symbol is not None
        if action.kind == "ticker":
            return [venue.ticker(symbol, action)]
        if action.kind == "trade":
            return [venue.trade(symbol, action)]
        book = self.books[symbol]
        before = {side: dict(levels) for side, levels in book.items()}
        for side, price, units in action.changes:
            if units == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = units
        return venue.delta(symbol, action, book, before, action.kind == "bad_book")
