"""Cryptofeed emitter: events/s from a fake Binance exchange into a graph, latency and CPU.

The fake exchange of the test suite (``tests/cryptofeed/fake_binance.py``) runs in its own
process, so it does not share this process's GIL; it sends a pre-compiled seeded script of
``bookTicker``, ``aggTrade`` and ``depthUpdate`` messages over ``wss://`` on 127.0.0.1.

    python benchmarks/cryptofeed_emitter.py [--messages 60000] [--rate 2000] [--seconds 10]

Each row is measured in this process against a fresh server process:

* ``bare cryptofeed``: cryptofeed's own Binance feed with no-op callbacks (the baseline);
* ``emitter``: :class:`CryptofeedEventEmitter` delivering events to callbacks that count;
* ``emitter+graph``: the emitter feeding a :class:`FeatureStreamGraph` computing, per symbol,
  mid price, 1 min volatility, 1 min trade volume imbalance, the 10-level book and its
  imbalance (the ``examples/binance.yaml`` workload); once more on a uvloop event loop;

for one symbol and for four, with the server sending as fast as it can. Events/s is what the
client sustained from its first to its last event; on a small machine the fake server in the
other process is close to being the limit, so each row also shows this process's CPU time per
event and the rate one core would sustain at that cost. Then the graph row again at a fixed
``--rate``: CPU time of this process per 1,000 events/s (against bare cryptofeed at the same
rate), and receipt-to-output latency: from cryptofeed's receipt time of the websocket message
(taken when it is read, before it is parsed) to the moment the graph delivers each output.

Numbers are noisy on a shared machine; ratios are against the baseline of the same run.

First, and deterministic: **the same frames through cryptofeed's message handler**, with no
network, for Binance, Bybit and Kraken. The frames are rendered once (Binance's by the fake
exchange's script compiler, the others' by the wire-protocol fakes of
``tests/cryptofeed/venues.py``); each run feeds all of them to one feed's ``message_handler``
on one event loop:

* ``plain cryptofeed``: the exchange's own cryptofeed feed class, no-op async callbacks;
* ``emitter + trivial graph``: the emitter's monitored feed (built by the emitter, through the
  private ``_build_feed``, after registering its data sources against the fakes' REST
  instrument lists) delivering to a graph whose outputs are the data sources themselves and
  the ticker's mid price.

Runs alternate between the two, and the best of ``--repeats`` is kept for each (the least
disturbed by the other engineers' processes on a shared machine); the ratio of the two is the
emitter's throughput relative to plain cryptofeed on the same frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featurizer import (  # noqa: E402
    Event,
    Feature,
    FeatureStreamGraph,
    FeaturizerConfig,
    construct_features_from_configs,
)

CHANNEL_SOURCES = ("ticker", "trades", "l2_book")
ALL_SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")
TIMEOUT = 120.0


class Server:
    """The fake exchange in a child process."""

    def __init__(self, symbols: tuple[str, ...], steps: int, rate: float, cert_dir: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.cryptofeed.fake_binance",
                "--symbols",
                ",".join(symbols),
                "--steps",
                str(steps),
                "--rate",
                str(rate),
                "--cert-dir",
                cert_dir,
                "--seed",
                "1",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the fake exchange process did not start")
        self.info: dict[str, Any] = json.loads(line)
        self.finished: dict[str, Any] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.finished.update(json.loads(line))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._reader.join(5)


@contextlib.contextmanager
def server(symbols: tuple[str, ...], steps: int, rate: float, cert_dir: str) -> Iterator[Server]:
    running = Server(symbols, steps, rate, cert_dir)
    try:
        yield running
    finally:
        running.close()


class Meter:
    """Counts input events; records wall and CPU time of the first and the last one."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first_wall = self.last_wall = 0.0
        self.first_cpu = self.last_cpu = 0.0
        self.done = threading.Event()

    def tick(self) -> None:
        self.count += 1
        if self.count == 1:
            self.first_wall, self.first_cpu = time.perf_counter(), time.process_time()
        elif self.count == self.expected:
            self.last_wall, self.last_cpu = time.perf_counter(), time.process_time()
            self.done.set()

    def wrap(self, callback: Callable[[Event], None]) -> Callable[[Event], None]:
        tick = self.tick

        def counted(event: Event) -> None:
            tick()
            callback(event)

        return counted

    def result(self) -> dict[str, float]:
        if not self.done.is_set():
            raise RuntimeError(
                f"received {self.count:,} of {self.expected:,} events in {TIMEOUT:.0f} s"
            )
        wall = self.last_wall - self.first_wall
        return {
            "events": float(self.count),
            "events_per_s": (self.count - 1) / wall,
            "cpu_fraction": (self.last_cpu - self.first_cpu) / wall,
        }


def run_bare_cryptofeed(
    info: dict[str, Any], symbols: tuple[str, ...], expected: int
) -> dict[str, float]:
    """cryptofeed's Binance feed on its own thread and loop, callbacks that only count."""
    from cryptofeed import FeedHandler
    from cryptofeed.connection import RestEndpoint, WebsocketEndpoint
    from cryptofeed.defines import L2_BOOK, TICKER, TRADES
    from cryptofeed.exchanges import Binance

    context = ssl.create_default_context()
    context.load_verify_locations(info["cert_file"])

    routes = Binance.rest_endpoints[0].routes
    fake_address_binance: Any = type(
        "FakeAddressBinance",
        (Binance,),
        {
            "websocket_endpoints": [WebsocketEndpoint(info["ws_url"], options={"ssl": context})],
            "rest_endpoints": [RestEndpoint(info["rest_url"], routes=routes)],
        },
    )

    fake_address_binance.symbol_mapping(refresh=True)
    meter = Meter(expected)
    tick = meter.tick

    async def count(obj: Any, receipt_timestamp: float) -> None:
        tick()

    feed = fake_address_binance(
        subscription={TICKER: list(symbols), TRADES: list(symbols), L2_BOOK: list(symbols)},
        callbacks={TICKER: [count], TRADES: [count], L2_BOOK: [count]},
        config={"uvloop": False, "log": {"disabled": True}},
    )
    loop = asyncio.new_event_loop()

    def target() -> None:
        asyncio.set_event_loop(loop)
        handler = FeedHandler(config={"uvloop": False, "log": {"disabled": True}})
        handler.add_feed(feed)
        handler.run(start_loop=False, install_signal_handlers=False)

        async def until_done() -> None:
            deadline = time.monotonic() + TIMEOUT
            while not meter.done.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)

        loop.run_until_complete(until_done())
        loop.run_until_complete(handler.stop_async(loop=loop))
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=2))
        loop.close()

    thread = threading.Thread(target=target, name="bare-cryptofeed")
    thread.start()
    thread.join(TIMEOUT + 10)
    return meter.result()


def emitter_options(info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "cryptofeed_endpoints": {
            "BINANCE": {"websocket": info["ws_url"], "rest": info["rest_url"]}
        },
        "cryptofeed_ca_file": info["cert_file"],
        **extra,
    }


def run_emitter(info: dict[str, Any], symbols: tuple[str, ...], expected: int) -> dict[str, float]:
    """The emitter with callbacks that only count."""
    from featurizer_cryptofeed import CryptofeedEventEmitter
    from featurizer_features import L2BookSource, TickerSource, TradesSource

    meter = Meter(expected)
    emitter = CryptofeedEventEmitter.from_options(emitter_options(info))
    for definition in (TickerSource, TradesSource, L2BookSource):
        for symbol in symbols:
            feature = Feature.create(definition, {"exchange": "BINANCE", "symbol": symbol})
            emitter.register_callback(feature, meter.wrap(lambda event: None))
    emitter.start()
    try:
        meter.done.wait(TIMEOUT)
    finally:
        emitter.stop()
    return meter.result()


def workload(symbols: tuple[str, ...]) -> list[Feature]:
    entries = []
    for symbol in symbols:
        source = {"exchange": "BINANCE", "symbol": symbol}
        entries += [
            {"feature_definition": "mid_price", "params": {"data_source": source}},
            {"feature_definition": "volatility", "params": {"window": "1m", "data_source": source}},
            {
                "feature_definition": "trade_volume_imbalance",
                "params": {"window": "1m", "data_source": source},
            },
            {"feature_definition": "l2_snapshot", "params": {"depth": 10, "data_source": source}},
            {
                "feature_definition": "order_book_imbalance",
                "params": {
                    "depth": 5,
                    "feature": {"l2_snapshot": {"depth": 10}},
                    "data_source": source,
                },
            },
        ]
    return construct_features_from_configs(FeaturizerConfig.from_dict({"feature_configs": entries}))


def run_graph(
    info: dict[str, Any], symbols: tuple[str, ...], expected: int, **options: Any
) -> tuple[dict[str, float], list[float]]:
    """The emitter feeding the example workload's graph; latencies of every output."""
    from featurizer_cryptofeed import CryptofeedEventEmitter

    graph = FeatureStreamGraph(workload(symbols))
    latencies: list[float] = []
    record = latencies.append
    clock = time.time

    def observe(feature: Feature, event: Event) -> None:
        record(clock() - event["receipt_timestamp"])

    for output in graph.get_outs():
        graph.set_callback(output, observe)
    meter = Meter(expected)
    emitter = CryptofeedEventEmitter.from_options(emitter_options(info, **options))
    for source in graph.get_ins():
        emitter.register_callback(source, meter.wrap(graph.input_callback(source)))
    emitter.start()
    try:
        meter.done.wait(TIMEOUT)
    finally:
        emitter.stop()
    return meter.result(), latencies


def _handler_frames(exchange: str, steps: int, cert: Any) -> tuple[list[str], Any, Any]:
    """The frames of ``exchange``, the fake serving its REST API (started), the venue."""
    from tests.cryptofeed.fake_binance import FakeBinance, generate_script
    from tests.cryptofeed.fake_venue import FakeVenue, generate
    from tests.cryptofeed.venues import Bybit, Kraken

    if exchange == "BINANCE":
        script = generate_script(1, ("BTC-USDT", "ETH-USDT"), steps)
        frames = [step.text for step in script.steps if step.text is not None]
        return frames, FakeBinance(script, cert).start(), None
    venue = {"BYBIT": Bybit, "KRAKEN": Kraken}[exchange]()
    books, actions = generate(1, tuple(venue.symbols), steps)
    fake = FakeVenue(venue, books, actions, cert)
    frames = fake.frames()
    # a fresh venue (sequence counters) and server for the REST instrument list
    return frames, FakeVenue(type(venue)(), books, actions, cert).start(), venue


class _SnapshotStub:
    """Answers Binance's REST depth snapshot request from the script's initial books."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake

    async def read(self, address: str, **kwargs: Any) -> str:
        from tests.cryptofeed.fake_binance import exchange_symbol, price_text, qty_text

        wanted = address.split("symbol=", 1)[1].split("&", 1)[0]
        symbol = next(s for s in self.fake.script.symbols if exchange_symbol(s) == wanted)
        book = self.fake.script.initial_books[symbol]
        return json.dumps(
            {
                "lastUpdateId": 1000,
                "bids": [[price_text(p), qty_text(q)] for p, q in sorted(book["bids"].items())],
                "asks": [[price_text(p), qty_text(q)] for p, q in sorted(book["asks"].items())],
            }
        )

    async def close(self) -> None:
        return None


def _connection(feed: Any, address: str) -> Any:
    from types import SimpleNamespace

    subscription = {channel: list(symbols) for channel, symbols in feed.subscription.items()}
    return SimpleNamespace(uuid=f"{feed.id}.ws.1", subscription=subscription, address=address)


def _drive(feed: Any, frames: list[str], address: str) -> float:
    """CPU seconds to feed every frame to ``feed.message_handler`` on a fresh loop."""
    connection = _connection(feed, address)

    async def play() -> float:
        handle = feed.message_handler
        started = time.thread_time()  # CPU time of this thread: the machine is shared
        for frame in frames:
            await handle(frame, connection, time.time())
        return time.thread_time() - started

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(play())
    finally:
        loop.close()


def handler_throughput(exchange: str, steps: int, repeats: int, cert: Any) -> dict[str, Any]:
    """Frames/s of plain cryptofeed and of the emitter + a trivial graph, same frames."""
    from featurizer_cryptofeed import CryptofeedEventEmitter, supported_exchanges
    from featurizer_features import MidPrice

    from tests.cryptofeed.support import SOURCES

    frames, fake, venue = _handler_frames(exchange, steps, cert)
    try:
        support = supported_exchanges()[exchange]
        if venue is None:
            options = fake.emitter_options()
            symbols = list(fake.script.symbols)
            address = "wss://127.0.0.1/stream"
        else:
            options = fake.emitter_options()
            symbols = list(venue.symbols)
            address = f"wss://127.0.0.1{venue.ws_path}"
        emitter = CryptofeedEventEmitter.from_options(options)
        outputs = []
        for channel in support.channels:
            for symbol in symbols:
                source = Feature.create(SOURCES[channel], {"exchange": exchange, "symbol": symbol})
                outputs.append(source)
                if channel == "ticker":
                    outputs.append(Feature.create(MidPrice, {}, {"ticker": source}))
        graph = FeatureStreamGraph(outputs)
        delivered = [0]

        def count(feature: Feature, event: Event) -> None:
            delivered[0] += 1

        for output in graph.get_outs():
            graph.set_callback(output, count)
        for source in graph.get_ins():
            emitter.register_callback(source, graph.input_callback(source))

        base = support.load_feed_class()
        subscription = {channel: list(symbols) for channel in support.channels}

        async def ignore(obj: Any, receipt_timestamp: float) -> None:
            return None

        def plain() -> Any:
            extra = {"checksum_validation": True} if support.family.checksum else {}
            feed = base(
                subscription=subscription,
                callbacks={channel: [ignore] for channel in support.channels},
                config={"uvloop": False, "log": {"disabled": True}},
                **extra,
            )
            if venue is None:
                feed.http_conn = _SnapshotStub(fake)
            return feed

        def monitored() -> Any:
            feed = emitter._build_feed(emitter._exchanges[exchange])
            if venue is None:
                feed.http_conn = _SnapshotStub(fake)
            return feed

        best = {"plain": float("inf"), "emitter": float("inf")}
        for _ in range(repeats):
            for name, build in (("plain", plain), ("emitter", monitored)):
                best[name] = min(best[name], _drive(build(), frames, address))
        events = emitter.stats().events
        return {
            "exchange": exchange,
            "frames": len(frames),
            "plain_per_s": len(frames) / best["plain"],
            "emitter_per_s": len(frames) / best["emitter"],
            "ratio": best["plain"] / best["emitter"],
            "events_per_run": events / repeats,
            "outputs": delivered[0],
        }
    finally:
        fake.stop()


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]
        if len(values) > 1
        else values[0]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=60_000, help="messages per max-rate run")
    parser.add_argument("--rate", type=float, default=2_000, help="messages/s of the paced run")
    parser.add_argument("--seconds", type=float, default=10, help="length of the paced run")
    parser.add_argument("--frames", type=int, default=20_000, help="steps of the handler runs")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each handler row")
    parser.add_argument(
        "--handlers-only", action="store_true", help="only the same-frames handler comparison"
    )
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, pid {os.getpid()}")
    with tempfile.TemporaryDirectory() as cert_dir:
        from tests.cryptofeed.tls import make_certificate

        cert = make_certificate(Path(cert_dir))
        print(f"\nsame frames through the message handler, best of {args.repeats}")
        for exchange in ("BINANCE", "BYBIT", "KRAKEN"):
            row = handler_throughput(exchange, args.frames, args.repeats, cert)
            print(
                f"  {exchange:8} {row['frames']:>7,} frames: plain cryptofeed "
                f"{row['plain_per_s']:>8,.0f} frames/s, emitter + trivial graph "
                f"{row['emitter_per_s']:>8,.0f} frames/s: ratio {row['ratio']:.2f} "
                f"({row['events_per_run']:,.0f} events per run)"
            )
        if args.handlers_only:
            return
        for symbols in (ALL_SYMBOLS[:1], ALL_SYMBOLS):
            print(f"\n{len(symbols)} symbol(s), {args.messages:,} messages at max rate")
            rows: list[tuple[str, dict[str, float], str]] = []
            count = args.messages
            runs: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
                (
                    "bare cryptofeed",
                    functools.partial(run_bare_cryptofeed, symbols=symbols, expected=count),
                ),
                ("emitter", functools.partial(run_emitter, symbols=symbols, expected=count)),
                ("emitter+graph", functools.partial(run_graph, symbols=symbols, expected=count)),
                (
                    "emitter+graph, uvloop",
                    functools.partial(
                        run_graph, symbols=symbols, expected=count, cryptofeed_uvloop=True
                    ),
                ),
            ]
            for name, run in runs:
                with server(symbols, args.messages, 0.0, cert_dir) as fake:
                    outcome = run(fake.info)
                    sent = fake.finished.get("send_seconds")
                result, latencies = outcome if isinstance(outcome, tuple) else (outcome, [])
                extra = ""
                if latencies:
                    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
                    extra = f"  receipt->output p50 {p50 * 1e6:,.0f} us p99 {p99 * 1e6:,.0f} us"
                if sent:
                    extra += f"  (server sent all in {sent:.2f} s)"
                rows.append((name, result, extra))
            baseline = rows[0][1]
            base_cost = baseline["cpu_fraction"] / baseline["events_per_s"]
            for name, result, extra in rows:
                cost = result["cpu_fraction"] / result["events_per_s"]
                print(
                    f"  {name:22s} {result['events_per_s']:>8,.0f} events/s (ratio "
                    f"{result['events_per_s'] / baseline['events_per_s']:4.2f})  CPU "
                    f"{result['cpu_fraction'] * 100:3.0f}%  {cost * 1e6:5.1f} us/event (ratio "
                    f"{cost / base_cost:4.2f}, one core would do {1 / cost:>7,.0f}/s){extra}"
                )
        print(f"\npaced: {args.rate:,.0f} messages/s for {args.seconds:.0f} s")
        steps = int(args.rate * args.seconds)
        for symbols in (ALL_SYMBOLS[:1], ALL_SYMBOLS):
            with server(symbols, steps, args.rate, cert_dir) as fake:
                bare = run_bare_cryptofeed(fake.info, symbols, steps)
            with server(symbols, steps, args.rate, cert_dir) as fake:
                result, latencies = run_graph(fake.info, symbols, steps)
            per_k = result["cpu_fraction"] / (result["events_per_s"] / 1000)
            bare_per_k = bare["cpu_fraction"] / (bare["events_per_s"] / 1000)
            print(
                f"  {len(symbols)} symbol(s): {result['events_per_s']:,.0f} events/s, CPU "
                f"{result['cpu_fraction'] * 100:.1f}% of a core = {per_k * 100:.2f}% per 1,000 "
                f"events/s "
                f"(bare cryptofeed {bare_per_k * 100:.2f}%, ratio {per_k / bare_per_k:.2f}); "
                f"receipt->output p50 {percentile(latencies, 50) * 1e6:,.0f} us, "
                f"p99 {percentile(latencies, 99) * 1e6:,.0f} us over {len(latencies):,} outputs"
            )


if __name__ == "__main__":
    main()
