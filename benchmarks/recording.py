"""What recording costs: ``featurizer record`` against ``featurizer run`` on the same config.

Runs a config on the synthetic market with and without recording (every series the config
stores, with its own storage settings, as the CLI does), in interleaved ABBA pairs after one
unmeasured warm-up of each, and prints the median of the pairs' throughput ratios (the
figure to quote), the CPU time of every thread, and the time the garbage collector took.

    python benchmarks/recording.py --config examples/quickstart.yaml --events 200000
    python benchmarks/recording.py --events 300000     # the reference workload (replay.py)
    python benchmarks/recording.py --config examples/quickstart.yaml --writer-gc-threshold none
    python benchmarks/recording.py --writer thread      # the background work in threads

``--writer`` chooses where the writer's background work runs (``storage.writer``: a child
process by default on Linux, threads elsewhere).

The writer raises the collector's first threshold while it records container fields (its
``gc_threshold``, 50,000 by default); ``--writer-gc-threshold none`` records at the process's
setting, ``--gc-threshold N`` sets the process's for both sides.

Everything runs on one machine shared with other work: the pairs' ratios spread; run it
more than once.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from reference_workload import CONFIG

from featurizer import FeaturizerConfig
from featurizer._config import load_config
from featurizer._runner import RunOptions, run
from featurizer.storage import Storage, record
from featurizer.storage._record import DiscardSink
from featurizer.storage._settings import DEFAULT_WRITER, WRITERS


class _GcClock:
    """Seconds the garbage collector ran (all threads)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def _once(
    config: FeaturizerConfig,
    events: int,
    root: Path | None,
    clock: _GcClock,
    writer_options: dict[str, Any],
) -> tuple:
    """(seconds, CPU seconds of every thread and of the writer process, GC seconds) of one
    run, recording into ``root`` (with these writer options) if given."""
    options = RunOptions(emitter="synthetic", max_events=events, seed=7)
    gc.collect()
    gc_before, cpu_before = clock.seconds, _cpu_seconds()
    started = time.perf_counter()
    if root is None:
        summary = run(config, options, DiscardSink())
    else:
        with Storage(root) as storage:
            summary = record(config, options, storage, writer_options=writer_options).run
    seconds = time.perf_counter() - started
    assert summary.events_in == events, summary
    return seconds, _cpu_seconds() - cpu_before, clock.seconds - gc_before


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have exited (a writer process)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="a config (default: the reference workload)")
    parser.add_argument("--events", type=int, default=200_000, help="input events per run")
    parser.add_argument("--repeats", type=int, default=7, help="pairs")
    parser.add_argument(
        "--gc-threshold",
        type=int,
        help="the garbage collector's first threshold for both sides (gc.set_threshold)",
    )
    parser.add_argument(
        "--writer-gc-threshold",
        default="50000",
        help="the writer's gc_threshold while recording ('none': leave the collector alone)",
    )
    parser.add_argument(
        "--writer",
        choices=WRITERS,
        default=DEFAULT_WRITER,
        help="where the writer's background work runs (default: %(default)s)",
    )
    args = parser.parse_args()
    writer_gc = None if args.writer_gc_threshold == "none" else int(args.writer_gc_threshold)
    writer_options: dict[str, Any] = {
        "gc_threshold": writer_gc,
        "process": args.writer == "process",
    }
    if args.gc_threshold is not None:
        gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
    config = load_config(args.config) if args.config else FeaturizerConfig.from_dict(CONFIG)
    clock = _GcClock()
    plain, recorded = [], []
    with tempfile.TemporaryDirectory() as tmp:
        _once(config, min(args.events, 20_000), None, clock, writer_options)
        _once(config, min(args.events, 20_000), Path(tmp) / "warm-up", clock, writer_options)
        for attempt in range(args.repeats):
            root = Path(tmp) / f"root{attempt}"
            if attempt % 2 == 0:
                plain.append(_once(config, args.events, None, clock, writer_options))
            recorded.append(_once(config, args.events, root, clock, writer_options))
            if attempt % 2 == 1:
                plain.append(_once(config, args.events, None, clock, writer_options))
    ratios = sorted(p[0] / r[0] for p, r in zip(plain, recorded, strict=True))
    cpu = sorted(r[1] / p[1] for p, r in zip(plain, recorded, strict=True))
    print(
        f"{args.config or 'reference workload'}, {args.events:,} input events, writer "
        f"{args.writer}, gc thresholds {gc.get_threshold()} (writer's gc_threshold {writer_gc}), "
        f"{args.repeats} ABBA pairs: recording at {statistics.median(ratios):.3f}x the "
        f"throughput of the run without it (median of the pairs; all: "
        f"{', '.join(f'{x:.3f}' for x in ratios)})"
    )
    print(
        f"  without: {args.events / min(p[0] for p in plain):,.0f} events/s best; recording: "
        f"{args.events / min(r[0] for r in recorded):,.0f} events/s best"
    )
    print(
        f"  CPU time of every thread and process: {statistics.median(cpu):.2f}x (median); garbage "
        f"collector: {statistics.median(r[2] for r in recorded):.3f} s recording, "
        f"{statistics.median(p[2] for p in plain):.3f} s without (medians)"
    )


if __name__ == "__main__":
    main()
