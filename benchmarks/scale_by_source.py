"""``by_source`` on Ray: throughput with 2 workers vs 1, against the single-process runner.

A config of four instruments on the synthetic market, each with mid price, two volatility
windows, trade-volume imbalance, VWAP and OHLCV: four independent sub-DAGs.

**Equal work.** The synthetic market (``EVENTS`` events of the four instruments) is recorded
once into a temporary Featurizer Storage; every mode then replays exactly those events with the
``offline`` emitter and writes JSON Lines files. The driver-gathered outputs of every mode are
checked to be the same file, byte for byte, so the ratios compare the same work.

Modes, run in ``ROUNDS`` interleaved rounds (the order rotating each round) on one local Ray
with 2 CPUs bound to 127.0.0.1; each ratio printed is the median of the per-round ratios:

* ``single``: the single-process runner (``featurizer run``);
* ``ray 1``: one worker actor, outputs gathered by the driver;
* ``ray 2 driver``: ``by_source`` over 2 workers, every output merged and combined by the
  driver (``--outputs driver``, the default), which competes with the workers for the cores;
  the workers encode their outputs' JSON columns and the driver joins each row from that text;
* ``ray 2 dict rows``: the same, with an ``on_combined`` callback (which needs the events),
  so that the driver flattens and encodes every row itself (what the driver did before the
  workers encoded columns; kept to show what that costs);
* ``ray 2 workers``: ``by_source`` over 2 workers, each writing its own file
  (``--outputs workers``).

Ray start-up (``ray.init`` of a local Ray) and per-run launch time (actors started, wired and
emitting) are reported too, and for every scaled run the CPU seconds of the driver (this
process, the whole call) and of each worker actor's process from its start: they show what
bounds the run on a small machine.

Run: ``python benchmarks/scale_by_source.py [EVENTS]`` (default 200,000 events; a few minutes).
The machine may be shared with other work: numbers are noisy.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")


def _entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
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
    return entries


ROUNDS = 3


def _record(root: str, events: int) -> Any:
    """Record the synthetic market's data sources; the config replaying them."""
    import contextlib
    import io

    import yaml

    from featurizer import load_config
    from featurizer.cli import main as cli

    path = os.path.join(root, "bench.yaml")
    document = {
        "feature_configs": _entries(),
        "features_to_store": ["data_sources"],
        "storage": {"root": os.path.join(root, "store")},
    }
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        code = cli(
            ["record", path, "--max-events", str(events), "--out", os.path.join(root, "live.jsonl")]
        )
    if code != 0:
        raise SystemExit(f"recording the benchmark's input failed (exit {code})")
    return load_config(path)


def _digest(path: str) -> str:
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def main() -> int:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import statistics

    from featurizer._runner import RunOptions, run
    from featurizer._sinks import JsonLinesSink
    from featurizer.scaling import WorkerOutputs, run_scaled

    tmp = tempfile.TemporaryDirectory(prefix="featurizer-bench-")
    began = time.perf_counter()
    config = _record(tmp.name, events)
    print(f"recorded {events:,} synthetic events in {time.perf_counter() - began:.1f} s")
    options = RunOptions(emitter="offline")
    import ray

    began = time.perf_counter()
    ray.init(
        address="local",  # a Ray of its own, even when another one runs on this machine
        num_cpus=2,
        object_store_memory=150 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    print(f"ray start-up (local, 2 CPUs): {time.perf_counter() - began:.2f} s")

    def single(out: str) -> Any:
        return run(config, options, JsonLinesSink(out))

    def scaled(workers: int, mode: str, out: str) -> Any:
        return run_scaled(
            config,
            options,
            JsonLinesSink(out) if mode in ("driver", "rows") else None,
            scaler="ray",
            workers=workers,
            strategy="single" if workers == 1 else "by_source",
            outputs=WorkerOutputs(target=out + "-{worker}.jsonl") if mode == "workers" else None,
            on_combined=(lambda grouped: None) if mode == "rows" else None,
        )

    modes = {
        "single": single,
        "ray 1": lambda out: scaled(1, "driver", out),
        "ray 2 driver": lambda out: scaled(2, "driver", out),
        "ray 2 dict rows": lambda out: scaled(2, "rows", out),
        "ray 2 workers": lambda out: scaled(2, "workers", out),
    }
    rates: dict[str, list[float]] = {name: [] for name in modes}
    launches: list[float] = []
    digests: set[str] = set()
    try:
        names = list(modes)
        for round_ in range(ROUNDS):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                out = os.path.join(tmp.name, f"{name.replace(' ', '-')}-{round_}")
                began = time.perf_counter()
                cpu = time.process_time()
                summary = modes[name](out + ".jsonl" if name != "ray 2 workers" else out)
                wall = time.perf_counter() - began
                cpu = time.process_time() - cpu
                if name.startswith("ray"):
                    launches.append(wall - summary.elapsed_seconds)
                if name != "ray 2 workers":
                    digests.add(_digest(out + ".jsonl"))
                    os.remove(out + ".jsonl")
                assert summary.events_in == events, (name, summary.events_in)
                rates[name].append(summary.events_per_second)
                print(
                    f"round {round_ + 1} {name:15}: {summary.events_in:,} events "
                    f"{summary.events_per_second:,.0f} events/s ({summary.elapsed_seconds:.2f} s, "
                    f"{summary.outputs_out:,} rows)"
                    + (
                        f"; CPU s: driver {cpu:.2f}, workers "
                        + ", ".join(
                            f"{m.get('process_cpu_seconds', 0.0):.2f}"
                            for _, m in sorted(summary.workers.items())
                        )
                        if name.startswith("ray")
                        else ""
                    )
                )
    finally:
        ray.shutdown()
        tmp.cleanup()
    assert len(digests) == 1, "the driver-gathered outputs differ between modes"
    print("driver-gathered outputs of every mode: the same file in every round")

    def ratio(a: str, b: str) -> str:
        values = [x / y for x, y in zip(rates[a], rates[b], strict=True)]
        return f"{statistics.median(values):.2f}x ({', '.join(f'{v:.2f}' for v in values)})"

    print(f"--outputs driver:  ray 2 / ray 1: {ratio('ray 2 driver', 'ray 1')} (target >= 1.6x)")
    print(f"--outputs driver:  ray 2 / single process: {ratio('ray 2 driver', 'single')}")
    print(f"  rows built at the driver: ray 2 / ray 1: {ratio('ray 2 dict rows', 'ray 1')}")
    print(f"  rows built at the driver: ray 2 / single: {ratio('ray 2 dict rows', 'single')}")
    print(f"--outputs workers: ray 2 / ray 1: {ratio('ray 2 workers', 'ray 1')}")
    print(f"--outputs workers: ray 2 / single process: {ratio('ray 2 workers', 'single')}")
    print(f"ray 1 / single process: {ratio('ray 1', 'single')}")
    print(
        f"launch per scaled run (actors started, wired, emitting): median "
        f"{statistics.median(launches):.2f} s"
    )
    print(f"load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
