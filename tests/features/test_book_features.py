"""L2 book features equal their brute-force references: l2_snapshot, mid_price_l2, obi."""

from __future__ import annotations

from featurizer_features import (
    L2BookSource,
    L2Snapshot,
    MidPriceL2,
    OrderBookImbalance,
    Volatility,
    reference,
)
from hypothesis import given
from hypothesis import strategies as st

from featurizer.testing.strategies import l2_book_streams
from tests.features.features_support import PROPERTY, assert_same, feature, run, source

DEPTHS = st.sampled_from([1, 2, 3, 10])


@PROPERTY
@given(book=l2_book_streams(), depth=DEPTHS)
def test_l2_snapshot_matches_reference(book: list[dict], depth: int) -> None:
    src = source(L2BookSource)
    snap = feature(L2Snapshot, {"depth": depth}, l2_book=src)
    assert_same(run([snap], src, book)[snap], reference.l2_snapshot(book, depth=depth))


@PROPERTY
@given(book=l2_book_streams(), depth=DEPTHS)
def test_mid_price_l2_matches_reference(book: list[dict], depth: int) -> None:
    src = source(L2BookSource)
    mid = feature(MidPriceL2, l2_snapshot=feature(L2Snapshot, {"depth": depth}, l2_book=src))
    expected = reference.mid_price_l2(reference.l2_snapshot(book, depth=depth))
    assert_same(run([mid], src, book)[mid], expected)


@PROPERTY
@given(book=l2_book_streams(), depth=DEPTHS, snapshot_depth=DEPTHS)
def test_order_book_imbalance_matches_reference(
    book: list[dict], depth: int, snapshot_depth: int
) -> None:
    src = source(L2BookSource)
    snap = feature(L2Snapshot, {"depth": snapshot_depth}, l2_book=src)
    obi = feature(OrderBookImbalance, {"depth": depth}, l2_snapshot=snap)
    expected = reference.order_book_imbalance(
        reference.l2_snapshot(book, depth=snapshot_depth), depth=depth
    )
    assert_same(run([obi], src, book)[obi], expected)


@PROPERTY
@given(book=l2_book_streams(), window=st.sampled_from([0.25, 1.0, 60.0]))
def test_volatility_over_mid_price_l2_matches_reference(book: list[dict], window: float) -> None:
    src = source(L2BookSource)
    mid = feature(MidPriceL2, l2_snapshot=feature(L2Snapshot, l2_book=src))
    vol = feature(Volatility, {"window": window}, mid=mid)
    expected = reference.volatility(
        reference.mid_price_l2(reference.l2_snapshot(book)), window=window
    )
    assert_same(run([vol], src, book)[vol], expected)


def _msg(
    seq: int, bids: tuple = (), asks: tuple = (), *, snapshot: bool = False, gap: bool = False
) -> dict:
    return {
        "timestamp": float(seq),
        "receipt_timestamp": float(seq),
        "bids": bids,
        "asks": asks,
        "sequence": seq,
        "is_snapshot": snapshot,
        "gap": gap,
    }


def test_l2_snapshot_lifecycle() -> None:
    src = source(L2BookSource)
    snap = feature(L2Snapshot, {"depth": 2}, l2_book=src)
    mid = feature(MidPriceL2, l2_snapshot=snap)
    obi = feature(OrderBookImbalance, {"depth": 1}, l2_snapshot=snap)
    book = [
        _msg(0, ((10.0, 1.0),)),  # delta before any snapshot: ignored
        _msg(1, ((10.0, 1.0), (9.0, 2.0), (8.0, 3.0)), ((11.0, 3.0),), snapshot=True),
        _msg(2, ((8.0, 0.0), (10.5, 1.0)), ((11.0, 0.0),)),  # asks now empty: no mid
        _msg(3, gap=True),  # clears the book; nothing until the next snapshot
        _msg(4, ((10.0, 5.0),)),
        _msg(5, ((1.0, 1.0),), ((2.0, 1.0),), snapshot=True),
    ]
    out = run([mid, obi], src, book)
    assert [(e["timestamp"], e["bids"], e["asks"]) for e in out[snap]] == [
        (1.0, ((10.0, 1.0), (9.0, 2.0)), ((11.0, 3.0),)),
        (2.0, ((10.5, 1.0), (10.0, 1.0)), ()),
        (5.0, ((1.0, 1.0),), ((2.0, 1.0),)),
    ]
    assert [(e["timestamp"], e["mid_price"]) for e in out[mid]] == [(1.0, 10.5), (5.0, 1.5)]
    assert [e["obi"] for e in out[obi]] == [-0.5, 1.0, 0.0]
