"""Which concrete type should an event be? Measure building and reading each candidate.

The hot path builds a new event per feature output and reads a few fields of each input, so
the benchmark times ``build`` (timestamps + one payload field, as a feature output) and
``read`` (three field reads, as a feature input) for: a plain dict, a frozen slotted attrs
class, a slotted dataclass, a NamedTuple, and a ``MappingProxyType`` over a dict (a read-only
mapping). Ratios are against the plain dict in the same run.

    python benchmarks/event_representation.py
"""

from __future__ import annotations

import dataclasses
import timeit
import types
from typing import NamedTuple

import attrs


@attrs.frozen(slots=True)
class AttrsEvent:
    timestamp: float
    receipt_timestamp: float
    mid_price: float


@dataclasses.dataclass(frozen=True, slots=True)
class DataclassEvent:
    timestamp: float
    receipt_timestamp: float
    mid_price: float


class TupleEvent(NamedTuple):
    timestamp: float
    receipt_timestamp: float
    mid_price: float


def main() -> None:
    number = 1_000_000
    ns = {
        "AttrsEvent": AttrsEvent,
        "DataclassEvent": DataclassEvent,
        "TupleEvent": TupleEvent,
        "MappingProxyType": types.MappingProxyType,
        "t": 1.0,
        "r": 1.5,
        "m": 2.0,
    }
    builds = {
        "dict": "{'timestamp': t, 'receipt_timestamp': r, 'mid_price': m}",
        "attrs frozen slots": "AttrsEvent(t, r, m)",
        "dataclass frozen slots": "DataclassEvent(t, r, m)",
        "NamedTuple": "TupleEvent(t, r, m)",
        "MappingProxyType(dict)": (
            "MappingProxyType({'timestamp': t, 'receipt_timestamp': r, 'mid_price': m})"
        ),
    }
    reads = {
        "dict": (
            "e = {'timestamp': t, 'receipt_timestamp': r, 'mid_price': m}",
            "e['timestamp']; e['receipt_timestamp']; e['mid_price']",
        ),
        "attrs frozen slots": (
            "e = AttrsEvent(t, r, m)",
            "e.timestamp; e.receipt_timestamp; e.mid_price",
        ),
        "dataclass frozen slots": (
            "e = DataclassEvent(t, r, m)",
            "e.timestamp; e.receipt_timestamp; e.mid_price",
        ),
        "NamedTuple": ("e = TupleEvent(t, r, m)", "e.timestamp; e.receipt_timestamp; e.mid_price"),
        "MappingProxyType(dict)": (
            "e = MappingProxyType({'timestamp': t, 'receipt_timestamp': r, 'mid_price': m})",
            "e['timestamp']; e['receipt_timestamp']; e['mid_price']",
        ),
    }
    build_ns = {
        name: min(timeit.repeat(code, globals=ns, number=number, repeat=3)) / number * 1e9
        for name, code in builds.items()
    }
    read_ns = {
        name: min(timeit.repeat(stmt, setup, globals=ns, number=number, repeat=3)) / number * 1e9
        for name, (setup, stmt) in reads.items()
    }
    print(f"{'representation':24} {'build ns':>9} {'x dict':>7} {'read ns':>9} {'x dict':>7}")
    for name in builds:
        print(
            f"{name:24} {build_ns[name]:9.1f} {build_ns[name] / build_ns['dict']:7.2f} "
            f"{read_ns[name]:9.1f} {read_ns[name] / read_ns['dict']:7.2f}"
        )


if __name__ == "__main__":
    main()
