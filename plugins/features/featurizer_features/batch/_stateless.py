"""Kernels of the stateless ticker features: mid price and relative spread.

Both are elementwise IEEE-754 operations in the same order as the per-event functions
(``(bid + ask) / 2.0``, then ``(ask - bid) / mid``), which numpy performs with the same
correctly rounded double arithmetic, NaN and infinities included: no fallback is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from featurizer.batch import Columns, ErrorHandler, KernelOutput

__all__ = ["MidPriceKernel", "RelativeSpreadKernel"]


class MidPriceKernel:
    """``mid_price = (bid + ask) / 2.0`` for every ticker row."""

    state: Any = None

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """Every row produces its mid price."""
        with np.errstate(all="ignore"):
            mid = (batch.floats("bid") + batch.floats("ask")) / 2.0
        data = {
            "timestamp": batch.floats("timestamp"),
            "receipt_timestamp": batch.floats("receipt_timestamp"),
            "mid_price": mid,
        }
        return KernelOutput(
            rows=np.arange(batch.size, dtype=np.int64), columns=Columns(size=batch.size, data=data)
        )


class RelativeSpreadKernel:
    """``(ask - bid) / mid`` for every ticker row whose mid is not zero."""

    state: Any = None

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """Rows with a zero mid produce nothing (NaN mids produce NaN, as per event)."""
        bid = batch.floats("bid")
        ask = batch.floats("ask")
        with np.errstate(all="ignore"):
            mid = (bid + ask) / 2.0
        rows = np.flatnonzero(mid != 0.0)
        with np.errstate(all="ignore"):
            spread = (ask[rows] - bid[rows]) / mid[rows]
        data = {
            "timestamp": batch.floats("timestamp")[rows],
            "receipt_timestamp": batch.floats("receipt_timestamp")[rows],
            "relative_spread": spread,
        }
        return KernelOutput(rows=rows.astype(np.int64), columns=Columns(size=len(rows), data=data))
