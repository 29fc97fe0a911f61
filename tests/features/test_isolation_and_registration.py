"""Feature instances never share state; the plugin registers every standard feature."""

from __future__ import annotations

from featurizer_features import (
    OHLCV,
    VWAP,
    L2BookSource,
    L2Snapshot,
    MidPrice,
    MidPriceL2,
    OrderBookImbalance,
    TickerSource,
    TradesSource,
    TradeVolumeImbalance,
    Volatility,
    reference,
)
from hypothesis import given

from featurizer import (
    FeatureStreamGraph,
    FeaturizerConfig,
    construct_features_from_configs,
    get_plugins,
)
from featurizer.testing.strategies import l2_book_streams, ticker_streams, trade_streams
from tests.features.features_support import FEW, assert_same, feature, run, source

STANDARD = {
    "mid_price",
    "mid_price_l2",
    "relative_spread",
    "volatility",
    "trade_volume_imbalance",
    "vwap",
    "ohlcv",
    "l2_snapshot",
    "order_book_imbalance",
}


@FEW
@given(trades=trade_streams())
def test_trade_features_with_different_params_do_not_share_state(trades: list[dict]) -> None:
    src = source(TradesSource)
    outputs = {
        feature(definition, {param: value}, trades=src): (name, {param: value})
        for definition, name, param in (
            (VWAP, "vwap", "window"),
            (TradeVolumeImbalance, "trade_volume_imbalance", "window"),
            (OHLCV, "ohlcv", "interval"),
        )
        for value in (1.0, 5.0)
    }
    got = run(list(outputs), src, trades)
    for output, (name, params) in outputs.items():
        assert_same(got[output], reference.REFERENCES[name](trades, **params))


@FEW
@given(ticks=ticker_streams())
def test_volatility_instances_do_not_share_state(ticks: list[dict]) -> None:
    ticker = source(TickerSource)
    mid = feature(MidPrice, ticker=ticker)
    short, long = (feature(Volatility, {"window": w}, mid=mid) for w in (1.0, 5.0))
    got = run([short, long], ticker, ticks)
    mids = reference.mid_price(ticks)
    assert_same(got[short], reference.volatility(mids, window=1.0))
    assert_same(got[long], reference.volatility(mids, window=5.0))


@FEW
@given(book=l2_book_streams())
def test_book_features_with_different_params_do_not_share_state(book: list[dict]) -> None:
    src = source(L2BookSource)
    shallow, deep = (feature(L2Snapshot, {"depth": d}, l2_book=src) for d in (1, 3))
    obi_one, obi_three = (
        feature(OrderBookImbalance, {"depth": d}, l2_snapshot=deep) for d in (1, 3)
    )
    got = run([shallow, deep, obi_one, obi_three], src, book)
    deep_ref = reference.l2_snapshot(book, depth=3)
    assert_same(got[shallow], reference.l2_snapshot(book, depth=1))
    assert_same(got[deep], deep_ref)
    assert_same(got[obi_one], reference.order_book_imbalance(deep_ref, depth=1))
    assert_same(got[obi_three], reference.order_book_imbalance(deep_ref, depth=3))


def test_each_instance_gets_its_own_state_object() -> None:
    src = source(TradesSource)
    a, b = (feature(VWAP, {"window": w}, trades=src) for w in (1.0, 2.0))
    graph = FeatureStreamGraph([a, b])
    assert graph.get_state(a) is not graph.get_state(b)
    assert (graph.get_state(a).window, graph.get_state(b).window) == (1.0, 2.0)
    assert graph.is_fused(a) and graph.is_fused(b)


def test_every_standard_feature_is_registered_and_referenced() -> None:
    registered = get_plugins().feature_definitions()
    assert set(registered) >= STANDARD
    assert set(reference.REFERENCES) == STANDARD


def test_mid_price_l2_substitutes_for_mid_price_in_volatility() -> None:
    config = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "feature_definition": "mid_price_l2",
                    "name": "mid_l2",
                    "params": {"data_source": {"exchange": "test", "symbol": "BTC-USDT"}},
                },
                {
                    "feature_definition": "volatility",
                    "name": "vol_l2",
                    "params": {"window": "30s"},
                    "deps": {"mid": "mid_l2"},
                },
            ]
        }
    )
    mid, vol = construct_features_from_configs(config)
    assert mid.definition is MidPriceL2
    assert vol.children["mid"] == mid
    assert vol.params == {"window": 30.0}
