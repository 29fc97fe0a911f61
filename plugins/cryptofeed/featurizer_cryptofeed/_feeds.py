"""cryptofeed feed classes with the hooks the emitter observes them through.

This module imports cryptofeed at the top: it is imported only from inside the emitter's
methods, never at plugin discovery, so ``featurizer plugins`` works without cryptofeed.

cryptofeed 2.4.1 gives no callback for connection events, book resets or parse failures, so
:func:`make_feed_class` derives a class from the exchange's feed that reports them to a
:class:`FeedMonitor`:

* ``subscribe`` runs on every (re)connection: it reports the connection.
* the connection handler's per-connection read loop ends when a connection drops: it reports
  the drop (only while running, so stopping is not a drop); a failed attempt to open a
  connection is reported too (the emitter fails fast when an exchange is never reachable).
* its HTTP connection resolves names without aiodns (see :class:`ThreadedResolverHTTPConn`).
* ``message_handler`` raising would make cryptofeed drop the connection; failures (parse and
  conversion errors, cryptofeed's ``MissingSequenceNumber`` and ``BadChecksum``) are reported
  instead. The monitor answers whether the connection must be renewed to recover its books
  (families that recover by reconnecting): then :class:`ResyncRequired` is raised, and
  cryptofeed reconnects and subscribes again, which brings new snapshots. Network errors
  propagate, so cryptofeed's reconnection and back-off apply to them.
* for families that recover a book from a REST snapshot (Binance), :class:`_SnapshotResync`
  also reports ``_reset`` (every book dropped after an update-id gap) and can drop one book.

Endpoints are class attributes in cryptofeed (its constructor already loads the exchange's
instruments from them), so address overrides are class attributes of the derived class.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import requests
from cryptofeed.connection import (
    AsyncConnection,
    HTTPAsyncConn,
    HTTPSync,
    WSAsyncConn,
)
from cryptofeed.connection_handler import ConnectionHandler
from cryptofeed.exceptions import BadChecksum, ExhaustedRetries, MissingSequenceNumber
from websockets.exceptions import ConnectionClosed

from featurizer_cryptofeed._errors import ResyncRequired

__all__ = ["FEED_FIXES", "FeedMonitor", "ResyncRequired", "failure_reason", "make_feed_class"]

logger = logging.getLogger(__name__)

_NETWORK_ERRORS = (OSError, aiohttp.ClientError, ConnectionClosed)
"""Raised by message handling because the network failed, not the message: they propagate."""

_CLOSE_TIMEOUT = 1.0
"""Seconds a closing websocket waits for the server's close frame (websockets' default: 10)."""


def failure_reason(error: Exception) -> str:
    """The gap reason of an exception raised while handling a message.

    >>> failure_reason(BadChecksum()), failure_reason(ValueError("x"))
    ('checksum_mismatch', 'malformed_message')
    """
    if isinstance(error, MissingSequenceNumber):
        return "sequence_gap"
    if isinstance(error, BadChecksum):
        return "checksum_mismatch"
    return "malformed_message"


class FeedMonitor(Protocol):
    """Receives what a monitored feed reports, on the feed's event loop thread."""

    def connected(self, feed: Any, connection: AsyncConnection) -> None:
        """A websocket connection was established and is being subscribed."""

    def disconnected(self, feed: Any, connection: AsyncConnection) -> None:
        """An established websocket connection ended while running."""

    def connect_failed(self, feed: Any, connection: AsyncConnection, error: Exception) -> None:
        """An attempt to open a websocket connection failed."""

    def books_reset(self, feed: Any, reason: str) -> None:
        """Every book of ``feed`` was dropped; cryptofeed will fetch new snapshots."""

    def malformed(
        self, feed: Any, connection: AsyncConnection, message: Any, error: Exception
    ) -> bool:
        """A message could not be handled and was dropped.

        :returns: whether the connection must be renewed to recover its books.
        """

    def unsubscribed(self, feed: Any, channel: str, symbol: str) -> None:
        """A message for a stream nobody subscribed to was dropped."""

    def gave_up(self, feed: Any, connection: AsyncConnection, error: Exception) -> None:
        """A connection failed more often than the retries allowed; it is not reopened."""


class BoundedHTTPSync(HTTPSync):
    """cryptofeed's synchronous HTTP client with a timeout (it has none by default).

    :param timeout: seconds allowed per request.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def read(
        self,
        address: str,
        params: Any = None,
        headers: Any = None,
        json: bool = False,
        text: bool = True,
        uuid: Any = None,
    ) -> Any:
        """GET ``address`` (as cryptofeed's ``HTTPSync.read``, bounded by the timeout)."""
        response = requests.get(address, headers=headers, params=params, timeout=self.timeout)
        return self.process_response(response, address, json=json, text=text, uuid=uuid)

    def write(
        self,
        address: str,
        data: Any = None,
        json: bool = False,
        text: bool = True,
        uuid: Any = None,
        is_data_json: bool = False,
    ) -> Any:
        """POST to ``address`` (as cryptofeed's ``HTTPSync.write``, bounded by the timeout).

        KuCoin's feed asks for its websocket address and token this way when it is built.
        """
        if is_data_json:
            response = requests.post(address, json=data, timeout=self.timeout)
        else:
            response = requests.post(address, data=data, timeout=self.timeout)
        return self.process_response(response, address, json=json, text=text, uuid=uuid)


class ThreadedResolverHTTPConn(HTTPAsyncConn):
    """cryptofeed's async HTTP connection, resolving names with the loop's executor.

    aiohttp resolves through aiodns when it is installed (a cryptofeed dependency), and
    pycares then starts a process-wide thread that never ends. The loop's default executor is
    joined when the emitter's loop closes, so no thread outlives the emitter.
    """

    async def _open(self) -> None:
        if self.is_open:
            logger.warning("%s: HTTP session already created", self.id)
            return
        connector = aiohttp.TCPConnector(resolver=aiohttp.ThreadedResolver())
        self.conn = aiohttp.ClientSession(connector=connector)
        self.sent = 0
        self.received = 0
        self.last_message = None


class _MonitoredConnectionHandler(ConnectionHandler):
    """Reports the end of an established connection, and giving up after too many retries."""

    def __init__(self, feed: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.feed = feed
        opener = self.conn._open

        async def monitored_open() -> None:
            try:
                await opener()
            except Exception as error:
                monitor = self.feed._featurizer_monitor
                if monitor is not None and self.running:
                    monitor.connect_failed(self.feed, self.conn, error)
                raise

        self.conn._open = monitored_open

    async def _handler(self, connection: AsyncConnection, handler: Any) -> None:
        try:
            await super()._handler(connection, handler)
        finally:
            monitor = self.feed._featurizer_monitor
            if self.running and monitor is not None:
                monitor.disconnected(self.feed, connection)

    async def _create_connection(self) -> None:
        try:
            await super()._create_connection()
        except ExhaustedRetries as error:
            monitor = self.feed._featurizer_monitor
            if monitor is not None:
                monitor.gave_up(self.feed, self.conn, error)


class _MonitoredFeed:
    """Mixed in before any cryptofeed feed class to report to a monitor."""

    _featurizer_monitor: FeedMonitor | None = None
    _featurizer_subscribing = False
    _featurizer_handlers: dict[str, Callable[[Any, float], None]] = {}  # noqa: RUF012

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        feed: Any = self
        feed.http_conn = ThreadedResolverHTTPConn(feed.id, feed.http_proxy)

    def attach(
        self,
        monitor: FeedMonitor,
        handlers: dict[str, Callable[[Any, float], None]] | None = None,
    ) -> None:
        """Report to ``monitor`` from now on, and hand channels' data to ``handlers``.

        :param handlers: per cryptofeed channel, a plain function called with each data object
            and its receipt time instead of the feed's (awaited) callbacks: one coroutine less
            per message on the hot path.
        """
        self._featurizer_monitor = monitor
        self._featurizer_handlers = dict(handlers or {})

    async def callback(self, data_type: str, obj: Any, receipt_timestamp: float) -> None:
        handler = self._featurizer_handlers.get(data_type)
        if handler is not None:
            handler(obj, receipt_timestamp)
        else:
            await super().callback(data_type, obj, receipt_timestamp)  # type: ignore[misc]

    async def subscribe(self, connection: AsyncConnection) -> None:
        monitor = self._featurizer_monitor
        if monitor is not None and isinstance(connection, WSAsyncConn):
            monitor.connected(self, connection)
        self._featurizer_subscribing = True
        try:
            await super().subscribe(connection)  # type: ignore[misc]
        finally:
            self._featurizer_subscribing = False

    async def message_handler(
        self, message: Any, connection: AsyncConnection, timestamp: float
    ) -> None:
        try:
            await super().message_handler(message, connection, timestamp)  # type: ignore[misc]
        except (*_NETWORK_ERRORS, ResyncRequired):
            raise
        except Exception as error:
            monitor = self._featurizer_monitor
            if monitor is None:
                raise
            if monitor.malformed(self, connection, message, error):
                raise ResyncRequired(f"{failure_reason(error)}: {error!r}") from error

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """cryptofeed's ``Feed.start`` with monitored connection handlers (no backends)."""
        feed: Any = self
        for connection, subscribe, handler, authenticate in feed.connect():
            monitored = _MonitoredConnectionHandler(
                self,
                connection,
                subscribe,
                handler,
                authenticate,
                feed.retries,
                timeout=feed.timeout,
                timeout_interval=feed.timeout_interval,
                exceptions=feed.exceptions,
                log_on_error=feed.log_on_error,
                start_delay=feed.start_delay,
            )
            feed.connection_handlers.append(monitored)
            monitored.start(loop)


class _SnapshotResync(_MonitoredFeed):
    """For feeds that rebuild a book from a REST snapshot (the Binance family).

    ``_reset`` clears every book of the feed; outside ``subscribe`` it means cryptofeed found
    an update-id gap (or the emitter asked for it): it reports a book reset.
    """

    _featurizer_reset_reason = "book_reset"
    _featurizer_books: frozenset[str] | None = None

    async def _book(self, msg: Any, pair: str, timestamp: float) -> None:
        # An update of a book nobody subscribed to would fetch its snapshot and, at its next
        # update-id gap, reset every book of the feed: it is counted and dropped instead.
        feed: Any = self
        books = self._featurizer_books
        if books is None:
            exchange_channel = feed.std_channel_to_exchange("l2_book")
            books = self._featurizer_books = frozenset(
                feed.exchange_symbol_to_std_symbol(symbol)
                for symbol in feed.subscription.get(exchange_channel, ())
            )
        symbol = feed.exchange_symbol_mapping.get(pair)
        if symbol not in books:
            monitor = self._featurizer_monitor
            if monitor is not None:
                monitor.unsubscribed(self, "l2_book", pair)
            return
        await super()._book(msg, pair, timestamp)  # type: ignore[misc]

    def _reset(self) -> None:
        super()._reset()  # type: ignore[misc]
        monitor = self._featurizer_monitor
        if monitor is not None and not self._featurizer_subscribing:
            monitor.books_reset(self, self._featurizer_reset_reason)

    def reset_books(self, reason: str) -> None:
        """Drop every book (cryptofeed fetches new snapshots), reporting ``reason``."""
        self._featurizer_reset_reason = reason
        try:
            self._reset()
        finally:
            self._featurizer_reset_reason = "book_reset"

    def resync_book(self, symbol: str) -> None:
        """Drop the book of ``symbol`` only: its next update fetches a new snapshot."""
        self._l2_book.pop(symbol, None)  # type: ignore[attr-defined]
        self.last_update_id.pop(symbol, None)  # type: ignore[attr-defined]


class _CoinbaseSnapshotSides:
    """Coinbase sends ask levels as ``"offer"``; cryptofeed 2.4.1's snapshot reads ``"ask"``
    (its updates read anything but ``"bid"`` as an ask), so every snapshot lost its asks."""

    async def _pair_level2_snapshot(self, msg: Any, timestamp: float) -> None:
        for update in msg.get("updates", ()):
            if update.get("side") == "offer":
                update["side"] = "ask"
        await super()._pair_level2_snapshot(msg, timestamp)  # type: ignore[misc]


FEED_FIXES: dict[str, type] = {"coinbase": _CoinbaseSnapshotSides}
"""Corrections of cryptofeed feeds, by name (see ``ExchangeFamily.feed_fix``)."""


def _override(address: str, given: str | None, *, single: bool) -> str:
    """``address`` moved to ``given``: the whole address for a lone endpoint given with a path,
    else only the scheme and host, keeping the endpoint's own path.

    >>> _override("wss://ws.okx.com:8443/ws/v5/public", "wss://127.0.0.1:9", single=False)
    'wss://127.0.0.1:9/ws/v5/public'
    >>> _override("wss://stream.binance.com:9443", "wss://127.0.0.1:9/x", single=True)
    'wss://127.0.0.1:9/x'
    """
    if given is None:
        return address
    new = urlsplit(given)
    if single and new.path not in ("", "/"):
        return given
    old = urlsplit(address)
    return urlunsplit((new.scheme, new.netloc, old.path, old.query, old.fragment))


def make_feed_class(
    base: type,
    *,
    websocket: str | None,
    rest: str | None,
    ssl_context: ssl.SSLContext | None,
    http_timeout: float,
    recovery: str = "reconnect",
    fix: str | None = None,
) -> type:
    """Derive a monitored feed class from the cryptofeed feed ``base``.

    :param base: e.g. ``cryptofeed.exchanges.binance.Binance``.
    :param websocket: moves its websocket endpoints to this address (see :func:`_override`).
    :param rest: moves its REST endpoints to this address, keeping the routes.
    :param ssl_context: used for its ``wss://`` connections (``None``: websockets' default).
    :param http_timeout: seconds allowed per synchronous REST request (instrument loading).
    :param recovery: ``"snapshot"`` for feeds that rebuild books from REST snapshots
        (:class:`_SnapshotResync`), else ``"reconnect"``.
    :param fix: the name of a correction in :data:`FEED_FIXES` to mix in.
    :returns: the class; instances need :meth:`attach` before they start.
    :raises ValueError: when a websocket address is given for an exchange that has none (it
        gets it from its REST API).
    """
    namespace: dict[str, Any] = {
        "http_sync": BoundedHTTPSync(http_timeout),
        "__module__": __name__,
    }
    endpoints = list(base.websocket_endpoints or [])  # type: ignore[attr-defined]
    if websocket is not None and not endpoints:
        raise ValueError(
            f"{base.__name__} takes its websocket address from its REST API: override its "
            f"rest address only"
        )
    replaced = []
    for endpoint in endpoints:
        options = dict(endpoint.options or {})
        options["close_timeout"] = _CLOSE_TIMEOUT
        if ssl_context is not None:
            options["ssl"] = ssl_context
        address = _override(endpoint.address, websocket, single=len(endpoints) == 1)
        replaced.append(dataclasses.replace(endpoint, address=address, options=options))
    namespace["websocket_endpoints"] = replaced
    if rest is not None:
        rest_endpoints = list(base.rest_endpoints)  # type: ignore[attr-defined]
        namespace["rest_endpoints"] = [
            dataclasses.replace(
                endpoint,
                address=_override(endpoint.address, rest, single=len(rest_endpoints) == 1),
            )
            for endpoint in rest_endpoints
        ]
    mixins: tuple[type, ...] = (_SnapshotResync if recovery == "snapshot" else _MonitoredFeed,)
    if fix is not None:
        mixins = (*mixins, FEED_FIXES[fix])
    return type(f"Monitored{base.__name__}", (*mixins, base), namespace)
