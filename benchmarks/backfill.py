"""Backfill: the batch path from storage vs a hand-written plain loop vs the per-event path.

The reference workload (one symbol, ~65% ticker and ~35% trade events; mid price, population
stddev of mid over a trailing 60 s window, trade volume imbalance over a trailing 60 s window,
the combined vector on every update) is stored once, then computed in one run:

* **batch from storage**: :func:`featurizer.batch.Backfill` reading the stored columns (Parquet
  decoding included) through the kernels into Arrow rows;
* **plain loop**: ``benchmarks/reference_workload.py``'s hand-written loop over the same events
  already in memory as dicts (exact windowed sums, the combined tuple per update);
* **per-event from storage**: :class:`featurizer.offline.OfflineFeatureStreamGenerator` (what
  ``featurizer replay`` runs: storage, event dicts, the compiled per-event graph);
* **kernels alone**: the batch executor and combiner over the same events already in memory
  as numpy columns (no storage, no Parquet);
* **parallel**: :class:`featurizer.batch.Backfill` in this process (one worker) vs
  :class:`featurizer.batch.ParallelBackfill` with 2 workers (this process computes the first
  part, a forked process the second), both iterated to the end as Arrow tables; with the CPU
  seconds each used (this process and its children), a figure that the machine's load does not
  change much.

With ``--book N``, the book features (``l2_snapshot`` depth 10, ``order_book_imbalance`` over 5
levels, ``mid_price_l2``, ``relative_spread_l2``) over N stored synthetic ``l2_book`` messages:
the batch path with the book kernels vs without them (the per-event graph inside the batch
executor) vs the per-event replay, rows checked equal. With ``--cents N``, the kernels alone
against the plain loop over N events whose prices have cents (exact sums beyond 64 bits: the
kernels' three-limb integers), last vectors checked equal. With ``--ray``, one process
against 2 workers as Ray tasks on a local Ray (2 CPUs, loopback, started before timing).

Values are checked: the batch rows equal the per-event rows bit for bit, and the plain loop's
last vector equals the batch's. The machine is shared with other work: numbers are noisy;
each figure is the best of ``--repeats`` runs.

    python benchmarks/backfill.py --events 1000000
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from reference_workload import CONFIG, make_events, plain_loop

from featurizer import FeatureStreamGraph, FeaturizerConfig, construct_features_from_configs
from featurizer._events import full_schema
from featurizer.batch import Backfill, BatchExecutor, Combiner, ParallelBackfill, SourceBatch
from featurizer.batch._kernel import Columns
from featurizer.offline import OfflineFeatureStreamGenerator
from featurizer.storage import MemoryBasedCompactor, Storage


def store(root: Path, config: FeaturizerConfig, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Record the events (each with the fields its definition declares) into ``root``."""
    features = construct_features_from_configs(config)
    sources = {f.definition_name: f for f in FeatureStreamGraph(features).get_ins()}
    fields = {k: list(full_schema(s.definition.event_schema())) for k, s in sources.items()}
    compactor = MemoryBasedCompactor(max_block_bytes=16 * 1024 * 1024)
    with Storage(root) as storage, storage.writer(list(sources.values()), compactor=compactor) as w:
        callbacks = {kind: w.event_callback(source) for kind, source in sources.items()}
        for kind, event in events:
            callbacks[kind]({name: event[name] for name in fields[kind]})


def best(repeats: int, run: Any) -> tuple[float, Any]:
    """Best wall time of ``repeats`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def batch_from_storage(config: FeaturizerConfig, root: Path) -> tuple[int, Any]:
    with Backfill(config, root) as job:
        rows = 0
        last = None
        for table in job:
            rows += table.num_rows
            last = table.slice(table.num_rows - 1).to_pylist()[0]
        return rows, last


def per_event_from_storage(config: FeaturizerConfig, root: Path) -> tuple[int, list[Any]]:
    with OfflineFeatureStreamGenerator(config, root) as generator:
        rows = list(generator.rows())
        return len(rows), rows


def memory_chunks(
    config: FeaturizerConfig, events: list[tuple[str, dict[str, Any]]], chunk: int
) -> tuple[BatchExecutor, list[tuple[int, list[SourceBatch | None]]]]:
    """The events as numpy columns per chunk (built before timing)."""
    import numpy as np

    executor = BatchExecutor(config)
    kinds = [s.definition_name for s in executor.sources]
    chunks = []
    for start in range(0, len(events), chunk):
        part = events[start : start + chunk]
        batches: list[SourceBatch | None] = []
        for kind, source in zip(kinds, executor.sources, strict=True):
            where = [i for i, (k, _) in enumerate(part) if k == kind]
            rows = [part[i][1] for i in where]
            data: dict[str, Any] = {}
            for name in full_schema(source.definition.event_schema()):
                values = [row[name] for row in rows]
                data[name] = (
                    np.array(values, dtype=np.float64)
                    if values and isinstance(values[0], float)
                    else np.array(values, dtype=object)
                )
            batches.append(
                SourceBatch(
                    positions=np.array(where, dtype=np.int64),
                    columns=Columns(size=len(rows), data=data),
                )
            )
        chunks.append((len(part), batches))
    return executor, chunks


def kernels_alone(config: FeaturizerConfig, chunks: list[Any]) -> tuple[int, Any]:
    """Rows of the kernels over the chunks, and the last row."""
    executor = BatchExecutor(config)
    combiner = Combiner(executor.outputs)
    rows = 0
    last = None
    for size, batches in chunks:
        table, _ = combiner.combine(size, executor.process(batches))
        if table is not None and table.num_rows:
            rows += table.num_rows
            last = table.slice(table.num_rows - 1).to_pylist()[0]
    return rows, last


def with_cents(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The events with prices in cents (amounts are in micro units already): exact sums of
    their squares and products need integers beyond 64 bits."""
    out = []
    for kind, event in events:
        changed = dict(event)
        for name, offset in (("bid", 0.01), ("ask", 0.03), ("price", 0.01)):
            if name in changed:
                changed[name] = round(changed[name] + offset, 2)
        out.append((kind, changed))
    return out


def cents(count: int, repeats: int) -> None:
    """Kernels (columns in memory) against the plain loop over events with prices in cents."""
    config = FeaturizerConfig.from_dict(CONFIG)
    events = with_cents(make_events(count))
    plain_time, (plain_rows, plain_last) = best(repeats, lambda: plain_loop(events))
    _, chunks = memory_chunks(config, events, 65_536)
    kernel_time, (kernel_rows, kernel_last) = best(repeats, lambda: kernels_alone(config, chunks))
    assert plain_rows == kernel_rows, (plain_rows, kernel_rows)
    same = plain_last == tuple(kernel_last[c] for c in list(kernel_last)[1:])
    print(
        f"prices in cents, {count:,} events in memory: kernels {count / kernel_time:,.0f} "
        f"events/s, plain loop {count / plain_time:,.0f} ({plain_time / kernel_time:.2f}x); "
        f"last vector equal: {same}"
    )


CPU: dict[int, list[float]] = {}


def parallel(config: FeaturizerConfig, root: Path, workers: int) -> int:
    """Rows of a backfill with ``workers`` (1: :class:`Backfill` in this process)."""
    import resource

    def used() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    before = used()
    job = (
        Backfill(config, root) if workers == 1 else ParallelBackfill(config, root, workers=workers)
    )
    with job:
        rows = sum(table.num_rows for table in job)
    CPU.setdefault(workers, []).append(used() - before)
    return rows


def on_ray(config: FeaturizerConfig, root: Path, repeats: int, events: int) -> None:
    """One process against 2 workers as Ray tasks, on a local Ray (2 CPUs, loopback: the one
    the ray scaler starts) started first so that its start is not counted, and shut down at
    the end."""
    from featurizer.batch._workers import RayWorkers

    local_ray = RayWorkers(cpus=2)
    try:

        def on_two() -> int:
            with ParallelBackfill(config, root, workers=2, scaler="ray") as job:
                return sum(table.num_rows for table in job)

        one_time, one_rows = best(repeats, lambda: parallel(config, root, 1))
        two_time, two_rows = best(repeats, on_two)
        assert one_rows == two_rows, (one_rows, two_rows)
        print(
            f"on Ray: 1 process {events / one_time:,.0f} events/s ({one_time:.3f} s), 2 workers "
            f"as Ray tasks {events / two_time:,.0f} ({two_time:.3f} s): {one_time / two_time:.2f}x "
            f"(machine load: {os.getloadavg()[0]:.1f})"
        )
    finally:
        local_ray.stop()


_PEAK = """
import sys
from featurizer.cli import main
code = main(["backfill", sys.argv[1], "--storage", sys.argv[2], "--out", sys.argv[3],
             "--no-progress"])
# VmHWM: this process's own peak (ru_maxrss would include the parent's, kept over exec)
print(next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM:")))
sys.exit(code)
"""


def peak_rss(config: FeaturizerConfig, counts: list[int]) -> None:
    """Peak RSS of ``featurizer backfill`` in a fresh process, per stored range size."""
    import subprocess
    import sys

    import yaml

    for count in counts:
        root = Path(tempfile.mkdtemp(prefix="featurizer-bench-rss-"))
        try:
            done = 0
            with Storage(root) as storage:
                features = construct_features_from_configs(config)
                sources = {f.definition_name: f for f in FeatureStreamGraph(features).get_ins()}
                fields = {
                    k: list(full_schema(s.definition.event_schema())) for k, s in sources.items()
                }
                compactor = MemoryBasedCompactor(max_block_bytes=16 * 1024 * 1024)
                with storage.writer(list(sources.values()), compactor=compactor) as w:
                    callbacks = {kind: w.event_callback(s) for kind, s in sources.items()}
                    offset = 0.0
                    while done < count:
                        part = make_events(min(500_000, count - done), seed=7 + done)
                        for kind, raw in part:
                            event = {name: raw[name] for name in fields[kind]}
                            event["timestamp"] += offset
                            event["receipt_timestamp"] += offset
                            callbacks[kind](event)
                        offset += part[-1][1]["timestamp"] - 1_700_000_000.0 + 1.0
                        done += len(part)
            path = root / "config.yaml"
            path.write_text(yaml.safe_dump(CONFIG))
            run = subprocess.run(
                [sys.executable, "-c", _PEAK, str(path), str(root), str(root / "out.parquet")],
                capture_output=True,
                text=True,
                check=True,
            )
            peak = int(run.stdout.strip().splitlines()[-1])
            print(f"peak RSS, {count:,} stored events: {peak / 1024:,.0f} MiB")
        finally:
            shutil.rmtree(root, ignore_errors=True)


BOOK = {
    "feature_configs": [
        {
            "name": "book",
            "feature_definition": "l2_snapshot",
            "params": {
                "depth": 10,
                "data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"},
            },
        },
        *(
            {
                "name": name,
                "feature_definition": definition,
                "params": {
                    **extra,
                    "data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"},
                    "feature": {"l2_snapshot": {"depth": 10}},
                },
            }
            for name, definition, extra in (
                ("obi", "order_book_imbalance", {"depth": 5}),
                ("mid", "mid_price_l2", {}),
                ("spread", "relative_spread_l2", {}),
            )
        ),
    ]
}


def _lists(value: Any) -> Any:
    """Tuples as lists, recursively (how Arrow gives the book levels back)."""
    if isinstance(value, list | tuple):
        return [_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    return value


def book(count: int, repeats: int) -> None:
    """The book features over ``count`` stored messages: kernels, no kernels, replay."""
    import itertools

    from featurizer_synthetic.market import SyntheticMarket

    config = FeaturizerConfig.from_dict(BOOK)
    (source,) = FeatureStreamGraph(construct_features_from_configs(config)).get_ins()
    fields = list(full_schema(source.definition.event_schema()))
    market = SyntheticMarket([("l2_book", "BTC-USDT")], seed=3)
    root = Path(tempfile.mkdtemp(prefix="featurizer-bench-book-"))
    try:
        compactor = MemoryBasedCompactor(max_block_bytes=16 * 1024 * 1024)
        with Storage(root) as storage, storage.writer([source], compactor=compactor) as w:
            callback = w.event_callback(source)
            for _, event in itertools.islice(market.events(), count):
                callback({name: event[name] for name in fields})

        def batch(kernels: bool) -> Any:
            with Backfill(config, root, kernels=kernels) as job:
                return job.table()

        with_time, table = best(repeats, lambda: batch(True))
        without_time, plain = best(repeats, lambda: batch(False))
        replay_time, (_, rows) = best(1, lambda: per_event_from_storage(config, root))
        same = table.equals(plain) and table.to_pylist() == _lists(rows)
        print(f"book features, {count:,} stored l2_book messages (rows equal: {same}):")
        print(f"  batch, book kernels       {count / with_time:>12,.0f} events/s")
        print(f"  batch, without kernels    {count / without_time:>12,.0f} events/s")
        print(f"  per-event replay          {count / replay_time:>12,.0f} events/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--rss", help="also measure peak RSS of `featurizer backfill` for these event counts"
    )
    parser.add_argument(
        "--book", type=int, default=0, help="also measure the book features over N messages"
    )
    parser.add_argument(
        "--ray", action="store_true", help="also measure 2 workers as Ray tasks (a local Ray)"
    )
    parser.add_argument(
        "--cents",
        type=int,
        default=0,
        help="also measure the kernels against the plain loop over N events priced in cents",
    )
    args = parser.parse_args()
    n = args.events
    config = FeaturizerConfig.from_dict(CONFIG)
    events = make_events(n)
    root = Path(tempfile.mkdtemp(prefix="featurizer-bench-backfill-"))
    try:
        started = time.perf_counter()
        store(root, config, events)
        print(f"events: {n:,} stored in {time.perf_counter() - started:.1f} s under {root}")
        batch_time, (batch_rows, batch_last) = best(
            args.repeats, lambda: batch_from_storage(config, root)
        )
        plain_time, (plain_rows, plain_last) = best(args.repeats, lambda: plain_loop(events))
        event_time, (event_rows, event_all) = best(1, lambda: per_event_from_storage(config, root))
        _, chunks = memory_chunks(config, events, 65_536)
        kernel_time, (kernel_rows, _) = best(args.repeats, lambda: kernels_alone(config, chunks))
        one_time, one_rows = best(args.repeats, lambda: parallel(config, root, 1))
        two_time, two_rows = best(args.repeats, lambda: parallel(config, root, 2))
        parts = ParallelBackfill(config, root, workers=2).table()
        with Backfill(config, root) as job:
            parallel_same = parts.equals(job.table())
        with Backfill(config, root) as job:
            table = job.table()
        identical = table.to_pylist() == event_all
        plain_same = plain_last == tuple(batch_last[c] for c in list(batch_last)[1:])
        assert batch_rows == event_rows == plain_rows == kernel_rows == one_rows == two_rows, (
            batch_rows,
            event_rows,
            plain_rows,
            kernel_rows,
            one_rows,
            two_rows,
        )
        print(
            f"rows: {batch_rows:,}; batch rows == per-event rows bit for bit: {identical}; "
            f"plain loop last vector equal: {plain_same}; 2 workers' rows equal: {parallel_same}"
        )
        rate = {
            "batch from storage": n / batch_time,
            "plain loop (memory)": n / plain_time,
            "per-event from storage": n / event_time,
            "kernels alone (memory)": n / kernel_time,
            "parallel, 1 worker": n / one_time,
            "parallel, 2 workers": n / two_time,
        }
        for name, value in rate.items():
            print(f"{name:<24} {value:>12,.0f} events/s")
        batch = rate["batch from storage"]
        print(f"batch / plain loop:       {batch / rate['plain loop (memory)']:.2f}x")
        print(f"batch / per-event:        {batch / rate['per-event from storage']:.2f}x")
        print(f"2 workers / 1 worker:     {one_time / two_time:.2f}x")
        print(
            f"CPU seconds (this process and its workers, least of the repeats): 1 worker "
            f"{min(CPU[1]):.2f}, 2 workers {min(CPU[2]):.2f} (machine load: "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )
        if args.book:
            book(args.book, args.repeats)
        if args.cents:
            cents(args.cents, args.repeats)
        if args.ray:
            on_ray(config, root, args.repeats, n)
        if args.rss:
            peak_rss(config, [int(n) for n in args.rss.split(",")])
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
