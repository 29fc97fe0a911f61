"""The cryptofeed emitter: live exchange data from cryptofeed callbacks into a feature graph."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import difflib
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from featurizer import (
    DataSourceEventEmitter,
    EmitterError,
    EmitterOption,
    Event,
    EventCallback,
    EventValidationError,
    Feature,
    validate_event,
)
from featurizer_cryptofeed._exchanges import (
    BOOK_TICKER,
    DATA_SOURCES,
    GAPS_SOURCE,
    ExchangeSupport,
    describe_exchanges,
    supported_exchanges,
)
from featurizer_cryptofeed._logs import quiet_cryptofeed_logs
from featurizer_cryptofeed._options import (
    COMMAND_LINE_OPTIONS,
    OPTION_PREFIX,
    CryptofeedOptions,
    credentials_env_prefix,
)
from featurizer_cryptofeed._stats import EmitterStats, ExchangeStats, StreamStats

__all__ = ["CryptofeedEventEmitter"]

logger = logging.getLogger(__name__)

STOP_SECONDS = 5.0
"""``stop()`` returns within this many seconds."""
_SHUTDOWN_SECONDS = 2.0
_CANCEL_SECONDS = 1.0
_FEEDHANDLER_CONFIG = {"uvloop": False, "log": {"disabled": True}}
"""No process-wide uvloop policy and no ``feedhandler.log`` file: the emitter owns its loop."""
_LOGGED_ERRORS = 10
"""Errors of one kind logged with a traceback per stream; after that, every 1000th."""
_BID, _ASK = "bid", "ask"
_SIDES = frozenset(("buy", "sell"))
"""cryptofeed's ``BID`` and ``ASK`` (the keys of a book delta)."""


def _should_log(count: int) -> bool:
    return count <= _LOGGED_ERRORS or count % 1000 == 0


def _levels(levels: Iterable[tuple[Any, Any]]) -> tuple[tuple[float, float], ...]:
    converted = tuple([(float(price), float(size)) for price, size in levels])
    if not math.isfinite(sum([price + size for price, size in converted])):
        raise ValueError(f"non-finite book level in {converted!r}")
    return converted


async def _never(obj: Any, receipt_timestamp: float) -> None:
    """Registered with cryptofeed for the channels the monitored feed hands to plain
    functions instead (see ``_feeds._MonitoredFeed.attach``): never called."""
    raise AssertionError(f"cryptofeed called an async callback with {obj!r}")


def _seconds(value: Any, divisor: float) -> float:
    """A cryptofeed book timestamp in seconds: a number (over ``divisor``) or a datetime.

    >>> _seconds(1700000000123, 1000.0), _seconds(5, 1.0)
    (1700000000.123, 5.0)
    """
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return float(value) / divisor


def _finite(*values: float) -> None:
    for value in values:
        if not math.isfinite(value):
            raise ValueError(f"non-finite value {value!r}")


class _Stream:
    """One subscribed (exchange, symbol, channel) and its callbacks and counters."""

    __slots__ = (
        "callback_errors",
        "callbacks",
        "channel",
        "events",
        "exchange",
        "gaps",
        "lag_last",
        "lag_max",
        "lag_sum",
        "origin",
        "schema",
        "sequence",
        "symbol",
        "synced",
    )

    def __init__(self, exchange: str, symbol: str, channel: str, feature: Feature) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.channel = channel
        self.callbacks: list[EventCallback] = []
        self.schema = feature.definition.event_schema()
        self.origin = f"cryptofeed emitter, data source {feature.name!r}"
        self.events = 0
        self.gaps = 0
        self.callback_errors = 0
        self.lag_last = math.nan
        self.lag_max = -math.inf
        self.lag_sum = 0.0
        self.sequence = 0
        self.synced = False

    def snapshot(self) -> StreamStats:
        seen = self.events > 0
        return StreamStats(
            exchange=self.exchange,
            symbol=self.symbol,
            channel=self.channel,
            events=self.events,
            gaps=self.gaps,
            callback_errors=self.callback_errors,
            lag_last=self.lag_last if seen else None,
            lag_max=self.lag_max if seen else None,
            lag_mean=self.lag_sum / self.events if seen else None,
        )


class _Exchange:
    """One exchange's feed: its support description, counters and connections seen."""

    def __init__(self, support: ExchangeSupport) -> None:
        self.support = support
        self.feed: Any = None
        self.connects = 0
        self.reconnects = 0
        self.disconnects = 0
        self.book_resets = 0
        self.malformed = 0
        self.unsubscribed = 0
        self.connect_failures = 0
        self.last_connect_error: Exception | None = None
        self.connections: set[str] = set()
        self.pending_reasons: dict[str, str] = {}

    def snapshot(self) -> ExchangeStats:
        return ExchangeStats(
            exchange=self.support.name,
            connects=self.connects,
            reconnects=self.reconnects,
            disconnects=self.disconnects,
            book_resets=self.book_resets,
            malformed_messages=self.malformed,
            unsubscribed_messages=self.unsubscribed,
            connect_failures=self.connect_failures,
        )


class CryptofeedEventEmitter(DataSourceEventEmitter):
    """Live ``ticker``, ``book_ticker``, ``trades`` and ``l2_book`` events, through cryptofeed.

    Data sources name the exchange (a cryptofeed id such as ``BINANCE`` or ``KRAKEN``, see
    :func:`~featurizer_cryptofeed.supported_exchanges`) and the symbol (``BTC-USDT``).
    :meth:`register_callback` checks both (loading the exchange's instruments once per
    exchange) and raises before anything starts; :meth:`start` runs one cryptofeed
    ``FeedHandler`` with one feed per exchange on its own thread and event loop.

    Events are the standard schemas of :mod:`featurizer_features.sources`: floats for prices
    and sizes, ``side`` ``"buy"``/``"sell"``, the exchange's trade id, ``timestamp`` from the
    exchange (the receipt time where the exchange sends none: Binance's ticker and book
    snapshots) and ``receipt_timestamp`` when cryptofeed read the message. The book stream
    starts with a snapshot, then deltas; ``sequence`` counts its messages. What differs
    between exchanges is in their family (:mod:`featurizer_cryptofeed._families`).

    Gaps are events: when a connection drops, when a book's sequence or checksum check fails,
    or when a message cannot be parsed, each affected ``l2_book`` stream gets a gap marker
    (so books are rebuilt from the next snapshot) and each affected stream a ``feed_gaps``
    event; a message for a stream nobody subscribed to is counted and dropped. An exchange
    never reached within ``connect_timeout`` (or by :meth:`stop`) is a :meth:`failure`.
    Exceptions raised by callbacks never reach cryptofeed (which would drop the connection):
    they are counted, logged, and the first one is kept as :meth:`failure`, which is how
    ``featurizer run`` applies the graph's ``raise`` policy.

    :param options: endpoints, trust and retries (defaults: the exchanges' public addresses).
    """

    declared_options = tuple(
        EmitterOption(name=f"{OPTION_PREFIX}{name}", parse=str, help=text)
        for name, text in COMMAND_LINE_OPTIONS
    )
    """``--emitter-option cryptofeed_NAME=VALUE`` (parsed by :class:`CryptofeedOptions`)."""

    def __init__(self, options: CryptofeedOptions | None = None) -> None:
        self.options = options or CryptofeedOptions()
        self._exchanges: dict[str, _Exchange] = {}
        self._streams: dict[tuple[str, str, str], _Stream] = {}
        self._gap_streams: dict[tuple[str, str], _Stream] = {}
        self._instruments: dict[str, list[str]] = {}
        self._feed_classes: dict[str, type] = {}
        self._ssl_context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._started = False
        self._stopping = False
        self._running = False
        self._done = threading.Event()
        self._error: BaseException | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CryptofeedEventEmitter:
        """Build from run options and the environment (see :meth:`CryptofeedOptions.from_mapping`).

        :param options: the run options; keys without the ``cryptofeed_`` prefix are ignored.
        :raises ConfigError: for an invalid option.
        """
        return cls(CryptofeedOptions.from_mapping(options))

    @classmethod
    def describe_support(cls) -> list[str]:
        """Per exchange, the data sources served and how gaps are detected (one line each).

        ``featurizer plugins --verbose`` prints these lines under the emitter.
        """
        return describe_exchanges()

    # -- registration -------------------------------------------------------------------

    def check_source(self, feature: Feature) -> None:
        """Check ``feature`` without connecting: its data source, exchange, channel, keys.

        ``featurizer validate`` calls it; the symbol is checked when the data source is
        registered, against the exchange's instrument list (a REST request).

        :raises EmitterError: naming the data source, what is wrong and the valid choices.
        """
        self._check(feature)

    def _check(self, feature: Feature) -> ExchangeSupport:
        channel = feature.definition_name
        if channel not in DATA_SOURCES:
            raise EmitterError(
                f"the cryptofeed emitter serves data sources "
                f"{', '.join(map(repr, DATA_SOURCES))}; received {feature.name!r} of "
                f"definition {channel!r}"
            )
        exchange = str(feature.params.get("exchange", "")).upper()
        support = self._support(exchange, feature)
        if channel not in support.data_sources:
            hint = (
                " (its ticker carries no sizes: use 'ticker', or mid_price_l2 and the book)"
                if channel == BOOK_TICKER and "ticker" in support.data_sources
                else " (take mid and spread from the book: mid_price_l2 over l2_book)"
                if channel in ("ticker", BOOK_TICKER) and "l2_book" in support.data_sources
                else ""
            )
            raise EmitterError(
                f"cryptofeed emitter: data source {feature.name!r}: {exchange} does not serve "
                f"{channel!r}{hint}; it serves {', '.join(support.data_sources)}"
            )
        cryptofeed_channel = "ticker" if channel == BOOK_TICKER else channel
        if cryptofeed_channel in support.keyed_channels and not self.options.credentials_for(
            exchange
        ):
            prefix = credentials_env_prefix(exchange)
            raise EmitterError(
                f"cryptofeed emitter: data source {feature.name!r}: cryptofeed 2.4.1 subscribes "
                f"to {exchange} {cryptofeed_channel!r} only with API keys; set {prefix}KEY_ID "
                f"and {prefix}KEY_SECRET"
            )
        return support

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        """Send every event of data source ``feature`` to ``callback(event)``.

        Several callbacks may be registered for one data source; each is called with every
        event, in registration order, and is isolated from the others' exceptions.

        :param feature: a ``ticker``, ``trades``, ``l2_book`` or ``feed_gaps`` data source with
            ``exchange`` and ``symbol`` params.
        :param callback: called with each event, from the emitter's thread.
        :raises EmitterError: listing the valid choices, for an unknown data source,
            exchange, symbol or channel, if the exchange's instruments cannot be loaded, or
            after :meth:`start`.
        """
        if self._started:
            raise EmitterError(
                f"cryptofeed emitter: cannot register {feature.name!r} after start()"
            )
        channel = feature.definition_name
        exchange = str(feature.params.get("exchange", "")).upper()
        support = self._check(feature)
        symbol = feature.params.get("symbol")
        feed_class = self._feed_class(support)
        instruments = self._load_instruments(support, feed_class)
        if not isinstance(symbol, str) or symbol not in instruments:
            raise EmitterError(
                f"cryptofeed emitter: data source {feature.name!r} has symbol {symbol!r}, which "
                f"{exchange} does not list{_suggest(symbol, instruments)}; valid symbols: "
                f"{_listing(instruments)}"
            )
        if exchange not in self._exchanges:
            self._exchanges[exchange] = _Exchange(support)
        if channel == GAPS_SOURCE:
            stream = self._gap_streams.setdefault(
                (exchange, symbol), _Stream(exchange, symbol, channel, feature)
            )
        else:
            stream = self._streams.setdefault(
                (exchange, symbol, channel), _Stream(exchange, symbol, channel, feature)
            )
        stream.callbacks.append(callback)

    def _support(self, exchange: str, feature: Feature) -> ExchangeSupport:
        try:
            exchanges = supported_exchanges()
        except Exception as error:
            raise EmitterError(
                f"the cryptofeed emitter needs cryptofeed==2.4.1 ({type(error).__name__}: "
                f"{error}); install it with: pip install featurizer-cryptofeed"
            ) from error
        if not exchanges:
            raise EmitterError(
                "the cryptofeed emitter needs cryptofeed==2.4.1, which is not installed; "
                "install it with: pip install featurizer-cryptofeed"
            )
        support = exchanges.get(exchange)
        if support is None:
            raise EmitterError(
                f"cryptofeed emitter: data source {feature.name!r} has exchange "
                f"{feature.params.get('exchange')!r}{_suggest(exchange, list(exchanges))}; "
                f"supported exchanges: {', '.join(exchanges)}"
            )
        return support

    def _feed_class(self, support: ExchangeSupport) -> type:
        found = self._feed_classes.get(support.name)
        if found is not None:
            return found
        try:
            from featurizer_cryptofeed._feeds import make_feed_class

            base = support.load_feed_class()
        except ImportError as error:
            raise EmitterError(
                f"the cryptofeed emitter needs cryptofeed==2.4.1 ({type(error).__name__}: "
                f"{error}); install it with: pip install featurizer-cryptofeed"
            ) from error
        endpoints = self.options.endpoints_for(support.name)
        try:
            found = make_feed_class(
                base,
                websocket=endpoints.websocket,
                rest=endpoints.rest,
                ssl_context=self._make_ssl_context(),
                http_timeout=self.options.http_timeout,
                recovery=support.family.recovery,
                fix=support.family.feed_fix,
            )
        except (ValueError, ssl.SSLError, OSError) as error:
            raise EmitterError(f"cryptofeed emitter: {support.name}: {error}") from error
        self._feed_classes[support.name] = found
        return found

    def _make_ssl_context(self) -> ssl.SSLContext | None:
        if self.options.ca_file is None:
            return None
        if self._ssl_context is None:
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=self.options.ca_file)
            self._ssl_context = context
        return self._ssl_context

    def _load_instruments(self, support: ExchangeSupport, feed_class: type) -> list[str]:
        found = self._instruments.get(support.name)
        if found is not None:
            return found
        try:
            mapping = feed_class.symbol_mapping(refresh=True)  # type: ignore[attr-defined]
        except Exception as error:
            try:
                address = feed_class.rest_endpoints[0].route("instruments")  # type: ignore[attr-defined]
            except Exception:
                address = "its REST endpoint"
            raise EmitterError(
                f"cryptofeed emitter: cannot load the instruments of {support.name} from "
                f"{address}: {type(error).__name__}: {error}"
            ) from error
        found = self._instruments[support.name] = sorted(mapping)
        return found

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Build one cryptofeed feed per exchange and run them on a new thread; returns at once.

        After :meth:`stop`, starting does nothing (the emitter counts as finished).

        :raises EmitterError: if called twice, or if cryptofeed rejects a subscription (before
            any thread starts).
        """
        with self._lock:
            if self._started:
                raise EmitterError("cryptofeed emitter: start() called twice")
            self._started = True
            if self._stopping or not self._streams:
                self._done.set()
                return
            try:
                for exchange in self._exchanges.values():
                    if any(key[0] == exchange.support.name for key in self._streams):
                        exchange.feed = self._build_feed(exchange)
            except BaseException:
                self._done.set()  # nothing started: the emitter counts as finished
                raise
            self._thread = threading.Thread(
                target=self._run, name="featurizer-cryptofeed", daemon=True
            )
            self._thread.start()

    def _build_feed(self, exchange: _Exchange) -> Any:
        name = exchange.support.name
        subscription: dict[str, list[str]] = {}
        for exchange_name, symbol, channel in self._streams:
            if exchange_name == name:
                cryptofeed_channel = "ticker" if channel == BOOK_TICKER else channel
                symbols = subscription.setdefault(cryptofeed_channel, [])
                if symbol not in symbols:
                    symbols.append(symbol)
        timeout = self.options.timeout
        feed_class = self._feed_classes[name]
        family = exchange.support.family
        extra: dict[str, Any] = {}
        if family.name == "binance":
            extra["depth_interval"] = self.options.depth_interval
        if family.checksum:
            extra["checksum_validation"] = True
        config: dict[str, Any] = dict(_FEEDHANDLER_CONFIG)
        credentials = self.options.credentials_for(name)
        if credentials is not None:
            config[name.lower()] = credentials
        try:
            feed = feed_class(
                subscription=subscription,
                callbacks={channel: [_never] for channel in exchange.support.channels},
                retries=self.options.retries,
                timeout=timeout,
                timeout_interval=min(30.0, timeout / 4) if timeout > 0 else 30.0,
                config=config,
                **extra,
            )
        except Exception as error:
            raise EmitterError(
                f"cryptofeed emitter: cryptofeed rejected the {name} subscription "
                f"{subscription!r}: {type(error).__name__}: {error}"
            ) from error
        feed.attach(_Monitor(self), self._handlers_for(exchange))
        if exchange.support.family.fast_path is not None:
            for method, replacement in self._fast_paths_for(exchange, feed).items():
                setattr(feed, method, replacement)
        return feed

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        if self.options.uvloop:
            try:
                import uvloop
            except ImportError:
                logger.warning(
                    "uvloop is not installed; the cryptofeed emitter uses asyncio's loop"
                )
            else:
                return uvloop.new_event_loop()
        return asyncio.new_event_loop()

    def _run(self) -> None:
        loop = self._new_loop()
        try:
            asyncio.set_event_loop(loop)
            loop.set_exception_handler(self._on_loop_exception)
            from cryptofeed import FeedHandler

            handler = FeedHandler(config=dict(_FEEDHANDLER_CONFIG))
            for exchange in self._exchanges.values():
                if exchange.feed is not None:
                    handler.add_feed(exchange.feed)
            wakeup = asyncio.Event()
            with self._lock:
                self._loop = loop
                self._wakeup = wakeup
                stopping = self._stopping
            with quiet_cryptofeed_logs():
                if not stopping:
                    handler.run(start_loop=False, install_signal_handlers=False)
                    self._running = True
                    if self.options.connect_timeout > 0:
                        loop.call_later(self.options.connect_timeout, self._check_connected)
                    loop.run_until_complete(wakeup.wait())
                self._running = False
                try:
                    loop.run_until_complete(
                        asyncio.wait_for(handler.stop_async(loop=loop), _SHUTDOWN_SECONDS)
                    )
                except Exception:
                    logger.warning(
                        "cryptofeed emitter: feed shutdown did not complete", exc_info=True
                    )
        except BaseException as error:
            logger.exception("cryptofeed emitter: the feed thread failed")
            if self._error is None:
                self._error = error
        finally:
            self._running = False
            self._close_loop(loop)
            self._done.set()

    def _close_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=_CANCEL_SECONDS))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(
                asyncio.wait_for(loop.shutdown_default_executor(), _CANCEL_SECONDS)
            )
        except Exception:
            logger.warning("cryptofeed emitter: event loop cleanup failed", exc_info=True)
        finally:
            with self._lock:
                self._loop = None
                self._wakeup = None
            asyncio.set_event_loop(None)
            loop.close()

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        logger.warning(
            "cryptofeed emitter: unhandled error in the feed's event loop: %s",
            context.get("message"),
            exc_info=error if isinstance(error, BaseException) else None,
        )

    def stop(self) -> None:
        """Stop the feeds, close their connections and join the thread, within 5 seconds.

        Safe to call twice, before :meth:`start`, and from a callback (then it only asks the
        thread to stop).
        """
        with self._lock:
            self._stopping = True
            loop, wakeup, thread = self._loop, self._wakeup, self._thread
        if loop is not None and wakeup is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the thread is finishing
                loop.call_soon_threadsafe(wakeup.set)
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_SECONDS)
            if thread.is_alive():
                logger.error(
                    "cryptofeed emitter: the feed thread did not stop within %.0f s", STOP_SECONDS
                )
        if thread is not None and self._error is None:
            # stopped before the connect timeout: an exchange that refused every attempt
            # until now was never reachable, and a run that got nothing from it failed
            unreachable = [
                e for e in self._exchanges.values() if not e.connects and e.connect_failures
            ]
            if unreachable:
                self._check_connected(within="before the emitter was stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the feed thread ended (after :meth:`stop`) or ``timeout``.

        A live feed never ends by itself: without :meth:`stop` this returns ``False``.
        """
        return self._done.wait(timeout)

    def failure(self) -> BaseException | None:
        """The first exception a callback raised, or why a connection was given up."""
        return self._error

    @property
    def running(self) -> bool:
        """Whether the feed thread is running its event loop."""
        return self._running

    def stats(self) -> EmitterStats:
        """The counters, as frozen values safe to read from any thread.

        >>> CryptofeedEventEmitter().stats().events
        0
        """
        streams = tuple(stream.snapshot() for stream in list(self._streams.values()))
        exchanges = tuple(exchange.snapshot() for exchange in list(self._exchanges.values()))
        return EmitterStats(
            running=self._running,
            events=sum(s.events for s in streams),
            gaps=sum(s.gaps for s in streams),
            reconnects=sum(e.reconnects for e in exchanges),
            malformed_messages=sum(e.malformed_messages for e in exchanges),
            callback_errors=sum(s.callback_errors for s in streams),
            exchanges=exchanges,
            streams=streams,
        )

    # -- the hot path (the feed's event loop thread) -------------------------------------

    def _handlers_for(self, exchange: _Exchange) -> dict[str, Callable[[Any, float], None]]:
        """Per cryptofeed channel, the function turning its data objects into events.

        The hot path, measured by ``benchmarks/cryptofeed_emitter.py``: plain functions (the
        monitored feed calls them without a coroutine), one finiteness check per event (the sum
        of the values is finite only if each is), and the lag kept as a running sum.
        """
        name = exchange.support.name
        by_channel: dict[str, dict[str, _Stream]] = {channel: {} for channel in DATA_SOURCES}
        for (exchange_name, symbol, channel), stream in self._streams.items():
            if exchange_name == name:
                by_channel[channel][symbol] = stream
        tickers, sized = by_channel["ticker"], by_channel[BOOK_TICKER]
        trades, books = by_channel["trades"], by_channel["l2_book"]
        family = exchange.support.family
        sizes = family.ticker_sizes
        ticker_divisor = family.ticker_time_divisor
        book_divisor = family.book_time_divisor
        deliver = self._deliver_validated if self.options.validate else self._deliver
        isfinite = math.isfinite

        def on_ticker(ticker: Any, receipt: float) -> None:
            symbol = ticker.symbol
            plain = tickers.get(symbol)
            with_sizes = sized.get(symbol)
            if plain is None and with_sizes is None:
                exchange.unsubscribed += 1
                return
            try:
                when = ticker.timestamp
                timestamp = receipt if when is None else when / ticker_divisor
                bid = float(ticker.bid)
                ask = float(ticker.ask)
                if not (isfinite(timestamp + receipt + bid + ask) and bid > 0.0 and ask > 0.0):
                    raise ValueError(f"ticker bid {bid!r}, ask {ask!r}, timestamp {timestamp!r}")
                event = {"timestamp": float(timestamp), "receipt_timestamp": receipt}
                event["bid"] = bid
                event["ask"] = ask
                if with_sizes is not None:
                    bid_size, ask_size = sizes(ticker.raw)  # type: ignore[misc]
                    if not isfinite(bid_size + ask_size):
                        raise ValueError(f"ticker sizes {bid_size!r}, {ask_size!r}")
                    sized_event = dict(event)
                    sized_event["bid_size"] = bid_size
                    sized_event["ask_size"] = ask_size
            except Exception as error:
                for stream in (plain, with_sizes):
                    if stream is not None:
                        self._bad_event(exchange, stream, ticker, error)
                return
            if plain is not None:
                deliver(plain, event)
            if with_sizes is not None:
                deliver(with_sizes, sized_event)

        def on_trade(trade: Any, receipt: float) -> None:
            stream = trades.get(trade.symbol)
            if stream is None:
                exchange.unsubscribed += 1
                return
            try:
                timestamp = float(trade.timestamp)
                price = float(trade.price)
                amount = float(trade.amount)
                side = trade.side
                if not isfinite(timestamp + receipt + price + amount):
                    raise ValueError(f"non-finite trade {price!r} x {amount!r} at {timestamp!r}")
                if side not in _SIDES:
                    raise ValueError(f"side {side!r} is neither 'buy' nor 'sell'")
                trade_id = trade.id
                event = {
                    "timestamp": timestamp,
                    "receipt_timestamp": receipt,
                    "price": price,
                    "amount": amount,
                    "side": side,
                    "trade_id": "" if trade_id is None else str(trade_id),
                }
            except Exception as error:
                self._bad_event(exchange, stream, trade, error)
                return
            deliver(stream, event)

        def on_book(book: Any, receipt: float) -> None:
            stream = books.get(book.symbol)
            if stream is None:
                exchange.unsubscribed += 1
                return
            try:
                delta = book.delta
                if delta is None:
                    bids = _levels(book.book.bids.to_list())
                    asks = _levels(book.book.asks.to_list())
                else:
                    bids = _levels(delta[_BID])
                    asks = _levels(delta[_ASK])
                when = book.timestamp
                timestamp = receipt if when is None else _seconds(when, book_divisor)
                if not isfinite(timestamp + receipt):
                    raise ValueError(f"non-finite book timestamp {timestamp!r}")
                event = {
                    "timestamp": timestamp,
                    "receipt_timestamp": receipt,
                    "bids": bids,
                    "asks": asks,
                    "sequence": stream.sequence + 1,
                    "is_snapshot": delta is None,
                    "gap": False,
                }
            except Exception as error:
                self._bad_book(exchange, stream, error)
                return
            stream.sequence += 1
            if delta is None:
                stream.synced = True
            deliver(stream, event)

        return {"ticker": on_ticker, "trades": on_trade, "l2_book": on_book}

    def _fast_paths_for(self, exchange: _Exchange, feed: Any) -> dict[str, Any]:
        """The family's fast paths (see :mod:`featurizer_cryptofeed._fast`) for this feed."""
        from featurizer_cryptofeed._fast import (
            binance_book_path,
            binance_fast_paths,
            bybit_fast_paths,
        )

        name = exchange.support.name
        by_channel: dict[str, dict[str, _Stream]] = {
            "ticker": {},
            BOOK_TICKER: {},
            "trades": {},
            "l2_book": {},
        }
        for (exchange_name, symbol, channel), stream in self._streams.items():
            if exchange_name == name and channel in by_channel:
                by_channel[channel][symbol] = stream

        def bad_event(stream: _Stream, message: Any, error: Exception) -> None:
            self._bad_event(exchange, stream, message, error)

        def unsubscribed() -> None:
            exchange.unsubscribed += 1

        def bad_book(stream: _Stream, error: Exception) -> None:
            self._bad_book(exchange, stream, error)

        def unsubscribed_book(pair: str) -> None:
            self._on_unsubscribed(feed, "l2_book", pair)

        deliver = self._deliver_validated if self.options.validate else self._deliver
        if exchange.support.family.fast_path == "bybit":
            return bybit_fast_paths(
                feed=feed,
                symbols=feed.exchange_symbol_mapping,
                tickers=by_channel["ticker"],
                sized=by_channel[BOOK_TICKER],
                trades=by_channel["trades"],
                books=by_channel["l2_book"],
                deliver=deliver,
                bad_event=bad_event,
                bad_book=bad_book,
                unsubscribed=unsubscribed,
            )
        paths = binance_fast_paths(
            symbols=feed.exchange_symbol_mapping,
            tickers=by_channel["ticker"],
            sized=by_channel[BOOK_TICKER],
            trades=by_channel["trades"],
            deliver=deliver,
            bad_event=bad_event,
            unsubscribed=unsubscribed,
        )
        paths.update(
            binance_book_path(
                feed=feed,
                symbols=feed.exchange_symbol_mapping,
                books=by_channel["l2_book"],
                deliver=deliver,
                bad_book=bad_book,
                unsubscribed=unsubscribed_book,
            )
        )
        return paths

    def _deliver(self, stream: _Stream, event: Event) -> None:
        # lag: exchange time to receipt (no clock read per event; see StreamStats)
        lag = event["receipt_timestamp"] - event["timestamp"]
        stream.events += 1
        stream.lag_last = lag
        stream.lag_sum += lag
        if lag > stream.lag_max:  # noqa: PLR1730 (max() costs a call per event)
            stream.lag_max = lag
        for callback in stream.callbacks:
            try:
                callback(event)
            except Exception as error:
                self._callback_failed(stream, error)

    def _deliver_validated(self, stream: _Stream, event: Event) -> None:
        try:
            validate_event(event, stream.schema, origin=stream.origin)
        except EventValidationError as error:
            exchange = self._exchanges[stream.exchange]
            if stream.channel == "l2_book":
                self._bad_book(exchange, stream, error)
            else:
                self._bad_event(exchange, stream, event, error)
            return
        self._deliver(stream, event)

    def _callback_failed(self, stream: _Stream, error: Exception) -> None:
        stream.callback_errors += 1
        if self._error is None:
            self._error = error
        if _should_log(stream.callback_errors):
            logger.warning(
                "cryptofeed emitter: a callback of %s %s %s raised (%d so far); the feed goes on",
                stream.exchange,
                stream.symbol,
                stream.channel,
                stream.callback_errors,
                exc_info=error,
            )

    # -- gaps and the feed monitor (called by the monitored feeds, on the loop thread) ----

    def _record_gap(self, stream: _Stream, reason: str) -> None:
        """Count a gap on ``stream``; emit its book gap marker and its ``feed_gaps`` event."""
        now = time.time()
        stream.gaps += 1
        if stream.channel == "l2_book" and stream.synced:
            stream.synced = False
            stream.sequence += 1
            self._deliver(
                stream,
                {
                    "timestamp": now,
                    "receipt_timestamp": now,
                    "bids": (),
                    "asks": (),
                    "sequence": stream.sequence,
                    "is_snapshot": False,
                    "gap": True,
                },
            )
        gap_stream = self._gap_streams.get((stream.exchange, stream.symbol))
        if gap_stream is not None:
            self._deliver(
                gap_stream,
                {
                    "timestamp": now,
                    "receipt_timestamp": now,
                    "channel": stream.channel,
                    "reason": reason,
                },
            )

    def _bad_event(self, exchange: _Exchange, stream: _Stream, obj: Any, error: Exception) -> None:
        exchange.malformed += 1
        if _should_log(exchange.malformed):
            logger.warning(
                "cryptofeed emitter: dropped a malformed %s %s %s message (%s: %s): %r",
                stream.exchange,
                stream.symbol,
                stream.channel,
                type(error).__name__,
                error,
                getattr(obj, "raw", obj),
            )
        self._record_gap(stream, "malformed_message")

    def _bad_book(self, exchange: _Exchange, stream: _Stream, error: Exception) -> None:
        if exchange.support.family.recovery != "snapshot":
            # the rest of this book is lost and only a new connection brings a new snapshot:
            # the feed's message handler reports the error (a gap on every stream of the
            # connection) and renews the connection
            raise error
        exchange.malformed += 1
        if _should_log(exchange.malformed):
            logger.warning(
                "cryptofeed emitter: could not convert a %s %s book message (%s: %s); "
                "recovering the book from a new snapshot",
                stream.exchange,
                stream.symbol,
                type(error).__name__,
                error,
            )
        self._record_gap(stream, "malformed_message")
        if exchange.feed is not None:
            exchange.feed.resync_book(stream.symbol)

    def _streams_of_connection(self, feed: Any, connection: Any) -> list[_Stream]:
        found = []
        for exchange_channel, symbols in (getattr(connection, "subscription", None) or {}).items():
            try:
                channel = feed.exchange_channel_to_std(exchange_channel)
            except ValueError:
                continue
            channels = (channel, BOOK_TICKER) if channel == "ticker" else (channel,)
            for exchange_symbol in symbols:
                symbol = feed.exchange_symbol_mapping.get(exchange_symbol)
                for name in channels:
                    stream = self._streams.get((feed.id, symbol, name))
                    if stream is not None:
                        found.append(stream)
        return found

    def _on_connected(self, feed: Any, connection: Any) -> None:
        exchange = self._exchanges[feed.id]
        exchange.connects += 1
        if connection.uuid in exchange.connections:
            exchange.reconnects += 1
            logger.warning("cryptofeed emitter: %s reconnected (%s)", feed.id, connection.uuid)
        exchange.connections.add(connection.uuid)

    def _on_connect_failed(self, feed: Any, connection: Any, error: Exception) -> None:
        exchange = self._exchanges[feed.id]
        exchange.connect_failures += 1
        exchange.last_connect_error = error
        if _should_log(exchange.connect_failures):
            logger.info(  # the failure itself is reported once, by failure() and the runner
                "cryptofeed emitter: cannot connect to %s at %s (%s: %s)",
                feed.id,
                getattr(connection, "address", "?"),
                type(error).__name__,
                error,
            )

    def _on_disconnected(self, feed: Any, connection: Any) -> None:
        exchange = self._exchanges[feed.id]
        exchange.disconnects += 1
        reason = exchange.pending_reasons.pop(connection.uuid, "disconnect")
        logger.warning(
            "cryptofeed emitter: %s connection %s dropped (%s); marking gaps",
            feed.id,
            connection.uuid,
            reason,
        )
        for stream in self._streams_of_connection(feed, connection):
            if stream.channel != "l2_book" or stream.synced:
                self._record_gap(stream, reason)

    def _on_books_reset(self, feed: Any, reason: str) -> None:
        exchange = self._exchanges[feed.id]
        exchange.book_resets += 1
        logger.warning("cryptofeed emitter: %s books reset (%s); marking gaps", feed.id, reason)
        for (name, _, channel), stream in list(self._streams.items()):
            if name == feed.id and channel == "l2_book" and stream.synced:
                self._record_gap(stream, reason)

    def _on_unsubscribed(self, feed: Any, channel: str, symbol: str) -> None:
        exchange = self._exchanges[feed.id]
        exchange.unsubscribed += 1
        if _should_log(exchange.unsubscribed):
            logger.warning(
                "cryptofeed emitter: %s sent a %s message for %s, which nobody subscribed to "
                "(%d so far); dropped",
                feed.id,
                channel,
                symbol,
                exchange.unsubscribed,
            )

    def _on_malformed(self, feed: Any, connection: Any, message: Any, error: Exception) -> bool:
        """Mark the gaps a failed message caused; whether the connection must be renewed."""
        from featurizer_cryptofeed._feeds import failure_reason

        exchange = self._exchanges[feed.id]
        family = exchange.support.family
        reason = failure_reason(error)
        attributed = family.attribute_message(message) if family.attribute_message else None
        streams: list[_Stream] = []
        if attributed is not None:
            exchange_symbol, channel = attributed
            symbol = feed.exchange_symbol_mapping.get(exchange_symbol)
            names = (channel, BOOK_TICKER) if channel == "ticker" else (channel,)
            streams = [
                stream
                for name in names
                if (stream := self._streams.get((feed.id, symbol, name))) is not None
            ]
            if not streams:  # cryptofeed choked on a stream nobody subscribed to
                self._on_unsubscribed(feed, channel, exchange_symbol)
                return False
        if reason == "malformed_message":
            exchange.malformed += 1
            count = exchange.malformed
        else:
            exchange.book_resets += 1
            count = exchange.book_resets
        if _should_log(count):
            logger.warning(
                "cryptofeed emitter: %s: %s (%s: %s) in message %.200r",
                feed.id,
                reason,
                type(error).__name__,
                error,
                message,
            )
        if attributed is not None:
            for stream in streams:
                self._record_gap(stream, reason)
            if channel != "l2_book":
                return False
            if family.recovery == "snapshot":
                feed.resync_book(symbol)
                return False
            exchange.pending_reasons[connection.uuid] = reason
            return True
        if family.recovery == "snapshot":
            # Which stream lost a message is unknown: any book may be missing an update.
            feed.reset_books(reason)
            for stream in self._streams_of_connection(feed, connection):
                if stream.channel != "l2_book":
                    self._record_gap(stream, reason)
            return False
        exchange.pending_reasons[connection.uuid] = reason
        return True

    def _on_gave_up(self, feed: Any, connection: Any, error: Exception) -> None:
        failure = EmitterError(
            f"cryptofeed emitter: gave up on {feed.id} connection "
            f"{getattr(connection, 'uuid', connection)!r} after {self.options.retries} "
            f"reconnection attempts (see the log for the errors)"
        )
        failure.__cause__ = error
        logger.error("%s", failure)
        if self._error is None:
            self._error = failure

    def _check_connected(self, within: str | None = None) -> None:
        """Fail when an exchange was never reached (after ``connect_timeout``, or at stop).

        :param within: how long it was tried, for the message (default: the timeout).
        """
        for exchange in self._exchanges.values():
            if exchange.feed is None or exchange.connects > 0:
                continue
            error = exchange.last_connect_error
            addresses = sorted(
                {
                    str(getattr(handler.conn, "address", "?")).split("?", 1)[0]
                    for handler in exchange.feed.connection_handlers
                }
            )
            cause = f"{type(error).__name__}: {error}" if error else "no answer"
            failure = EmitterError(
                f"cryptofeed emitter: could not connect to {exchange.support.name} at "
                f"{', '.join(addresses)} "
                f"{within or f'within {self.options.connect_timeout:g} s'} "
                f"({exchange.connect_failures} failed attempts; last: {cause}); check the "
                f"network, or the cryptofeed_endpoints option"
            )
            failure.__cause__ = error
            logger.info("%s", failure)
            if self._error is None:
                self._error = failure
            return

    def __repr__(self) -> str:
        streams = ", ".join("/".join(key) for key in self._streams)
        return f"CryptofeedEventEmitter(streams=[{streams}], running={self._running})"


class _Monitor:
    """What the monitored feeds report to (see :class:`featurizer_cryptofeed._feeds.FeedMonitor`).

    Kept apart from the emitter so that its hooks are not part of the emitter's public API.
    """

    __slots__ = (
        "books_reset",
        "connect_failed",
        "connected",
        "disconnected",
        "gave_up",
        "malformed",
        "unsubscribed",
    )

    def __init__(self, emitter: CryptofeedEventEmitter) -> None:
        self.connected = emitter._on_connected
        self.connect_failed = emitter._on_connect_failed
        self.disconnected = emitter._on_disconnected
        self.books_reset = emitter._on_books_reset
        self.malformed = emitter._on_malformed
        self.unsubscribed = emitter._on_unsubscribed
        self.gave_up = emitter._on_gave_up


def _suggest(given: Any, valid: list[str]) -> str:
    if not isinstance(given, str):
        return ""
    close = difflib.get_close_matches(given.upper(), valid, n=3)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


def _listing(valid: list[str], limit: int = 60) -> str:
    if len(valid) <= limit:
        return ", ".join(valid)
    return f"{', '.join(valid[:limit])}, ... ({len(valid)} in total)"
