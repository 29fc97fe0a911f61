"""Helpers of the storage tests: bit-exact comparisons and synthetic-market configs."""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from featurizer import FeaturizerConfig
from featurizer.storage import StorageLockedError
from featurizer.storage._files import WriterLock

SYMBOLS = ("BTC-USDT", "ETH-USDT")


def bits(value: Any) -> Any:
    """A value in a form where equality means bit-for-bit identity (floats by their bytes,
    containers element-wise, types kept)."""
    if isinstance(value, float):
        return ("f", struct.pack("<d", value))
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("i", value)
    if isinstance(value, tuple):
        return ("t", tuple(bits(v) for v in value))
    if isinstance(value, list):
        return ("l", tuple(bits(v) for v in value))
    if isinstance(value, Mapping):
        return ("d", tuple((k, bits(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def bits_list(events: Iterable[Mapping[str, Any]]) -> list[Any]:
    """:func:`bits` of each event, with keys sorted (dict order is compared separately)."""
    return [bits(dict(sorted(event.items()))) for event in events]


def assert_bit_identical(
    got: Sequence[Mapping[str, Any]], want: Sequence[Mapping[str, Any]], what: str
) -> None:
    """Same number of events and every field bit-identical, with a useful message."""
    assert len(got) == len(want), f"{what}: {len(got)} events, expected {len(want)}"
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if bits(dict(sorted(a.items()))) != bits(dict(sorted(b.items()))):
            raise AssertionError(f"{what}: event {i} differs:\n  got  {a!r}\n  want {b!r}")


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def entry(name: str, definition: str, symbol: str, **params: Any) -> dict[str, Any]:
    """A config entry on the synthetic exchange."""
    return {
        "name": name,
        "feature_definition": definition,
        "params": {**params, "data_source": {"exchange": "synthetic", "symbol": symbol}},
    }


def config(entries: list[dict[str, Any]], **top: Any) -> FeaturizerConfig:
    """A config from entries (and top-level fields)."""
    return FeaturizerConfig.from_dict({"feature_configs": entries, **top})


REFERENCE = [
    entry("mid", "mid_price", "BTC-USDT"),
    entry("vol", "volatility", "BTC-USDT", window="10s"),
    entry("tvi", "trade_volume_imbalance", "BTC-USDT", window="10s"),
]
"""The reference workload (mid, volatility and trade volume imbalance of one symbol), with
short windows so that small streams exercise eviction."""


def wait_for_the_writer_process(root: Path) -> None:
    """Wait until the root's lock is free: a recorder's writer process (the default on
    Linux) exits when it sees its parent's end, a few milliseconds after it."""
    lock = WriterLock(root)
    deadline = time.monotonic() + 30.0
    while True:
        try:
            lock.acquire()
        except StorageLockedError:
            assert time.monotonic() < deadline, "the writer process outlived its parent"
            time.sleep(0.005)
        else:
            lock.release()
            return
