"""A fake Binance spot exchange on 127.0.0.1, driven by a seeded script that records what it sent.

It serves what cryptofeed's ``Binance`` feed uses: the REST exchange info and depth snapshot
(plain HTTP) and the combined websocket stream (``wss://``, a self-signed certificate) with
``aggTrade``, ``bookTicker`` and ``depthUpdate`` messages.

The script is compiled up front (:func:`generate_script`): every step has its message text
and its effect on the server's books, so sending is cheap and every run of a seed is the
same. Besides market data, steps can withhold a book update (a sequence gap), corrupt a
message, send garbage or drop the connection.

The server runs the script in lock-step with the client's book handling, so that what the
client does is deterministic: after sending a depth update that makes the client fetch a
snapshot (the first update of a symbol on a connection, and the first after a book reset), it
waits for that snapshot request before going on. It records when such a request did not
come (:attr:`FakeBinance.lockstep_timeouts`): the test then knows the client did not behave
as Binance's protocol says it must.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
from aiohttp import WSMsgType, web

from tests.cryptofeed.tls import SelfSignedCertificate

BASE_PRICES = {"BTC-USDT": 3_000_000, "ETH-USDT": 200_000, "SOL-USDT": 15_000, "XRP-USDT": 5_000}
"""Mid prices in ticks of 0.01."""
START_MS = 1_700_000_000_000
FIRST_UPDATE_ID = 1_000


def exchange_symbol(symbol: str) -> str:
    """``BTC-USDT`` -> ``BTCUSDT``."""
    return symbol.replace("-", "")


def price_text(ticks: int) -> str:
    """Ticks of 0.01 as Binance's price string."""
    return f"{ticks // 100}.{ticks % 100:02d}"


def qty_text(units: int) -> str:
    """Units of 0.001 as Binance's quantity string."""
    return f"{units // 1000}.{units % 1000:03d}"


@attrs.frozen(kw_only=True)
class Step:
    """One scripted action.

    :param index: position in the script.
    :param kind: ``ticker``, ``trade``, ``depth``, ``gap`` (a depth update applied but never
        sent), ``bad_trade``, ``bad_depth`` (applied, sent corrupted), ``garbage`` or
        ``disconnect``.
    :param symbol: normalised symbol, for market steps.
    :param stream: the combined-stream name it is sent on.
    :param text: the websocket message.
    :param data: the message payload (``None`` for garbage).
    :param changes: book changes ``(side, price ticks, qty units)`` of depth-like steps.
    :param update_id: the final update id of depth-like steps.
    :param mode: ``close`` or ``abort`` for disconnects.
    """

    index: int
    kind: str
    symbol: str | None = None
    stream: str | None = None
    text: str | None = None
    data: Any = None
    changes: tuple[tuple[str, int, int], ...] = ()
    update_id: int | None = None
    mode: str | None = None


@attrs.frozen(kw_only=True)
class Script:
    """A compiled script and the books it starts from."""

    steps: tuple[Step, ...]
    initial_books: Mapping[str, Mapping[str, Mapping[int, int]]]
    symbols: tuple[str, ...]

    def count(self, kind: str, symbol: str | None = None) -> int:
        """How many steps of ``kind`` (for ``symbol``) the script has."""
        return sum(
            1 for s in self.steps if s.kind == kind and (symbol is None or s.symbol == symbol)
        )


class _BookModel:
    def __init__(self, rng: random.Random, mid: int, levels: int) -> None:
        self.rng = rng
        self.mid = mid
        self.levels = levels
        self.sides: dict[str, dict[int, int]] = {
            "bids": {mid - i: rng.randint(1, 5000) for i in range(1, levels + 1)},
            "asks": {mid + i: rng.randint(1, 5000) for i in range(1, levels + 1)},
        }
        self.update_id = FIRST_UPDATE_ID

    def random_changes(self) -> tuple[tuple[str, int, int], ...]:
        rng = self.rng
        changes = []
        for _ in range(rng.randint(1, 4)):
            side = rng.choice(("bids", "asks"))
            offset = rng.randint(1, self.levels + 5)
            price = self.mid - offset if side == "bids" else self.mid + offset
            book = self.sides[side]
            if price in book and len(book) > 3 and rng.random() < 0.3:
                units = 0
            else:
                units = rng.randint(1, 5000)
            changes.append((side, price, units))
            if units == 0:
                book.pop(price, None)
            else:
                book[price] = units
        self.update_id += len(changes)
        return tuple(changes)

    def top(self) -> tuple[int, int, int, int]:
        bids, asks = self.sides["bids"], self.sides["asks"]
        bid = max(bids)
        ask = min(asks)
        return bid, bids[bid], ask, asks[ask]


def _depth_payload(
    symbol: str,
    first: int,
    last: int,
    changes: Iterable[tuple[str, int, int]],
    ms: int,
    corrupt: bool = False,
) -> dict[str, Any]:
    bids = [[price_text(p), qty_text(q)] for side, p, q in changes if side == "bids"]
    asks = [[price_text(p), qty_text(q)] for side, p, q in changes if side == "asks"]
    if corrupt:
        (bids or asks).append(["1.00", "not-a-number"])
    return {
        "e": "depthUpdate",
        "E": ms,
        "s": exchange_symbol(symbol),
        "U": first,
        "u": last,
        "b": bids,
        "a": asks,
    }


def generate_script(
    seed: int,
    symbols: Sequence[str],
    steps: int,
    *,
    specials: Mapping[int, tuple[Any, ...]] | None = None,
    weights: tuple[float, float, float] = (0.4, 0.3, 0.3),
    levels: int = 20,
    step_ms: int = 10,
    start_ms: int = START_MS,
) -> Script:
    """Compile a seeded script of ``steps`` market steps over ``symbols``.

    :param specials: steps inserted *before* market step ``i``: ``("gap", symbol)``,
        ``("bad_trade", symbol)``, ``("bad_depth", symbol)``, ``("nan_trade", symbol)``,
        ``("garbage",)``, ``("disconnect", "close" | "abort")``, and ``("foreign_depth",
        symbol)``, ``("foreign_trade", symbol)``: valid messages sent even when the client did
        not subscribe to their stream.
    :param weights: how often a market step is a ticker, a trade, a depth update.
    """
    rng = random.Random(seed)
    models = {s: _BookModel(rng, BASE_PRICES[s], levels) for s in symbols}
    initial = {
        s: {side: dict(levels_) for side, levels_ in m.sides.items()} for s, m in models.items()
    }
    trade_ids = dict.fromkeys(symbols, 100_000)
    compiled: list[Step] = []
    specials = dict(specials or {})

    def add(**fields: Any) -> None:
        compiled.append(Step(index=len(compiled), **fields))

    for i in range(steps):
        ms = start_ms + i * step_ms
        for special in [specials[i]] if i in specials else []:
            kind = special[0]
            if kind == "disconnect":
                add(kind="disconnect", mode=special[1])
            elif kind == "garbage":
                add(kind="garbage", text="this is not json {")
            elif kind in ("gap", "bad_depth", "foreign_depth"):
                symbol = special[1]
                model = models[symbol]
                first = model.update_id + 1
                changes = model.random_changes()
                data = _depth_payload(
                    symbol, first, model.update_id, changes, ms, corrupt=kind == "bad_depth"
                )
                stream = f"{exchange_symbol(symbol).lower()}@depth@100ms"
                add(
                    kind=kind,
                    symbol=symbol,
                    stream=stream,
                    data=data,
                    changes=changes,
                    update_id=model.update_id,
                    text=json.dumps({"stream": stream, "data": data}),
                )
            elif kind in ("bad_trade", "nan_trade", "foreign_trade"):
                symbol = special[1]
                stream = f"{exchange_symbol(symbol).lower()}@aggTrade"
                trade_ids[symbol] += 1
                data = {
                    "e": "aggTrade",
                    "E": ms,
                    "s": exchange_symbol(symbol),
                    "a": trade_ids[symbol],
                    "p": {"bad_trade": "oops", "nan_trade": "NaN"}.get(kind, "100.00"),
                    "q": "1.000",
                    "f": 1,
                    "l": 1,
                    "T": ms,
                    "m": False,
                    "M": True,
                }
                add(
                    kind="foreign_trade" if kind == "foreign_trade" else "bad_trade",
                    symbol=symbol,
                    stream=stream,
                    data=data,
                    text=json.dumps({"stream": stream, "data": data}),
                )
            else:
                raise ValueError(f"unknown special step {special!r}")
        symbol = rng.choice(list(symbols))
        model = models[symbol]
        pair = exchange_symbol(symbol).lower()
        roll = rng.random()
        if roll < weights[0]:
            bid, bid_q, ask, ask_q = model.top()
            data = {
                "u": model.update_id,
                "s": exchange_symbol(symbol),
                "b": price_text(bid),
                "B": qty_text(bid_q),
                "a": price_text(ask),
                "A": qty_text(ask_q),
            }
            stream = f"{pair}@bookTicker"
            add(
                kind="ticker",
                symbol=symbol,
                stream=stream,
                data=data,
                text=json.dumps({"stream": stream, "data": data}),
            )
        elif roll < weights[0] + weights[1]:
            trade_ids[symbol] += 1
            price = model.mid + rng.randint(-levels, levels)
            data = {
                "e": "aggTrade",
                "E": ms,
                "s": exchange_symbol(symbol),
                "a": trade_ids[symbol],
                "p": price_text(price),
                "q": qty_text(rng.randint(1, 3000)),
                "f": trade_ids[symbol] * 3,
                "l": trade_ids[symbol] * 3 + 2,
                "T": ms - 1,
                "m": rng.random() < 0.5,
                "M": True,
            }
            stream = f"{pair}@aggTrade"
            add(
                kind="trade",
                symbol=symbol,
                stream=stream,
                data=data,
                text=json.dumps({"stream": stream, "data": data}),
            )
        else:
            first = model.update_id + 1
            changes = model.random_changes()
            data = _depth_payload(symbol, first, model.update_id, changes, ms)
            stream = f"{pair}@depth@100ms"
            add(
                kind="depth",
                symbol=symbol,
                stream=stream,
                data=data,
                changes=changes,
                update_id=model.update_id,
                text=json.dumps({"stream": stream, "data": data}),
            )
    return Script(steps=tuple(compiled), initial_books=initial, symbols=tuple(symbols))


@attrs.frozen(kw_only=True)
class Sent:
    """A message the server sent (or a depth update it withheld: ``withheld=True``)."""

    step: Step
    connection: int
    withheld: bool = False


class FakeBinance:
    """The fake exchange: start it, point the emitter at :attr:`ws_url` and :attr:`rest_url`.

    :param script: what to send.
    :param certificate: the TLS certificate of the websocket server.
    :param snapshot_wait: seconds to wait for an expected snapshot request.
    :param yield_every: give the event loop a turn every this many sent messages.
    :param rate: messages per second to send at (``0``: as fast as possible).
    :param live_clock: stamp each market message's event and trade times (``E``, ``T``) with
        the wall clock when it is sent, as a live exchange does, instead of the script's.
    """

    def __init__(
        self,
        script: Script,
        certificate: SelfSignedCertificate,
        *,
        snapshot_wait: float = 5.0,
        yield_every: int = 16,
        rate: float = 0.0,
        live_clock: bool = False,
    ) -> None:
        self.script = script
        self.live_clock = live_clock
        self.certificate = certificate
        self.snapshot_wait = snapshot_wait
        self.yield_every = yield_every
        self.rate = rate
        self.books: dict[str, dict[str, dict[int, int]]] = {
            s: {side: dict(levels) for side, levels in book.items()}
            for s, book in script.initial_books.items()
        }
        self.update_ids = dict.fromkeys(script.symbols, FIRST_UPDATE_ID)
        self.sent: list[Sent] = []
        self.snapshots: list[tuple[str, int, int]] = []
        self.lockstep_timeouts: list[tuple[int, str]] = []
        self.connections = 0
        self.subscriptions: list[tuple[str, ...]] = []
        self.finished = threading.Event()
        self.first_send_time: float | None = None
        self.last_send_time: float | None = None
        self._cursor = 0
        self._snapshot_served: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.ws_port = 0
        self.http_port = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeBinance:
        """Start serving on two free loopback ports; returns once both listen."""
        self._thread = threading.Thread(target=self._serve, name="fake-binance", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake exchange did not start within 10 s")
        if self._error is not None:
            raise RuntimeError("the fake exchange failed to start") from self._error
        return self

    def stop(self) -> None:
        """Stop serving and join the server thread (bounded)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ws_url(self) -> str:
        """The websocket base address."""
        return f"wss://127.0.0.1:{self.ws_port}"

    @property
    def rest_url(self) -> str:
        """The REST base address."""
        return f"http://127.0.0.1:{self.http_port}"

    def emitter_options(self, **extra: Any) -> dict[str, Any]:
        """Run options pointing the cryptofeed emitter's BINANCE feed at this server."""
        return {
            "cryptofeed_endpoints": {"BINANCE": {"websocket": self.ws_url, "rest": self.rest_url}},
            "cryptofeed_ca_file": str(self.certificate.cert_file),
            "cryptofeed_retries": 3,
            **extra,
        }

    def environ(self) -> dict[str, str]:
        """Environment variables pointing ``featurizer run`` at this server."""
        return {
            "FEATURIZER_CRYPTOFEED_BINANCE_WEBSOCKET": self.ws_url,
            "FEATURIZER_CRYPTOFEED_BINANCE_REST": self.rest_url,
            "FEATURIZER_CRYPTOFEED_CA_FILE": str(self.certificate.cert_file),
            "FEATURIZER_CRYPTOFEED_RETRIES": "3",
        }

    def wait_finished(self, timeout: float) -> bool:
        """Wait until every step of the script was played."""
        return self.finished.wait(timeout)

    def sent_of(self, kind: str, symbol: str | None = None) -> list[Sent]:
        """Sent messages of ``kind`` (for ``symbol``), in order, withheld ones excluded."""
        return [
            s
            for s in list(self.sent)
            if s.step.kind == kind
            and not s.withheld
            and (symbol is None or s.step.symbol == symbol)
        ]

    def book(self, symbol: str) -> dict[str, dict[float, float]]:
        """The server's current book of ``symbol`` as floats (read after the script finished)."""
        book = self.books[symbol]
        return {
            side: {float(price_text(p)): float(qty_text(q)) for p, q in levels.items()}
            for side, levels in book.items()
        }

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
        self._snapshot_served = {s: asyncio.Event() for s in self.script.symbols}
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/stream", self._stream)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
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

    async def _exchange_info(self, request: web.Request) -> web.Response:
        symbols = []
        for symbol in self.script.symbols:
            base, quote = symbol.split("-")
            symbols.append(
                {
                    "symbol": exchange_symbol(symbol),
                    "status": "TRADING",
                    "baseAsset": base,
                    "quoteAsset": quote,
                    "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.01"}],
                }
            )
        # a symbol that is listed but not trading: cryptofeed must not offer it
        symbols.append(
            {
                "symbol": "OLDUSDT",
                "status": "BREAK",
                "baseAsset": "OLD",
                "quoteAsset": "USDT",
                "filters": [{"tickSize": "0.01"}],
            }
        )
        return web.json_response({"timezone": "UTC", "symbols": symbols})

    async def _depth(self, request: web.Request) -> web.Response:
        wanted = request.query.get("symbol", "")
        symbol = next((s for s in self.script.symbols if exchange_symbol(s) == wanted), None)
        if symbol is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = int(request.query.get("limit", "100"))
        book = self.books[symbol]
        bids = sorted(book["bids"].items(), reverse=True)[:limit]
        asks = sorted(book["asks"].items())[:limit]
        self.snapshots.append((symbol, self.update_ids[symbol], self.connections))
        self._snapshot_served[symbol].set()
        return web.json_response(
            {
                "lastUpdateId": self.update_ids[symbol],
                "bids": [[price_text(p), qty_text(q)] for p, q in bids],
                "asks": [[price_text(p), qty_text(q)] for p, q in asks],
            }
        )

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        streams = tuple(request.query.get("streams", "").split("/"))
        ws = web.WebSocketResponse(timeout=2.0)
        await ws.prepare(request)
        self.connections += 1
        self.subscriptions.append(streams)
        sender = asyncio.create_task(self._play(ws, request, frozenset(streams), self.connections))
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            if not sender.done():
                sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return ws

    def _apply(self, step: Step) -> None:
        assert step.symbol is not None and step.update_id is not None
        book = self.books[step.symbol]
        for side, price, units in step.changes:
            if units == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = units
        self.update_ids[step.symbol] = step.update_id

    @staticmethod
    def _stamped(step: Step) -> str:
        """``step``'s message with its event and trade times set to the wall clock."""
        now_ms = int(time.time() * 1000)
        data = {**step.data, **{key: now_ms for key in ("E", "T") if key in step.data}}
        return json.dumps({"stream": step.stream, "data": data})

    async def _await_snapshot(self, symbol: str, event: asyncio.Event, step: Step) -> None:
        try:
            await asyncio.wait_for(event.wait(), self.snapshot_wait)
        except TimeoutError:
            self.lockstep_timeouts.append((step.index, symbol))

    async def _play(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        subscribed: frozenset[str],
        connection: int,
    ) -> None:
        synced: set[str] = set()  # the client's books, as the protocol says they must be
        pending_gap: set[str] = set()
        steps = self.script.steps
        sent_here = 0
        paced_from = time.perf_counter()
        while self._cursor < len(steps):
            if ws.closed:
                return
            step = steps[self._cursor]
            self._cursor += 1
            kind = step.kind
            if kind == "disconnect":
                self.sent.append(Sent(step=step, connection=connection))
                if step.mode == "abort":
                    assert request.transport is not None
                    request.transport.abort()
                else:
                    await ws.close(code=1001, message=b"going away")
                return
            if kind == "gap":
                self._apply(step)
                self.sent.append(Sent(step=step, connection=connection, withheld=True))
                if step.symbol is not None and step.symbol in synced:
                    pending_gap.add(step.symbol)
                continue
            if kind == "garbage":
                await ws.send_str(step.text)  # type: ignore[arg-type]
                self.sent.append(Sent(step=step, connection=connection))
                synced.clear()  # the emitter cannot tell whose message it was: it resets every book
                continue
            if kind in ("foreign_depth", "foreign_trade"):
                # sent whether or not the client subscribed to its stream
                if kind == "foreign_depth":
                    self._apply(step)
                await ws.send_str(step.text)  # type: ignore[arg-type]
                self.sent.append(Sent(step=step, connection=connection))
                continue
            if step.stream not in subscribed:
                if kind in ("depth", "bad_depth"):
                    self._apply(step)
                continue
            snapshot_event = self._snapshot_served.get(step.symbol or "")
            if kind in ("depth", "bad_depth"):
                self._apply(step)
                assert snapshot_event is not None and step.symbol is not None
                snapshot_event.clear()
            if self.first_send_time is None:
                self.first_send_time = time.perf_counter()
            await ws.send_str(self._stamped(step) if self.live_clock else step.text)  # type: ignore[arg-type]
            self.last_send_time = time.perf_counter()
            self.sent.append(Sent(step=step, connection=connection))
            sent_here += 1
            if kind in ("depth", "bad_depth"):
                symbol = step.symbol
                assert symbol is not None and snapshot_event is not None
                if symbol in pending_gap:
                    pending_gap.discard(symbol)
                    synced.clear()  # cryptofeed resets every book and skips this message
                elif symbol not in synced:
                    await self._await_snapshot(symbol, snapshot_event, step)
                    synced.add(symbol)
                elif kind == "bad_depth":
                    synced.discard(symbol)  # the emitter resynchronises that book only
            if sent_here % self.yield_every == 0:
                delay = (
                    paced_from + sent_here / self.rate - time.perf_counter() if self.rate else 0.0
                )
                await asyncio.sleep(max(delay, 0.0))
        self.finished.set()
        await self._stop.wait()  # type: ignore[union-attr]


def wait_until(predicate: Any, timeout: float, interval: float = 0.01) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds passed (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _serve_main(argv: Sequence[str] | None = None) -> None:
    """Serve a script from a separate process (benchmarks): ``python -m tests.cryptofeed.fake_binance``.

    Prints one JSON line with the addresses once listening, one more when the script
    finished, and exits when its standard input closes.
    """
    import argparse
    import sys
    from pathlib import Path

    from tests.cryptofeed.tls import make_certificate

    parser = argparse.ArgumentParser(description=_serve_main.__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--symbols", default="BTC-USDT")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s, 0 = max")
    parser.add_argument("--cert-dir", required=True)
    args = parser.parse_args(argv)
    symbols = tuple(args.symbols.split(","))
    script = generate_script(
        args.seed, symbols, args.steps, start_ms=int(time.time() * 1000), step_ms=1
    )
    fake = FakeBinance(
        script, make_certificate(Path(args.cert_dir)), yield_every=64, rate=args.rate
    )
    with fake:
        print(
            json.dumps(
                {
                    "ws_url": fake.ws_url,
                    "rest_url": fake.rest_url,
                    "cert_file": str(fake.certificate.cert_file),
                    "steps": len(script.steps),
                }
            ),
            flush=True,
        )
        closed = threading.Event()

        def watch_stdin() -> None:
            sys.stdin.read()
            closed.set()

        watcher = threading.Thread(target=watch_stdin, daemon=True)
        watcher.start()
        reported = False
        while not closed.wait(0.05):
            if fake.finished.is_set() and not reported:
                reported = True
                seconds = (fake.last_send_time or 0.0) - (fake.first_send_time or 0.0)
                print(
                    json.dumps({"finished": True, "sent": len(fake.sent), "send_seconds": seconds}),
                    flush=True,
                )


if __name__ == "__main__":
    _serve_main()
