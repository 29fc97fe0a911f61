"""Columnar kernels of the standard features, for backfills (:mod:`featurizer.batch`).

Each definition's ``batch_kernel`` returns one of these; numpy is imported only here, when a
backfill asks for a kernel. Every kernel gives the per-event values bit for bit and carries
the per-event state object (see :mod:`featurizer_features.batch._windows` for how windowed
sums stay exact, and when a chunk falls back to the per-event code).
"""

from __future__ import annotations

from featurizer_features.batch._book import (
    L2SnapshotKernel,
    MidPriceL2Kernel,
    OrderBookImbalanceKernel,
    RelativeSpreadL2Kernel,
)
from featurizer_features.batch._ohlcv import OHLCVKernel
from featurizer_features.batch._stateless import MidPriceKernel, RelativeSpreadKernel
from featurizer_features.batch._windows import (
    TradeVolumeImbalanceKernel,
    VolatilityKernel,
    VWAPKernel,
)

__all__ = [
    "L2SnapshotKernel",
    "MidPriceKernel",
    "MidPriceL2Kernel",
    "OHLCVKernel",
    "OrderBookImbalanceKernel",
    "RelativeSpreadL2Kernel",
    "RelativeSpreadKernel",
    "TradeVolumeImbalanceKernel",
    "VWAPKernel",
    "VolatilityKernel",
]
