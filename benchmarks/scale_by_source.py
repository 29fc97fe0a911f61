"""``by_source`` on Ray: throughput with 2 workers vs 1, against the single-process runner.

A config of four instruments on the synthetic market, each with mid price, two volatility
windows, trade-volume imbalance, VWAP and OHLCV: four independent sub-DAGs. Every run processes
the same number of input events in all (each worker's emitters are bounded to their share).

Run: ``python benchmarks/scale_by_source.py [EVENTS]`` (default 400,000 events; about a
minute). Starts a local Ray with 2 CPUs bound to 127.0.0.1 and shuts it down. The machine may be
shared with other work: numbers are noisy, and the driver (which merges the outputs) competes
with the two workers for the two cores.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any

SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")


def _config() -> Any:
    from featurizer import FeaturizerConfig

    entries = []
    for symbol in SYMBOLS:
        source = {"data_source": {"exchange": "synthetic", "symbol": symbol}}
        tag = symbol.split("-")[0].lower()
        entries += [
            {"name": f"mid_{tag}", "feature_definition": "mid_price", "params": dict(source)},
            {
                "name": f"vol1_{tag}",
                "feature_definition": "volatility",
                "params": {"window": "1m", **source},
            },
            {
                "name": f"vol5_{tag}",
                "feature_definition": "volatility",
                "params": {"window": "5m", **source},
            },
            {
                "name": f"tvi_{tag}",
                "feature_definition": "trade_volume_imbalance",
                "params": {"window": "1m", **source},
            },
            {
                "name": f"vwap_{tag}",
                "feature_definition": "vwap",
                "params": {"window": "1m", **source},
            },
            {
                "name": f"ohlcv_{tag}",
                "feature_definition": "ohlcv",
                "params": {"interval": "1m", **source},
            },
        ]
    return FeaturizerConfig.from_dict({"feature_configs": entries})


class _CountingSink:
    def __init__(self) -> None:
        self.rows = 0

    def write_row(self, row: Mapping[str, Any]) -> None:
        self.rows += 1

    def close(self, ok: bool = True) -> None:
        pass


def main() -> int:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 400_000
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    from featurizer._runner import RunOptions, run
    from featurizer.scaling import run_scaled

    config = _config()
    sink = _CountingSink()
    single = run(config, RunOptions(max_events=events), sink)
    base = single.events_per_second
    print(f"single process (featurizer run):  {single.events_in:,} events  {base:,.0f} events/s")
    ray.init(
        num_cpus=2,
        object_store_memory=150 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        results = {}
        for workers, strategy in ((1, "single"), (2, "by_source")):
            summary = run_scaled(
                config,
                RunOptions(max_events=events // workers),
                _CountingSink(),
                scaler="ray",
                workers=workers,
                strategy=strategy,
            )
            results[workers] = summary.events_per_second
            print(
                f"ray {strategy:9} {workers} worker(s):   {summary.events_in:,} events  "
                f"{summary.events_per_second:,.0f} events/s  ({summary.elapsed_seconds:.2f} s, "
                f"{summary.outputs_out:,} rows)"
            )
    finally:
        ray.shutdown()
    print(f"by_source 2 workers / 1 worker: {results[2] / results[1]:.2f}x (target >= 1.6x)")
    print(f"ray 1 worker / single process: {results[1] / base:.2f}x")
    print(f"load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    time.sleep(0)
    sys.exit(main())
