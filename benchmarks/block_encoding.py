"""Block encodings: the CPU time and bytes of each ``numeric_encoding`` of a block.

Records the reference workload once (one synthetic symbol, ticker and trades; mid price, 60 s
volatility and 60 s trade volume imbalance; see ``reference_workload.py``), reads every
series back as one table, then encodes each table as a block (``encode_block``: Parquet,
zstd) with every ``numeric_encoding`` of ``BlockFormat``, best of ``--repeats`` (CPU time of
the encoding thread), and decodes it again. Prints nanoseconds and bytes per row, over all
series, and the ratios against ``plain`` (the encoding blocks had before ``split``).

    python benchmarks/block_encoding.py --events 300000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from reference_workload import CONFIG

from featurizer import FeaturizerConfig
from featurizer._runner import RunOptions
from featurizer.storage import NUMERIC_ENCODINGS, BlockFormat, DiscardSink, Storage, record
from featurizer.storage._blocks import encode_block


def _tables(root: Path, events: int) -> list[tuple[Any, pa.Table]]:
    """Record ``events`` input events; every series read back as one table (with arrival
    numbers, as the recorder hands a block to the encoder)."""
    options = RunOptions(emitter="synthetic", max_events=events, seed=7)
    with Storage(root) as storage:
        record(FeaturizerConfig.from_dict(CONFIG), options, storage, sink=DiscardSink())
        tables = []
        for series in storage.series():
            files = [root / block.path for block in storage.catalog.blocks(series.key)]
            tables.append((series, pa.concat_tables(pq.read_table(f) for f in files)))
        return tables


def _best_cpu(repeats: int, work: Any, *args: Any) -> tuple[float, Any]:
    """The least CPU time of ``repeats`` calls of ``work(*args)``, and its result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.thread_time()
        result = work(*args)
        best = min(best, time.thread_time() - started)
    return best, result


def measure(events: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per encoding: ``encode_ns``, ``decode_ns`` and ``bytes`` per row over all series."""
    with tempfile.TemporaryDirectory() as tmp:
        tables = _tables(Path(tmp) / "root", events)
    rows = sum(table.num_rows for _, table in tables)
    found = {}
    for encoding in NUMERIC_ENCODINGS:
        fmt = BlockFormat(numeric_encoding=encoding)
        encode = decode = size = 0.0
        for series, table in tables:
            seconds, data = _best_cpu(repeats, encode_block, table, series, fmt, {})
            encode += seconds
            size += data.size
            seconds, _ = _best_cpu(repeats, pq.read_table, pa.BufferReader(data))
            decode += seconds
        found[encoding] = {
            "encode_ns": encode / rows * 1e9,
            "decode_ns": decode / rows * 1e9,
            "bytes": size / rows,
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000, help="input events recorded")
    parser.add_argument("--repeats", type=int, default=5, help="encodings per measure (best)")
    args = parser.parse_args()
    found = measure(args.events, args.repeats)
    plain = found["plain"]
    for encoding, figures in found.items():
        print(
            f"{encoding:6s} encode {figures['encode_ns']:6.1f} ns/row "
            f"({plain['encode_ns'] / figures['encode_ns']:.2f}x faster than plain), decode "
            f"{figures['decode_ns']:5.1f} ns/row, {figures['bytes']:5.2f} bytes/row "
            f"({figures['bytes'] / plain['bytes']:.3f}x plain)"
        )


if __name__ == "__main__":
    main()
