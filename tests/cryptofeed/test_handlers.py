"""Every exchange the emitter serves, through cryptofeed's own feed class and message handler.

The families with exchange-specific code have wire-protocol tests (``test_families.py``,
``test_emitter.py``); here every served exchange is checked offline: its monitored feed class
is built and subscribed to every channel the emitter offers there (with its family's settings
and, where cryptofeed needs them, API keys), and a frame its handler cannot parse is reported
as malformed and answered with the family's recovery, never left to crash the connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from cryptofeed.symbols import Symbols
from featurizer_cryptofeed import supported_exchanges
from featurizer_cryptofeed._errors import ResyncRequired
from featurizer_cryptofeed._feeds import make_feed_class

EXCHANGES = sorted(supported_exchanges())


class Recorder:
    """A feed monitor that records what it is told and answers as the emitter would."""

    def __init__(self, resync: bool) -> None:
        self.resync = resync
        self.malformed_calls: list[tuple[Any, Exception]] = []
        self.resets: list[str] = []

    def malformed(self, feed: Any, connection: Any, message: Any, error: Exception) -> bool:
        self.malformed_calls.append((message, error))
        return self.resync

    def books_reset(self, feed: Any, reason: str) -> None:
        self.resets.append(reason)


class LoopbackBullet:
    """Answers KuCoin's token request with a loopback websocket address."""

    def write(self, address: str, **kwargs: Any) -> Any:
        assert address.endswith("/api/v1/bullet-public")
        server = {"endpoint": "wss://127.0.0.1:9/endpoint", "pingInterval": 18000}
        return {"data": {"token": "t", "instanceServers": [server]}}


@pytest.fixture
def seeded_symbols() -> Iterator[None]:
    """cryptofeed's process-wide instrument table, restored after the test."""
    saved = dict(Symbols.data)
    yield
    Symbols.data = saved


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_every_served_exchange_subscribes_and_survives_an_unparsable_frame(
    exchange: str, seeded_symbols: None
) -> None:
    support = supported_exchanges()[exchange]
    family = support.family
    base = support.load_feed_class()
    Symbols.set(
        base.id,  # type: ignore[attr-defined]
        {"BTC-USDT": "BTCUSDT"},
        {"instrument_type": {"BTC-USDT": "spot"}, "tick_size": {"BTC-USDT": "0.01"}},
    )
    feed_class = make_feed_class(
        base,
        websocket=None,
        rest=None,
        ssl_context=None,
        http_timeout=1.0,
        recovery=family.recovery,
        fix=family.feed_fix,
    )
    if exchange == "KUCOIN":
        # KuCoin's feed POSTs to a fixed public address for its websocket address and token
        # when it is built: answer from here instead (nothing may leave the machine)
        feed_class.http_sync = LoopbackBullet()  # type: ignore[attr-defined]
    config: dict[str, Any] = {"log": {"disabled": True}, "uvloop": False}
    if support.keyed_channels:
        config[exchange.lower()] = {"key_id": "id", "key_secret": "secret"}
    extra: dict[str, Any] = {"checksum_validation": True} if family.checksum else {}

    async def ignore(obj: Any, receipt_timestamp: float) -> None:
        return None

    feed = feed_class(
        subscription={channel: ["BTC-USDT"] for channel in support.channels},
        callbacks={channel: [ignore] for channel in support.channels},
        config=config,
        **extra,
    )
    monitor = Recorder(resync=family.recovery == "reconnect")
    feed.attach(monitor)
    connection = SimpleNamespace(
        uuid=f"{exchange}.ws.1",
        subscription={},
        address="wss://127.0.0.1:9/public/spot",
        conn_id=exchange,
    )

    async def handle() -> None:
        await feed.message_handler("this is not json {", connection, time.time())

    if family.recovery == "reconnect":
        with pytest.raises(ResyncRequired):
            asyncio.run(handle())
    else:
        asyncio.run(handle())  # the Binance family resynchronises from a snapshot instead
    assert len(monitor.malformed_calls) == 1
    assert feed.http_conn.__class__.__name__ == "ThreadedResolverHTTPConn"
