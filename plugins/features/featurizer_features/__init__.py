"""Featurizer's standard feature library and market data-source definitions."""

from __future__ import annotations

from featurizer import DataSourceDefinition, FeatureDefinition, hookimpl
from featurizer_features.mid_price import MidPrice
from featurizer_features.sources import L2BookSource, TickerSource, TradesSource
from featurizer_features.trade_volume_imbalance import TradeVolumeImbalance
from featurizer_features.volatility import Volatility

__all__ = [
    "L2BookSource",
    "MidPrice",
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
    return [MidPrice, Volatility, TradeVolumeImbalance]
