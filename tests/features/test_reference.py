"""The references themselves, on small streams worked out by hand."""

from __future__ import annotations

import math

from featurizer_features import reference


def _trade(ts: float, price: float, amount: float, side: str) -> dict:
    return {
        "timestamp": ts,
        "receipt_timestamp": ts,
        "price": price,
        "amount": amount,
        "side": side,
        "trade_id": str(ts),
    }


def _mids(*pairs: tuple[float, float]) -> list[dict]:
    return [{"timestamp": t, "receipt_timestamp": t, "mid_price": m} for t, m in pairs]


def test_volatility_reference() -> None:
    out = reference.volatility(_mids((0.0, 1.0), (0.5, 3.0), (1.0, 5.0), (1.0, 5.0)), window=1.0)
    # windows: [1], [1, 3], [3, 5] (t=0 is on the edge), [3, 5, 5]
    assert [e["volatility"] for e in out] == [0.0, 1.0, 1.0, math.sqrt(8 / 9)]


def test_trade_reference_windows() -> None:
    trades = [
        _trade(0.0, 10.0, 1.0, "buy"),
        _trade(1.0, 20.0, 3.0, "sell"),
        _trade(2.0, 30.0, 1.0, "buy"),
    ]
    assert [e["tvi"] for e in reference.trade_volume_imbalance(trades, window=2.0)] == [
        1.0,
        -0.5,
        -0.5,
    ]
    assert [e["vwap"] for e in reference.vwap(trades, window=2.0)] == [10.0, 17.5, 22.5]


def test_ohlcv_reference() -> None:
    trades = [
        _trade(0.0, 10.0, 1.0, "buy"),
        _trade(0.75, 8.0, 1.0, "sell"),
        _trade(2.0, 9.0, 1.0, "buy"),
    ]
    (bar,) = reference.ohlcv(trades, interval=1.0)
    assert (bar["timestamp"], bar["bucket_start"], bar["open"], bar["high"], bar["low"]) == (
        2.0,
        0.0,
        10.0,
        10.0,
        8.0,
    )
    assert (bar["close"], bar["volume"], bar["vwap"], bar["count"]) == (8.0, 2.0, 9.0, 2)


def test_book_references() -> None:
    def msg(ts: float, bids: tuple, asks: tuple, snapshot: bool = False, gap: bool = False) -> dict:
        return {
            "timestamp": ts,
            "receipt_timestamp": ts,
            "bids": bids,
            "asks": asks,
            "sequence": int(ts),
            "is_snapshot": snapshot,
            "gap": gap,
        }

    book = [
        msg(0.0, ((1.0, 1.0),), (), snapshot=False),
        msg(1.0, ((1.0, 1.0), (2.0, 2.0)), ((3.0, 1.0), (4.0, 1.0)), snapshot=True),
        msg(2.0, ((2.0, 0.0),), ((3.5, 5.0),)),
        msg(3.0, (), (), gap=True),
    ]
    snaps = reference.l2_snapshot(book, depth=2)
    assert [(s["bids"], s["asks"]) for s in snaps] == [
        (((2.0, 2.0), (1.0, 1.0)), ((3.0, 1.0), (4.0, 1.0))),
        (((1.0, 1.0),), ((3.0, 1.0), (3.5, 5.0))),
    ]
    assert [m["mid_price"] for m in reference.mid_price_l2(snaps)] == [2.5, 2.0]
    assert [o["obi"] for o in reference.order_book_imbalance(snaps, depth=2)] == [0.2, -5 / 7]
