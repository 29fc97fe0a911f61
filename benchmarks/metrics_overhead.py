"""Metrics overhead: the reference workload with per-node metrics off and on, in one process.

Runs the graph of ``benchmarks/reference_workload.py`` over the same events, alternating
uninstrumented (``metrics=None``) and instrumented (``metrics=NodeMetrics(...)``) runs, best of
``--repeats`` each, and prints events/s and the ratio; also checks that both produce the same
values and that the metrics counted every event.

    python benchmarks/metrics_overhead.py --events 1000000

Also reported: the same with a Prometheus scrape and a dashboard render every 0.25 s on
another thread (the cost of reading, not only of counting), and the time one scrape takes.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_workload import CONFIG, make_events

from featurizer import (
    FeatureStreamGraph,
    FeaturizerConfig,
    construct_features_from_configs,
)
from featurizer.metrics import NodeMetrics, RunMetrics

CPU_CLOCK = time.thread_time
"""CPU time of the emitting thread: on a shared machine, time spent descheduled is not counted
(nor time spent waiting for the GIL held by a scraping thread: see the wall-clock figures)."""
WALL_CLOCK = time.perf_counter


def run_once(
    events: list[tuple[str, dict[str, Any]]],
    metrics: NodeMetrics | None,
    reader: RunMetrics | None = None,
) -> tuple[tuple[float, float], tuple[int, Any]]:
    features = construct_features_from_configs(FeaturizerConfig.from_dict(CONFIG))
    sink: list[Any] = [0, None]

    def on_combined(grouped: Any) -> None:
        sink[0] += 1
        sink[1] = grouped

    graph = FeatureStreamGraph(
        features, combine_outputs=True, combined_out_callback=on_combined, metrics=metrics
    )
    sources = {f.definition_name: f for f in graph.get_ins()}
    named = [(sources[kind], event) for kind, event in events]
    emit = graph.emit_named_data_event
    stop = threading.Event()
    scraper = None
    if reader is not None:
        reader.attach(graph, {})

        def scrape() -> None:
            from featurizer.metrics import exposition, render_dashboard

            while not stop.wait(0.25):
                exposition(reader)
                render_dashboard(reader.snapshot())

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
    started, wall_started = CPU_CLOCK(), WALL_CLOCK()
    for item in named:
        emit(item)
    elapsed = (CPU_CLOCK() - started, WALL_CLOCK() - wall_started)
    stop.set()
    if scraper is not None:
        scraper.join()
    values = [(f.name, dict(e)) for f, e in sink[1]] if sink[1] else None
    return elapsed, (sink[0], values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample-every", type=int, default=64)
    args = parser.parse_args()
    events = make_events(args.events)
    off_times: list[tuple[float, float]] = []
    on_times: list[tuple[float, float]] = []
    read_times: list[tuple[float, float]] = []
    outputs = set()
    gc.disable()
    try:
        for _ in range(args.repeats):
            elapsed, out_off = run_once(events, None)
            off_times.append(elapsed)
            metrics = NodeMetrics(sample_every=args.sample_every)
            elapsed, out_on = run_once(events, metrics)
            on_times.append(elapsed)
            reading = {r.feature.name: r for r in metrics.read()}
            sources = [r for r in reading.values() if r.kind == "source"]
            if sum(r.events_out for r in sources) != args.events:
                raise SystemExit(f"metrics counted {sources} for {args.events} events")
            run_metrics = RunMetrics(nodes=NodeMetrics(sample_every=args.sample_every))
            elapsed, out_read = run_once(events, run_metrics.nodes, run_metrics)
            read_times.append(elapsed)
            outputs.update(repr(o) for o in (out_off, out_on, out_read))
    finally:
        gc.enable()
    if len(outputs) != 1:
        raise SystemExit("outputs differ between runs with metrics off and on")
    print(
        f"events: {args.events:,} (best of {args.repeats}, alternating); sample_every "
        f"{args.sample_every}; values identical, metrics counted every event"
    )
    for which, label in ((0, "CPU time of the emitting thread"), (1, "wall clock")):
        off_rate = args.events / min(t[which] for t in off_times)
        on_rate = args.events / min(t[which] for t in on_times)
        read_rate = args.events / min(t[which] for t in read_times)
        print(f"{label}:")
        print(f"  metrics off:                       {off_rate:,.0f} events/s")
        print(f"  metrics on:                        {on_rate:,.0f} events/s")
        print(f"  metrics on, scraped + dashboard:   {read_rate:,.0f} events/s")
        print(f"  slowdown with metrics on:          {100 * (off_rate / on_rate - 1):.1f}%")
        print(f"  slowdown with scrapes + dashboard: {100 * (off_rate / read_rate - 1):.1f}%")
        print(f"  ratio on/off: {on_rate / off_rate:.3f}")
    from featurizer.metrics import exposition

    started = time.perf_counter()
    for _ in range(20):
        exposition(run_metrics)
    print(f"one Prometheus scrape: {(time.perf_counter() - started) / 20 * 1000:.2f} ms")


if __name__ == "__main__":
    main()
