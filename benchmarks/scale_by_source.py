"""``by_source`` on Ray: throughput with 2 workers vs 1, against the single-process runner.

A config of four instruments on the synthetic market, each with mid price, two volatility
windows, trade-volume imbalance, VWAP and OHLCV: four independent sub-DAGs. Every run processes
the same number of input events in all (each worker's emitters are bounded to their share).

Two output modes are measured:

* ``--outputs driver`` (default): every worker ships every output to the driver, which merges
  and combines them into one output; the driver competes with the workers for the two cores.
* ``--outputs workers``: each worker merges, combines and writes its own outputs to its own
  JSON Lines file in a temporary directory (deleted afterwards); the driver gets only metrics.
  Compared with the single-process runner writing one JSON Lines file, in the same run.

The synthetic emitter generates about 600,000 events/s per core, far above what the features
compute, so the source is not the bottleneck.

Run: ``python benchmarks/scale_by_source.py [EVENTS]`` (default 400,000 events; about two
minutes). Starts a local Ray with 2 CPUs bound to 127.0.0.1 and shuts it down. The machine may be
shared with other work: numbers are noisy.
"""

from __future__ import annotations

import os
import sys
import tempfile
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
    from featurizer._sinks import JsonLinesSink
    from featurizer.scaling import WorkerOutputs, run_scaled

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
    tmp = tempfile.TemporaryDirectory(prefix="featurizer-bench-")
    try:
        single_file = run(
            config, RunOptions(max_events=events), JsonLinesSink(os.path.join(tmp.name, "s.jsonl"))
        )
        print(
            f"single process, writing a file:  {single_file.events_in:,} events  "
            f"{single_file.events_per_second:,.0f} events/s  ({single_file.outputs_out:,} rows)"
        )
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
        local: dict[tuple[bool, int], float] = {}
        for combine in (True, False):
            for workers, strategy in ((1, "single"), (2, "by_source")):
                target = os.path.join(tmp.name, f"w{workers}-{combine}-{{worker}}.jsonl")
                summary = run_scaled(
                    config,
                    RunOptions(max_events=events // workers, combine_outputs=combine),
                    None,
                    scaler="ray",
                    workers=workers,
                    strategy=strategy,
                    outputs=WorkerOutputs(target=target),
                )
                local[combine, workers] = summary.events_per_second
                size = sum(os.path.getsize(f) for f in summary.output_files)
                print(
                    f"ray {strategy:9} {workers} worker(s), --outputs workers, "
                    f"{'combined' if combine else '--no-combine'}:  {summary.events_in:,} "
                    f"events  {summary.events_per_second:,.0f} events/s  "
                    f"({summary.elapsed_seconds:.2f} s, {summary.outputs_out:,} rows, "
                    f"{size / 1e6:,.0f} MB in {len(summary.output_files)} file(s))"
                )
    finally:
        ray.shutdown()
        tmp.cleanup()
    print(
        f"--outputs driver:  by_source 2 workers / 1 worker: {results[2] / results[1]:.2f}x "
        f"(target >= 1.6x)"
    )
    for combine, label, note in (
        (True, "combined", " (per-worker rows are narrower: less JSON in all)"),
        (False, "--no-combine", " (the same rows and bytes in all)"),
    ):
        print(
            f"--outputs workers, {label}: by_source 2 workers / 1 worker: "
            f"{local[combine, 2] / local[combine, 1]:.2f}x (target >= 1.6x){note}"
        )
    print(f"ray 1 worker / single process: {results[1] / base:.2f}x")
    print(
        f"--outputs workers, combined, 2 workers / single process writing a file: "
        f"{local[True, 2] / single_file.events_per_second:.2f}x"
    )
    print(f"load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    time.sleep(0)
    sys.exit(main())
