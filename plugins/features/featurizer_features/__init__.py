"""Featurizer's standard feature library and market data-source definitions."""

from __future__ import annotations

from featurizer import DataSourceDefinition, FeatureDefinition, hookimpl
from featurizer_features.l2_snapshot import L2Snapshot
from featurizer_features.mid_price import MidPrice
from featurizer_features.mid_price_l2 import MidPriceL2
from featurizer_features.ohlcv import OHLCV
from featurizer_features.order_book_imbalance import OrderBookImbalance
from featurizer_features.relative_spread import RelativeSpread
from featurizer_features.sources import L2BookSource, TickerSource, TradesSource
from featurizer_features.trade_volume_imbalance import TradeVolumeImbalance
from featurizer_features.venues import Basis, RelativeSpreadL2
from featurizer_features.volatility import Volatility
from featurizer_features.vwap import VWAP

__all__ = [
    "OHLCV",
    "VWAP",
    "Basis",
    "L2BookSource",
    "L2Snapshot",
    "MidPrice",
    "MidPriceL2",
    "OrderBookImbalance",
    "RelativeSpread",
    "RelativeSpreadL2",
    "TickerSource",
    "TradeVolumeImbalance",
    "TradesSource",
    "Volatility",
]


@hookimpl
def featurizer_register_data_source_definitions() -> list[type[DataSourceDefinition]]:
    """Ticker, trades and incremental L2 book."""
    return [TickerSource, TradesSource, L2BookSource]


@hookimpl
def featurizer_register_feature_definitions() -> list[type[FeatureDefinition]]:
    """The standard features."""
    return [
        MidPrice,
        RelativeSpread,
        Volatility,
        TradeVolumeImbalance,
        VWAP,
        OHLCV,
        L2Snapshot,
        MidPriceL2,
        OrderBookImbalance,
        RelativeSpreadL2,
        Basis,
    ]
