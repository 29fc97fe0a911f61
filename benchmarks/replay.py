"""Recording and replay: throughput from storage vs from memory, peak RSS, bytes per event.

The reference workload (one symbol, ticker and trades from the synthetic market; mid price,
60 s volatility and 60 s trade volume imbalance, combined vector on every update) is recorded
once (data sources and outputs, as ``featurizer record`` does), then replayed through the full
pipeline (runner, compiled graph, combined output flattened into rows, a sink) three ways:

* **storage**: ``featurizer run --emitter offline`` (blocks read, checksummed and decoded by
  background threads, turned into events, merged, emitted in chunks);
* **memory (Arrow)**: the same offline emitter and replay code, but its segments (decoded
  Arrow columns) are already in memory: no file reads, checksums or Parquet decoding. The
  difference to *storage* is the I/O, which should be hidden behind the graph's work;
* **memory (dicts)**: the very same merged events, already built as Python dicts and held in
  memory, emitted by the same loop: the difference to *storage* is all the cost of storage,
  building the event dicts included (CPython work that cannot overlap with the graph's);
* **memory (per-event emitter)**: ``featurizer.testing.InMemoryEmitter`` over a list of
  ``(source, event)`` pairs (one Python call per event), for reference.

Both the recording and the run without it are warmed up once (unmeasured) before the
interleaved pairs: the first recording of a process imports what the writer's threads use.
Every other pair records first (ABBA order), so that a drift of the machine's speed favours
neither side; the median of the pairs' ratios is the figure to quote.

Peak RSS of a replay is measured in fresh subprocesses for growing ranges: it must not grow
with the range. Everything runs on one machine shared with other work: numbers are noisy.

    python benchmarks/replay.py --events 500000 --rss 1000000,3000000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reference_workload import CONFIG  # the same reference workload, one definition

from featurizer import (
    EmitterSpec,
    FeatureStreamGraph,
    FeaturizerConfig,
    construct_features_from_configs,
    hookimpl,
)
from featurizer._plugins import Plugins, make_plugin_manager
from featurizer._runner import RunOptions, run
from featurizer.storage import MemoryBasedCompactor, Replay, Storage, record
from featurizer.storage._replay import _Segment
from featurizer.testing import InMemoryEmitter


class CountingSink:
    """Counts rows (the rows are built by the runner, as for any sink)."""

    def __init__(self) -> None:
        self.rows = 0

    def write_row(self, row: Mapping[str, Any]) -> None:
        self.rows += 1

    def close(self, ok: bool = True) -> None:
        pass


class _ChunkEmitter(InMemoryEmitter):
    """The offline emitter's own emission loop over chunks decoded beforehand (in memory)."""

    def __init__(self, chunks: list[Any], sources: list[Any]) -> None:
        super().__init__(validate=False)
        self._chunks = chunks
        self._sources = sources

    def run(self) -> None:
        from featurizer_offline.emitter import _emit, _fan_out

        callbacks = [_fan_out([self._callbacks[s]]) for s in self._sources]
        for chunk in self._chunks:
            if self._stop.is_set():
                break
            _emit(chunk, callbacks)
            self.emitted += len(chunk)


class _ArrowReplay(Replay):
    """A replay whose segments (Arrow columns, merge keys) are already in memory."""

    def __init__(self, cached: list[list[Any]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cached = cached

    def _segments(self, index: int) -> Any:
        decoder = self._decoders[index]
        for table, keys, seqs in self._cached[index]:
            yield _Segment(table, decoder, keys, seqs)


def _arrow_emitter(root: Path, sources: list[Any], cached: list[list[Any]]) -> Any:
    from featurizer_offline import OfflineEventEmitter

    emitter = OfflineEventEmitter.from_options({"storage": str(root)})
    storage = Storage.open(root)
    emitter.replay = _ArrowReplay(cached, storage.root, storage.catalog, sources)
    return emitter


class _MemoryPlugin:
    """Registers the in-memory emitters with prebuilt contents."""

    def __init__(self, **built: Any) -> None:
        self.built = built

    @hookimpl
    def featurizer_register_emitters(self) -> list[EmitterSpec]:
        return [
            EmitterSpec(name=name, emitter_class=InMemoryEmitter, data_sources=("ticker", "trades"))
            for name in self.built
        ]

    @hookimpl
    def featurizer_make_emitter(self, name: str, options: dict[str, Any]) -> Any:
        return self.built.get(name)


def _run(
    config: FeaturizerConfig,
    options: RunOptions,
    plugins: Plugins | None = None,
    cpu: list[float] | None = None,
) -> float:
    """Events/s of one run (and, into ``cpu``, the CPU seconds of every thread it used)."""
    sink = CountingSink()
    started_cpu = time.process_time()
    started = time.perf_counter()
    summary = run(config, options, sink, plugins=plugins)
    elapsed = time.perf_counter() - started
    if cpu is not None:
        cpu.append(time.process_time() - started_cpu)
    assert summary.events_in == options.max_events, summary
    return summary.events_in / elapsed


def _record_once(
    root: Path, config: FeaturizerConfig, events: int, cpu: list[float] | None = None
) -> tuple[Any, float]:
    """Record ``events`` input events into a fresh ``root``: the summary and the seconds taken
    (run, WAL, blocks and the final publication included; their CPU seconds, every thread's,
    into ``cpu``)."""
    options = RunOptions(emitter="synthetic", max_events=events, seed=7)
    with Storage(root) as storage:
        started_cpu = time.process_time()
        started = time.perf_counter()
        summary = record(
            config,
            options,
            storage,
            sink=CountingSink(),
            compactor=MemoryBasedCompactor(max_block_bytes=16 * 1024 * 1024),
        )
        elapsed = time.perf_counter() - started
        if cpu is not None:
            cpu.append(time.process_time() - started_cpu)
        return summary, elapsed


def record_reference(root: Path, events: int, repeats: int = 1) -> dict[str, Any]:
    """Record the reference workload; return throughput (best of ``repeats`` recordings and
    as many runs without recording, interleaved to share the noise) and bytes per event."""
    config = FeaturizerConfig.from_dict(CONFIG)
    measured = min(events, 500_000)
    # A warm-up of both, unmeasured: the first recording of a process imports what the
    # writer's threads use (pyarrow's Parquet and compute modules, pandas: about 0.25 s).
    _run(config, RunOptions(emitter="synthetic", max_events=20_000, seed=7))
    warm_up = root.parent / f"{root.name}.warm-up"
    _record_once(warm_up, config, 20_000)
    shutil.rmtree(warm_up)
    plain_rates, record_rates, run_rates = [], [], []
    plain_cpu: list[float] = []
    record_cpu: list[float] = []
    for attempt in range(repeats):
        options = RunOptions(emitter="synthetic", max_events=measured, seed=7)
        # Every other pair records first: a machine whose speed drifts during a pair then
        # favours neither side (the order alternates: ABBA).
        if attempt % 2 == 0:
            plain_rates.append(_run(config, options, cpu=plain_cpu))
        trial = root.parent / f"{root.name}.trial{attempt}"
        trial_summary, seconds = _record_once(trial, config, measured, record_cpu)
        run_rates.append(measured / trial_summary.run.elapsed_seconds)
        shutil.rmtree(trial)
        record_rates.append(measured / seconds)
        if attempt % 2 == 1:
            plain_rates.append(_run(config, options, cpu=plain_cpu))
    plain_rate = max(plain_rates)
    summary, elapsed = _record_once(root, config, events)
    if events == measured:
        record_rates.append(events / elapsed)
        run_rates.append(events / summary.run.elapsed_seconds)
    with Storage.open(root) as storage:
        stats = storage.catalog.series_stats()
        kinds = {s.key: s.kind for s in storage.series()}
    by_kind: dict[str, list[int]] = {}
    for key, (blocks, rows, size, _, _) in stats.items():
        entry = by_kind.setdefault(kinds[key], [0, 0, 0])
        entry[0] += blocks
        entry[1] += rows
        entry[2] += size
    best = max(record_rates) if record_rates else summary.run.events_in / elapsed
    pair_ratios = sorted(r / p for r, p in zip(record_rates, plain_rates, strict=False))
    cpu_ratios = sorted(r / p for r, p in zip(record_cpu, plain_cpu, strict=True))
    return {
        "median_pair_ratio": pair_ratios[len(pair_ratios) // 2] if pair_ratios else None,
        "median_cpu_ratio": cpu_ratios[len(cpu_ratios) // 2] if cpu_ratios else None,
        "median_cpu_seconds": (
            sorted(record_cpu)[len(record_cpu) // 2] if record_cpu else None,
            sorted(plain_cpu)[len(plain_cpu) // 2] if plain_cpu else None,
        ),
        "all_plain": plain_rates,
        "all_recording": record_rates[: len(plain_rates)],
        "input_events": summary.run.events_in,
        "stored_events": summary.acknowledged,
        "elapsed": elapsed,
        "input_events_per_s": best,
        "input_events_per_s_while_running": max(run_rates) if run_rates else best,
        "stored_events_per_s": best * summary.acknowledged / summary.run.events_in,
        "run_without_recording_events_per_s": plain_rate,
        "bytes_per_event": summary.bytes_per_event,
        "by_kind": {
            kind: {"blocks": b, "events": r, "bytes": s, "bytes_per_event": s / r}
            for kind, (b, r, s) in by_kind.items()
        },
    }


def replay_throughput(root: Path, events: int, repeats: int) -> dict[str, float]:
    """Events/s of the three replays (best of ``repeats``), interleaved to share the noise."""
    config = FeaturizerConfig.from_dict(CONFIG)
    sources = FeatureStreamGraph(construct_features_from_configs(config)).get_ins()
    with Storage.open(root) as storage:
        cached: list[list[Any]] = []
        probe = storage.replay(sources)
        for index in range(len(sources)):
            rows = 0
            segments = []
            for segment in probe._segments(index):
                segments.append((segment._table, segment.keys, segment.seqs))
                rows += segment.size
                if rows >= events:
                    break
            cached.append(segments)
        replay = storage.replay(sources)
        chunks: list[Any] = []
        count = 0
        for chunk in replay.chunks():
            chunks.append(chunk)
            count += len(chunk)
            if count >= events:
                break
        replay.close()
    pairs: list[Any] = []
    for chunk in chunks:
        if isinstance(chunk.sources, int):
            pairs.extend((sources[chunk.sources], e) for e in chunk.events)
        else:
            pairs.extend((sources[i], e) for i, e in zip(chunk.sources, chunk.events, strict=True))
    gc.collect()
    gc.freeze()
    results: dict[str, list[float]] = {
        "storage": [],
        "memory_arrow": [],
        "memory_chunks": [],
        "memory_events": [],
    }
    for _ in range(repeats):
        results["storage"].append(
            _run(
                config,
                RunOptions(
                    emitter="offline", max_events=events, emitter_options={"storage": str(root)}
                ),
            )
        )
        for name in ("memory_arrow", "memory_chunks", "memory_events"):
            plugin = _MemoryPlugin(
                memory_arrow=_arrow_emitter(root, sources, cached),
                memory_chunks=_ChunkEmitter(chunks, sources),
                memory_events=InMemoryEmitter(pairs, validate=False),
            )
            plugins = Plugins(make_plugin_manager(extra_plugins=[plugin]))
            results[name].append(_run(config, RunOptions(emitter=name, max_events=events), plugins))
    gc.unfreeze()
    return {
        **{name: max(rates) for name, rates in results.items()},
        **{f"{name}_median": sorted(rates)[len(rates) // 2] for name, rates in results.items()},
    }


def _peak_rss() -> int:
    """This process's peak RSS in bytes: ``VmHWM`` (reset by ``exec``, unlike ``ru_maxrss``,
    which a child spawned by a big parent inherits)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_child(root: str, events: int) -> None:
    config = FeaturizerConfig.from_dict(CONFIG)
    started = time.perf_counter()
    sink = CountingSink()
    summary = run(
        config,
        RunOptions(emitter="offline", max_events=events, emitter_options={"storage": root}),
        sink,
    )
    elapsed = time.perf_counter() - started
    peak = _peak_rss()
    print(
        json.dumps({"events": summary.events_in, "rss": peak, "rate": summary.events_in / elapsed}),
    )


def peak_rss(root: Path, events: int) -> dict[str, Any]:
    """Peak RSS and throughput of a replay of ``events`` events in a fresh process."""
    output = subprocess.run(
        [sys.executable, __file__, "--_rss-child", str(root), str(events)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000, help="events per throughput run")
    parser.add_argument("--rss", default="1000000,3000000", help="replay sizes for peak RSS")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, help="keep the recording here (default: temp dir)")
    parser.add_argument(
        "--no-throughput", action="store_true", help="only record (if needed) and measure RSS"
    )
    parser.add_argument("--_rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._rss_child:
        _rss_child(args._rss_child[0], int(args._rss_child[1]))
        return
    sizes = [int(x) for x in args.rss.split(",") if x]
    total = max([args.events, *sizes])
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp) / "storage"
        if not (root / "catalog.sqlite").exists():
            print(f"recording {total:,} input events of the reference workload ...", flush=True)
            recorded = record_reference(root, total, args.repeats)
            plain = recorded["run_without_recording_events_per_s"]
            print(
                f"recording (best of {args.repeats}, interleaved with runs without recording): "
                f"{recorded['input_events_per_s']:,.0f} input events/s "
                f"({recorded['stored_events_per_s']:,.0f} stored events/s, data sources and "
                f"outputs); run without recording: "
                f"{plain:,.0f} events/s; ratio {recorded['input_events_per_s'] / plain:.2f}; "
                f"median ratio of the interleaved pairs {recorded['median_pair_ratio']:.2f} "
                f"(recording {[round(r) for r in recorded['all_recording']]}, without "
                f"{[round(r) for r in recorded['all_plain']]} events/s)"
            )
            if recorded["median_cpu_ratio"] is not None:
                record_cpu, plain_cpu = recorded["median_cpu_seconds"]
                print(
                    f"  CPU time (every thread), median of the pairs: recording "
                    f"{recorded['median_cpu_ratio']:.2f}x the run without it (medians "
                    f"{record_cpu:.2f} against {plain_cpu:.2f} s); load average "
                    f"{os.getloadavg()[0]:.1f}"
                )
            running = recorded["input_events_per_s_while_running"]
            print(
                f"  while the run goes (without publishing the last open blocks at the stop): "
                f"{running:,.0f} input events/s; ratio {running / plain:.2f}"
            )
            for kind, info in sorted(recorded["by_kind"].items()):
                print(
                    f"  {kind:11}: {info['events']:>11,} events in {info['blocks']:>4} blocks, "
                    f"{info['bytes']:>12,} bytes, {info['bytes_per_event']:.1f} bytes/event"
                )
            print(f"  all        : {recorded['bytes_per_event']:.1f} bytes/event on disk")
        baseline = None
        for size in sizes:
            result = peak_rss(root, size)
            baseline = baseline or result["rss"]
            print(
                f"peak RSS replaying {result['events']:>11,} events: "
                f"{result['rss'] / 2**20:8.1f} MiB ({result['rss'] / baseline:.2f}x the first) "
                f"at {result['rate']:,.0f} events/s",
                flush=True,
            )
        if args.no_throughput:
            return
        rates = replay_throughput(root, args.events, args.repeats)
        print(
            f"replay of {args.events:,} events through the full pipeline "
            f"(best of {args.repeats}, interleaved):"
        )
        for name, label in (
            ("storage", "from storage (offline emitter)"),
            ("memory_arrow", "from memory: Arrow segments, same code"),
            ("memory_chunks", "from memory: event dicts, same loop"),
            ("memory_events", "from memory: per-event InMemoryEmitter"),
        ):
            ratio = rates["storage"] / rates[name]
            median = rates["storage_median"] / rates[f"{name}_median"]
            print(
                f"  {label:40} {rates[name]:>10,.0f} events/s   storage/this {ratio:.3f} "
                f"(medians: {rates[f'{name}_median']:,.0f} events/s, {median:.3f})"
            )


if __name__ == "__main__":
    main()
