"""The wire protocols of the exchange families the tests serve from 127.0.0.1.

Each class renders what its exchange sends (REST instrument lists, book snapshots and
updates with their sequence numbers or checksums, tickers, trades) as documented by the
exchange, for :class:`tests.cryptofeed.fake_venue.FakeVenue`. Checksums are computed here
from the exchanges' documented algorithms, independently of cryptofeed's.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.cryptofeed.fake_venue import Action, Book, price_text, size_text


def iso(ms: int) -> str:
    """Milliseconds since the epoch as an ISO 8601 UTC time with a ``Z``."""
    when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def top(book: Book, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The best ``depth`` bids (descending) and asks (ascending)."""
    bids = sorted(book["bids"].items(), reverse=True)[:depth]
    asks = sorted(book["asks"].items())[:depth]
    return bids, asks


def changed(action: Action, before: Book) -> dict[str, list[tuple[int, int, str]]]:
    """Per side, ``(price, units, what)`` with ``what`` one of ``new``, ``change``, ``delete``."""
    found: dict[str, list[tuple[int, int, str]]] = {"bids": [], "asks": []}
    for side, price, units in action.changes:
        if units == 0:
            what = "delete"
        elif price in before[side]:
            what = "change"
        else:
            what = "new"
        found[side].append((price, units, what))
    return found


class Kraken:
    """Kraken websockets API v1: channel-array frames, CRC32 book checksums (top 10)."""

    exchange = "KRAKEN"
    symbols: Mapping[str, str] = {"BTC-USD": "XBT/USD", "ETH-USD": "ETH/USD"}
    ws_path = "/"
    channels = ("ticker", "trades", "l2_book")
    sizes = True
    fault_reason = "checksum_mismatch"
    iso_times = False
    keys = False

    def routes(self) -> Mapping[str, Any]:
        result = {
            name.replace("/", ""): {"wsname": name, "altname": name.replace("/", "")}
            for name in self.symbols.values()
        }
        return {"/0/public/AssetPairs": {"error": [], "result": result}}

    def subscribe_messages(self, symbols: int) -> int:
        return len(self.channels)

    @staticmethod
    def checksum(book: Book) -> int:
        bids, asks = top(book, 10)

        def digits(text: str) -> str:
            return text.replace(".", "").lstrip("0")

        text = "".join(digits(price_text(p)) + digits(size_text(q)) for p, q in asks)
        text += "".join(digits(price_text(p)) + digits(size_text(q)) for p, q in bids)
        return zlib.crc32(text.encode())

    def snapshot(self, symbol: str, book: Book, ms: int) -> list[str]:
        bids, asks = top(book, 1000)
        stamp = f"{ms / 1000:.6f}"
        payload = {
            "as": [[price_text(p), size_text(q), stamp] for p, q in asks],
            "bs": [[price_text(p), size_text(q), stamp] for p, q in bids],
        }
        return [json.dumps([42, payload, "book-1000", self.symbols[symbol]])]

    def delta(self, symbol: str, action: Action, book: Book, before: Book, bad: bool) -> list[str]:
        stamp = f"{action.ms / 1000:.6f}"
        parts = []
        for side, key in (("asks", "a"), ("bids", "b")):
            levels = [
                [price_text(p), size_text(q), stamp] for s, p, q in action.changes if s == side
            ]
            if levels:
                parts.append({key: levels})
        checksum = self.checksum(book) ^ (0xFFFF if bad else 0)
        parts[-1]["c"] = str(checksum)
        return [json.dumps([42, *parts, "book-1000", self.symbols[symbol]])]

    def ticker(self, symbol: str, action: Action) -> str:
        bid, ask, bid_size, ask_size = action.values
        payload = {
            "a": [price_text(ask), 1, size_text(ask_size)],
            "b": [price_text(bid), 2, size_text(bid_size)],
            "c": [price_text(bid), "0.10000000"],
        }
        return json.dumps([7, payload, "ticker", self.symbols[symbol]])

    def trade(self, symbol: str, action: Action) -> str:
        price, amount, side, _ = action.values
        row = [price_text(price), size_text(amount), f"{action.ms / 1000:.6f}", side[0], "l", ""]
        return json.dumps([9, [row], "trade", self.symbols[symbol]])

    def expected_trade_id(self, action: Action) -> str:
        return ""  # Kraken's v1 trades carry no id

    def expected_timestamp(self, action: Action, channel: str) -> float | None:
        return None if channel == "ticker" else action.ms / 1000  # its ticker has no time


class OKX:
    """OKX API v5 public websocket: ``arg``/``data`` frames, CRC32 book checksums (top 25)."""

    exchange = "OKX"
    symbols: Mapping[str, str] = {"BTC-USDT": "BTC-USDT", "ETH-USDT": "ETH-USDT"}
    ws_path = "/ws/v5/public"
    channels = ("ticker", "trades", "l2_book")
    sizes = True
    fault_reason = "checksum_mismatch"
    iso_times = False
    keys = False

    def routes(self) -> Mapping[str, Any]:
        def instruments(request: web.Request) -> Any:
            if request.query.get("instType") != "SPOT":
                return {"code": "0", "data": []}
            return {
                "code": "0",
                "data": [
                    {
                        "instType": "SPOT",
                        "instId": name,
                        "baseCcy": name.split("-")[0],
                        "quoteCcy": name.split("-")[1],
                        "tickSz": "0.01",
                    }
                    for name in self.symbols.values()
                ],
            }

        return {"/api/v5/public/instruments": instruments}

    def subscribe_messages(self, symbols: int) -> int:
        return len(self.channels)  # cryptofeed sends one (growing) message per channel

    @staticmethod
    def checksum(book: Book) -> int:
        bids, asks = top(book, 25)
        parts: list[str] = []
        for i in range(max(len(bids), len(asks))):
            if i < len(bids):
                parts += [price_text(bids[i][0]), size_text(bids[i][1])]
            if i < len(asks):
                parts += [price_text(asks[i][0]), size_text(asks[i][1])]
        crc = zlib.crc32(":".join(parts).encode())
        return crc - (1 << 32) if crc >= 1 << 31 else crc  # OKX sends a signed 32-bit int

    def _book(self, symbol: str, action: str, bids: Any, asks: Any, ms: int, crc: int) -> str:
        return json.dumps(
            {
                "arg": {"channel": "books", "instId": self.symbols[symbol]},
                "action": action,
                "data": [
                    {
                        "asks": [[price_text(p), size_text(q), "0", "1"] for p, q in asks],
                        "bids": [[price_text(p), size_text(q), "0", "1"] for p, q in bids],
                        "ts": str(ms),
                        "checksum": crc,
                    }
                ],
            }
        )

    def snapshot(self, symbol: str, book: Book, ms: int) -> list[str]:
        bids, asks = top(book, 400)
        return [self._book(symbol, "snapshot", bids, asks, ms, self.checksum(book))]

    def delta(self, symbol: str, action: Action, book: Book, before: Book, bad: bool) -> list[str]:
        bids = [(p, q) for s, p, q in action.changes if s == "bids"]
        asks = [(p, q) for s, p, q in action.changes if s == "asks"]
        crc = self.checksum(book) + (1 if bad else 0)
        return [self._book(symbol, "update", bids, asks, action.ms, crc)]

    def ticker(self, symbol: str, action: Action) -> str:
        bid, ask, bid_size, ask_size = action.values
        name = self.symbols[symbol]
        row = {
            "instType": "SPOT",
            "instId": name,
            "last": price_text(bid),
            "bidPx": price_text(bid),
            "bidSz": size_text(bid_size),
            "askPx": price_text(ask),
            "askSz": size_text(ask_size),
            "ts": str(action.ms),
        }
        return json.dumps({"arg": {"channel": "tickers", "instId": name}, "data": [row]})

    def trade(self, symbol: str, action: Action) -> str:
        price, amount, side, trade_id = action.values
        name = self.symbols[symbol]
        row = {
            "instId": name,
            "tradeId": str(trade_id),
            "px": price_text(price),
            "sz": size_text(amount),
            "side": side,
            "ts": str(action.ms),
        }
        return json.dumps({"arg": {"channel": "trades", "instId": name}, "data": [row]})

    def expected_trade_id(self, action: Action) -> str:
        return str(action.values[3])

    def expected_timestamp(self, action: Action, channel: str) -> float | None:
        return action.ms / 1000


class Deribit:
    """Deribit JSON-RPC websocket: ``change_id``/``prev_change_id`` book sequence numbers."""

    exchange = "DERIBIT"
    symbols: Mapping[str, str] = {"BTC-USD-PERP": "BTC-PERPETUAL", "ETH-USD-PERP": "ETH-PERPETUAL"}
    ws_path = "/ws/api/v2"
    channels = ("ticker", "trades", "l2_book")
    sizes = True
    fault_reason = "sequence_gap"
    iso_times = False
    keys = True

    def __init__(self) -> None:
        self.change_ids = dict.fromkeys(self.symbols, 1_000)

    def routes(self) -> Mapping[str, Any]:
        def instruments(request: web.Request) -> Any:
            currency = request.query.get("currency")
            rows = [
                {
                    "instrument_name": name,
                    "base_currency": name.split("-")[0],
                    "quote_currency": "USD",
                    "settlement_period": "perpetual",
                    "kind": "future",
                    "expiration_timestamp": 32503708800000,
                    "tick_size": 0.01,
                }
                for name in self.symbols.values()
                if name.startswith(f"{currency}-")
            ]
            return {"jsonrpc": "2.0", "result": rows}

        return {"/api/v2/public/get_instruments": instruments}

    def subscribe_messages(self, symbols: int) -> int:
        return 2  # public/auth, then private/subscribe (cryptofeed subscribes with keys)

    @staticmethod
    def _frame(channel: str, data: Any) -> str:
        return json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "subscription",
                "params": {"channel": channel, "data": data},
            }
        )

    def snapshot(self, symbol: str, book: Book, ms: int) -> list[str]:
        bids, asks = top(book, 1000)
        name = self.symbols[symbol]
        data = {
            "timestamp": ms,
            "instrument_name": name,
            "change_id": self.change_ids[symbol],
            "bids": [["new", p / 100, q / 1000] for p, q in bids],
            "asks": [["new", p / 100, q / 1000] for p, q in asks],
        }
        return [self._frame(f"book.{name}.raw", data)]

    def delta(self, symbol: str, action: Action, book: Book, before: Book, bad: bool) -> list[str]:
        previous = self.change_ids[symbol]
        self.change_ids[symbol] = previous + (2 if bad else 1)  # bad: an update was missed
        name = self.symbols[symbol]
        levels = changed(action, before)
        data = {
            "timestamp": action.ms,
            "instrument_name": name,
            "prev_change_id": self.change_ids[symbol] - 1,
            "change_id": self.change_ids[symbol],
            "bids": [[what, p / 100, q / 1000] for p, q, what in levels["bids"]],
            "asks": [[what, p / 100, q / 1000] for p, q, what in levels["asks"]],
        }
        return [self._frame(f"book.{name}.raw", data)]

    def ticker(self, symbol: str, action: Action) -> str:
        bid, ask, bid_size, ask_size = action.values
        name = self.symbols[symbol]
        data = {
            "timestamp": action.ms,
            "instrument_name": name,
            "best_bid_price": bid / 100,
            "best_ask_price": ask / 100,
            "best_bid_amount": bid_size / 1000,
            "best_ask_amount": ask_size / 1000,
            "open_interest": 1234.5,
            "state": "open",
        }
        return self._frame(f"ticker.{name}.raw", data)

    def trade(self, symbol: str, action: Action) -> str:
        price, amount, side, trade_id = action.values
        name = self.symbols[symbol]
        row = {
            "trade_seq": trade_id,
            "trade_id": str(trade_id),
            "timestamp": action.ms,
            "price": price / 100,
            "instrument_name": name,
            "direction": side,
            "amount": amount / 1000,
        }
        return self._frame(f"trades.{name}.raw", [row])

    def expected_trade_id(self, action: Action) -> str:
        return str(action.values[3])

    def expected_timestamp(self, action: Action, channel: str) -> float | None:
        return action.ms / 1000


class Bybit:
    """Bybit v5 public linear websocket: ``topic``/``type`` frames, no book check in cryptofeed."""

    exchange = "BYBIT"
    symbols: Mapping[str, str] = {"BTC-USDT-PERP": "BTCUSDT", "ETH-USDT-PERP": "ETHUSDT"}
    ws_path = "/v5/public/linear"
    channels = ("ticker", "trades", "l2_book")
    sizes = True
    fault_reason = "malformed_message"
    iso_times = False
    keys = False

    def routes(self) -> Mapping[str, Any]:
        def instruments(request: web.Request) -> Any:
            rows = []
            if request.query.get("category") == "linear":
                rows = [
                    {
                        "symbol": name,
                        "contractType": "LinearPerpetual",
                        "baseCoin": name[:-4],
                        "quoteCoin": "USDT",
                        "priceFilter": {"tickSize": "0.01"},
                    }
                    for name in self.symbols.values()
                ]
            return {"retCode": 0, "result": {"list": rows}}

        return {"/v5/market/instruments-info": instruments}

    def subscribe_messages(self, symbols: int) -> int:
        return 1 + 2 * symbols  # tickers for all, then trades and book per symbol

    def _book(self, symbol: str, kind: str, bids: Any, asks: Any, ms: int) -> str:
        name = self.symbols[symbol]
        return json.dumps(
            {
                "topic": f"orderbook.200.{name}",
                "type": kind,
                "ts": ms,
                "data": {"s": name, "b": bids, "a": asks, "u": 1, "seq": 1},
                "cts": ms,
            }
        )

    def snapshot(self, symbol: str, book: Book, ms: int) -> list[str]:
        bids, asks = top(book, 200)
        return [
            self._book(
                symbol,
                "snapshot",
                [[price_text(p), size_text(q)] for p, q in bids],
                [[price_text(p), size_text(q)] for p, q in asks],
                ms,
            )
        ]

    def delta(self, symbol: str, action: Action, book: Book, before: Book, bad: bool) -> list[str]:
        def levels(side: str) -> list[list[str]]:
            return [
                [price_text(p), "0" if q == 0 else size_text(q)]
                for s, p, q in action.changes
                if s == side
            ]

        bids, asks = levels("bids"), levels("asks")
        if bad:
            (bids or asks)[-1][1] = "oops"
        return [self._book(symbol, "delta", bids, asks, action.ms)]

    def ticker(self, symbol: str, action: Action) -> str:
        bid, ask, bid_size, ask_size = action.values
        name = self.symbols[symbol]
        data = {
            "symbol": name,
            "bid1Price": price_text(bid),
            "bid1Size": size_text(bid_size),
            "ask1Price": price_text(ask),
            "ask1Size": size_text(ask_size),
        }
        return json.dumps(
            {"topic": f"tickers.{name}", "type": "snapshot", "data": data, "cs": 1, "ts": action.ms}
        )

    def trade(self, symbol: str, action: Action) -> str:
        price, amount, side, trade_id = action.values
        name = self.symbols[symbol]
        row = {
            "T": action.ms,
            "s": name,
            "S": "Buy" if side == "buy" else "Sell",
            "v": size_text(amount),
            "p": price_text(price),
            "L": "PlusTick",
            "i": f"trade-{trade_id}",
            "BT": False,
        }
        return json.dumps(
            {"topic": f"publicTrade.{name}", "type": "snapshot", "ts": action.ms, "data": [row]}
        )

    def expected_trade_id(self, action: Action) -> str:
        return f"trade-{action.values[3]}"

    def expected_timestamp(self, action: Action, channel: str) -> float | None:
        return action.ms / 1000


class Bitmex:
    """BitMEX realtime websocket: ``table``/``action`` frames, book levels keyed by id."""

    exchange = "BITMEX"
    symbols: Mapping[str, str] = {"BTC-USD-PERP": "XBTUSD", "ETH-USD-PERP": "ETHUSD"}
    ws_path = "/realtime"
    channels = ("ticker", "trades", "l2_book")
    sizes = True
    fault_reason = "malformed_message"
    iso_times = True
    keys = False

    def routes(self) -> Mapping[str, Any]:
        rows = [
            {
                "symbol": name,
                "rootSymbol": name[:3],
                "quoteCurrency": "USD",
                "typ": "FFWCSX",
                "tickSize": 0.01,
                "isQuanto": False,
            }
            for name in self.symbols.values()
        ]
        return {"/api/v1/instrument/active": rows}

    def subscribe_messages(self, symbols: int) -> int:
        return -(-len(self.channels) * symbols // 10)  # ten subscriptions per message

    @staticmethod
    def level_id(side: str, price: int) -> int:
        return price * 2 + (0 if side == "bids" else 1)

    def _row(
        self, symbol: str, side: str, price: int, units: int, ms: int, with_price: bool
    ) -> Any:
        row: dict[str, Any] = {
            "symbol": self.symbols[symbol],
            "id": self.level_id(side, price),
            "side": "Buy" if side == "bids" else "Sell",
            "timestamp": iso(ms),
        }
        if units:
            row["size"] = units / 1000
        if with_price:
            row["price"] = price / 100
        return row

    def snapshot(self, symbol: str, book: Book, ms: int) -> list[str]:
        rows = [
            self._row(symbol, side, p, q, ms, True)
            for side in ("asks", "bids")
            for p, q in sorted(book[side].items(), reverse=True)
        ]
        return [json.dumps({"table": "orderBookL2", "action": "partial", "data": rows})]

    def delta(self, symbol: str, action: Action, book: Book, before: Book, bad: bool) -> list[str]:
        frames = []
        groups: dict[str, list[Any]] = {"insert": [], "update": [], "delete": []}
        for side, levels in changed(action, before).items():
            for price, units, what in levels:
                name = {"new": "insert", "change": "update", "delete": "delete"}[what]
                groups[name].append(
                    self._row(symbol, side, price, units, action.ms, name == "insert")
                )
        if bad:  # an update of a level the client never saw
            groups["update"].append(
                {
                    "symbol": self.symbols[symbol],
                    "id": 7,
                    "side": "Buy",
                    "size": 1.0,
                    "timestamp": iso(action.ms),
                }
            )
        for name, rows in groups.items():
            if rows:
                frames.append(json.dumps({"table": "orderBookL2", "action": name, "data": rows}))
        return frames

    def ticker(self, symbol: str, action: Action) -> str:
        bid, ask, bid_size, ask_size = action.values
        row = {
            "timestamp": iso(action.ms),
            "symbol": self.symbols[symbol],
            "bidSize": bid_size / 1000,
            "bidPrice": bid / 100,
            "askPrice": ask / 100,
            "askSize": ask_size / 1000,
        }
        return json.dumps({"table": "quote", "action": "insert", "data": [row]})

    def trade(self, symbol: str, action: Action) -> str:
        price, amount, side, trade_id = action.values
        row = {
            "timestamp": iso(action.ms),
            "symbol": self.symbols[symbol],
            "side": "Buy" if side == "buy" else "Sell",
            "size": amount / 1000,
            "price": price / 100,
            "trdMatchID": f"00000000-0000-0000-0000-{trade_id:012d}",
        }
        return json.dumps({"table": "trade", "action": "insert", "data": [row]})

    def expected_trade_id(self, action: Action) -> str:
        return f"00000000-0000-0000-0000-{action.values[3]:012d}"

    def expected_timestamp(self, action: Action, channel: str) -> float | None:
        return action.ms / 1000


class Coinbase:
    """Coinbase Advanced Trade websocket: ``channel``/``events`` frames (no ticker in cryptofeed)."""

    exchange = "COINBASE"
    symbols: Mapping[str, str] = {"BTC-USD": "BTC-USD", "ETH-USD": "ETH-USD"}
    ws_path = "/"
    channels = ("trades", "l2_book")
    sizes = False
    fault_reason = "malformed_message"
    iso_times = True
    keys = True

    def __init__(self) -> None:
        self.sequence = 0

    def routes(self) -> Mapping[str, Any]:
        rows = [
            {
                "product_id": name,
                "base_currency_id": name.split("-")[0],
                "quote_currency_id": name.split("-")[1],
                "quote_increment": "0.01",
            }
            for name in self.symbols.values()
        ]
        return {"/api/v3/brokerage/products": {"products": rows}}

    def subscribe_messages(self, symbols: int) -> int:
        return len(self.channels) + 1  # one per channel, then heartbeats

    def _frame(self, channel: str, ms: int, events: Any) -> str:
        self.sequence += 1
        return json.dumps(
            {
                "channel": channel,
                "timestamp": iso(ms),
                "sequence_num": self.sequence,
                "events": events,
            }
        )

    def _updates(self, levels: Any, ms: int) -> list[Any]:
        return [
            {
                "side": "bid" if side == "bids" else "offer",
                "event_time": iso(ms),
                "price_level": price_text(p),
                "new_quantity": "0" if q == 0 else size_text(q),
            }
            for side, p, q in levels
        ]

    def snapshot(self, symbol: str, book: Book, ms: int) -> list[str]:
        levels = [(side, p, q) for side in ("bids", "asks") for p, q in book[side].items()]
        event = {
            "type": "snapshot",
            "product_id": self.symbols[symbol],
            "updates": self._updates(levels, ms),
        }
        return [self._frame("l2_data", ms, [event])]

    def delta(self, symbol: str, action: Action, book: Book, before: Book, bad: bool) -> list[str]:
        updates = self._updates(action.changes, action.ms)
        if bad:
            updates[-1]["new_quantity"] = "oops"
        event = {"type": "update", "product_id": self.symbols[symbol], "updates": updates}
        return [self._frame("l2_data", action.ms, [event])]

    def ticker(self, symbol: str, action: Action) -> str:
        raise AssertionError("cryptofeed has no Coinbase ticker channel")

    def trade(self, symbol: str, action: Action) -> str:
        price, amount, side, trade_id = action.values
        row = {
            "trade_id": str(trade_id),
            "product_id": self.symbols[symbol],
            "price": price_text(price),
            "size": size_text(amount),
            "side": side.upper(),
            "time": iso(action.ms),
        }
        return self._frame("market_trades", action.ms, [{"type": "update", "trades": [row]}])

    def expected_trade_id(self, action: Action) -> str:
        return str(action.values[3])

    def expected_timestamp(self, action: Action, channel: str) -> float | None:
        return action.ms / 1000


class Gemini:
    """Gemini market data v2: ``l2_updates`` (the first one per symbol is the whole book)."""

    exchange = "GEMINI"
    symbols: Mapping[str, str] = {"BTC-USD": "BTCUSD", "ETH-USD": "ETHUSD"}
    ws_path = "/v2/marketdata/"
    channels = ("trades", "l2_book")
    sizes = False
    fault_reason = "malformed_message"
    iso_times = False
    keys = False

    def routes(self) -> Mapping[str, Any]:
        def details(request: web.Request) -> Any:
            name = request.match_info["symbol"].upper()
            return {
                "symbol": name,
                "base_currency": name[:3],
                "quote_currency": name[3:],
                "tick_size": 0.01,
                "status": "open",
            }

        return {
            "/v1/symbols": [name.lower() for name in self.symbols.values()],
            "/v1/symbols/details/{symbol}": details,
        }

    def subscribe_messages(self, symbols: int) -> int:
        return 1

    def _changes(self, symbol: str, rows: Any, bad: bool = False) -> str:
        changes = [
            ["buy" if side == "bids" else "sell", price_text(p), "0" if q == 0 else size_text(q)]
            for side, p, q in rows
        ]
        if bad:
            changes[-1][2] = "oops"
        return json.dumps(
            {"type": "l2_updates", "symbol": self.symbols[symbol], "changes": changes}
        )

    def snapshot(self, symbol: str, book: Book, ms: int) -> list[str]:
        rows = [(side, p, q) for side in ("bids", "asks") for p, q in book[side].items()]
        return [self._changes(symbol, rows)]

    def delta(self, symbol: str, action: Action, book: Book, before: Book, bad: bool) -> list[str]:
        return [self._changes(symbol, action.changes, bad)]

    def ticker(self, symbol: str, action: Action) -> str:
        raise AssertionError("Gemini has no ticker channel in cryptofeed")

    def trade(self, symbol: str, action: Action) -> str:
        price, amount, side, trade_id = action.values
        return json.dumps(
            {
                "type": "trade",
                "symbol": self.symbols[symbol],
                "event_id": trade_id,
                "timestamp": action.ms,
                "price": price_text(price),
                "quantity": size_text(amount),
                "side": side,
            }
        )

    def expected_trade_id(self, action: Action) -> str:
        return str(action.values[3])

    def expected_timestamp(self, action: Action, channel: str) -> float | None:
        return action.ms / 1000


VENUES = (Kraken, OKX, Deribit, Bybit, Bitmex, Coinbase, Gemini)
