"""Checkpointing: throughput cost, recovery replay speed, time to resume, checkpoint sizes.

On the reference workload (one symbol of the synthetic market, ticker and trades; mid price,
60 s volatility, 60 s trade volume imbalance, combined vector on every update; see
``reference_workload.py``), all through the real runner writing JSON Lines:

* **throughput cost**: ``featurizer run`` without and with ``--checkpoint`` at the default
  interval (10 s), interleaved, best of ``--repeats`` (target: at most 10% slower), both ways:
  automatic (the synthetic emitter replays its input, so no input log is kept) and with
  ``log_input: true`` (every event logged, as for a live feed); the same for the hot path
  measured in process;
* **recovery replay speed**: a checkpointed run with ``log_input: true`` is SIGKILLed (fault
  hook) with ``--resume`` events in the log after its last cut (none before: the whole log is
  the tail); the restarted run's replay of the log (events/s, from its metrics) against
  ``featurizer replay`` of a recording of the same events (target: at least 0.9x);
* **time to resume** (logged too): from starting the restarted process to the end of its log
  replay (when it continues live), and its restore + replay part alone;
* **checkpoint size and duration** for ``examples/quickstart.yaml``, and their growth with the
  window length of the reference workload.

Everything runs on one machine shared with other work: numbers are noisy.

    python benchmarks/checkpoint.py --events 300000 --resume 1000000
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from reference_workload import CONFIG  # the same reference workload, one definition

from featurizer import FeaturizerConfig, RunOptions
from featurizer.checkpoint import FAULT_ENV, CheckpointSettings, run_checkpointed

REPO = Path(__file__).resolve().parents[1]


def featurizer(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run the CLI in a fresh process: exit code, stderr and wall seconds."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "featurizer", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return result.returncode, result.stderr, time.perf_counter() - started


def _rate(stderr: str) -> float:
    match = re.search(r"events/s: ([\d,]+)", stderr)
    assert match is not None, stderr[-2000:]
    return float(match.group(1).replace(",", ""))


def throughput_cost(
    workdir: Path, config: Path, logged: Path, events: int, repeats: int
) -> dict[str, Any]:
    """events/s of plain and checkpointed runs (default interval), automatic (no input log
    for the synthetic emitter) and ``logged`` (the same config with ``log_input: true``),
    back to back in triples: the best of each, and the median ratio to the plain run of the
    same triple (they share the machine's load)."""
    plain: list[float] = []
    rates: dict[str, list[float]] = {"automatic": [], "logged": []}
    checkpoints: list[int] = []
    for attempt in range(repeats):
        common = ["--max-events", str(events), "--seed", "7"]
        code, err, _ = featurizer("run", str(config), *common, "--out", str(workdir / "p.jsonl"))
        assert code == 0, err
        plain.append(_rate(err))
        for mode, path in (("automatic", config), ("logged", logged)):
            directory = workdir / f"ck-throughput-{mode}-{attempt}"
            code, err, _ = featurizer(
                "run",
                str(path),
                *common,
                "--out",
                str(workdir / "ck.jsonl"),
                "--checkpoint",
                str(directory),
            )
            assert code == 0, err
            rates[mode].append(_rate(err))
            assert (directory / "log").is_dir() is (mode == "logged"), mode
            match = re.search(r"checkpoints: ([\d,]+) committed", err)
            checkpoints.append(int(match.group(1).replace(",", "")) if match else -1)
            same = (workdir / "p.jsonl").read_bytes() == (workdir / "ck.jsonl").read_bytes()
            assert same, f"the checkpointed output ({mode}) differs from the plain one"
    result: dict[str, Any] = {"plain": max(plain), "checkpoints": checkpoints, "all_plain": plain}
    for mode, runs in rates.items():
        ratios = sorted(c / p for p, c in zip(plain, runs, strict=True))
        result[mode] = {
            "best": max(runs),
            "ratio": max(runs) / max(plain),
            "median_pair_ratio": ratios[len(ratios) // 2],
            "all": runs,
        }
    return result


def hot_path_cost(workdir: Path, events: int, repeats: int) -> dict[str, float]:
    """Seconds per event of the compiled graph alone, with the checkpointed dispatch of a run
    that keeps no input log (position, trigger) and with that of a logging one (input log
    too), on the same pre-generated events in one process: interleaved, best of ``repeats``
    (less noisy than whole runs on a shared machine)."""
    import featurizer_synthetic

    from featurizer import FeatureStreamGraph, construct_features_from_configs
    from featurizer.checkpoint import Checkpointer, SegmentedJsonLinesSink

    config = FeaturizerConfig.from_dict(CONFIG)
    inputs = FeatureStreamGraph(construct_features_from_configs(config)).get_ins()
    emitter = featurizer_synthetic.SyntheticEventEmitter.from_options(
        {"seed": 7, "max_events": events}
    )
    generated: list[tuple[str, Any]] = []
    for source in inputs:
        emitter.register_callback(source, lambda e, k=source.key: generated.append((k, e)))
    emitter.run()
    best = {"graph": float("inf"), "checkpointed": float("inf"), "logged": float("inf")}
    for attempt in range(repeats):
        for mode in ("graph", "checkpointed", "logged"):
            graph = FeatureStreamGraph(
                construct_features_from_configs(config),
                combine_outputs=True,
                combined_out_callback=lambda grouped: None,
            )
            checkpointer = None
            calls = {s.key: graph.input_callback(s) for s in graph.get_ins()}
            if mode != "graph":
                directory = workdir / f"ck-hot-{mode}-{attempt}"
                sink = SegmentedJsonLinesSink(workdir / "hot.jsonl", directory)
                settings = CheckpointSettings(
                    directory=directory,
                    every_seconds=3600.0,
                    log_input=True if mode == "logged" else None,
                )
                checkpointer = Checkpointer(settings, sink, {})
                checkpointer.start(graph, lambda count: None, replayable=True)
                assert checkpointer.logs_input is (mode == "logged")
                calls = {
                    s.key: checkpointer.around(s, graph.input_callback(s)) for s in graph.get_ins()
                }
            started = time.perf_counter()
            for key, event in generated:
                calls[key](event)
            if checkpointer is not None:
                checkpointer.close()  # the log's background work (if any) is part of the cost
            best[mode] = min(best[mode], (time.perf_counter() - started) / len(generated))
    return best


def recovery(workdir: Path, config: Path, events: int) -> dict[str, Any]:
    """Kill a checkpointed run (``config`` logs its input) with ``events`` logged after its
    last cut; restart it; and replay a recording of the same events with ``featurizer
    replay``."""
    directory = workdir / "ck-recovery"
    out = workdir / "recovery.jsonl"
    common = ["run", str(config), "--max-events", str(events), "--seed", "7", "--out", str(out)]
    checkpointed = [*common, "--checkpoint", str(directory), "--checkpoint-every", "1000000000"]
    code, err, killed_seconds = featurizer(*checkpointed, env={FAULT_ENV: f"event:{events}"})
    assert code == -signal.SIGKILL, err[-2000:]
    code, err, resume_seconds = featurizer(*checkpointed)
    assert code == 0, err[-2000:]
    match = re.search(r"replayed: ([\d,]+) events in ([\d.]+) s", err)
    assert match is not None, err
    replayed = int(match.group(1).replace(",", ""))
    recovery_seconds = float(match.group(2))
    storage = workdir / "recording"
    code, err, _ = featurizer(
        "record",
        str(config),
        "--max-events",
        str(events),
        "--seed",
        "7",
        "--storage",
        str(storage),
        "--store",
        "data_sources",
    )
    assert code == 0, err[-2000:]
    code, err, _ = featurizer(
        "replay",
        str(config),
        "--storage",
        str(storage),
        "--out",
        str(workdir / "replay.jsonl"),
        "--no-progress",
    )
    assert code == 0, err[-2000:]
    replay_rate = _rate(err)
    return {
        "logged_events": replayed,
        "recovery_seconds": recovery_seconds,
        "recovery_rate": replayed / recovery_seconds,
        "replay_rate": replay_rate,
        "ratio": replayed / recovery_seconds / replay_rate,
        "killed_run_seconds": killed_seconds,
        "restarted_process_seconds": resume_seconds,
    }


def time_to_resume(workdir: Path, config: Path, events: int) -> dict[str, float]:
    """Seconds from starting the restarted process until it continues live (its log replayed),
    measured from its log lines (``config`` logs its input)."""
    directory = workdir / "ck-resume"
    common = ["run", str(config), "--max-events", str(2 * events), "--seed", "7"]
    checkpointed = [
        *common,
        "--out",
        str(workdir / "resume.jsonl"),
        "--checkpoint",
        str(directory),
        "--checkpoint-every",
        "1000000000",
    ]
    code, err, _ = featurizer(*checkpointed, env={FAULT_ENV: f"event:{events}"})
    assert code == -signal.SIGKILL, err[-2000:]
    process = subprocess.Popen(
        [sys.executable, "-m", "featurizer", *checkpointed],
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != FAULT_ENV},
    )
    started = time.perf_counter()
    resumed_at = None
    assert process.stderr is not None
    for line in process.stderr:
        if "featurizer.checkpoint._session: replayed" in line and resumed_at is None:
            resumed_at = time.perf_counter() - started
    process.wait()
    assert process.returncode == 0 and resumed_at is not None
    return {"events_after_cut": float(events), "seconds_to_continue_live": resumed_at}


def checkpoint_sizes(workdir: Path, events: int) -> list[dict[str, Any]]:
    """State size and checkpoint duration: quickstart, and the reference workload with
    growing windows."""
    cases: list[tuple[str, FeaturizerConfig]] = [
        ("quickstart.yaml", FeaturizerConfig.from_yaml(REPO / "examples" / "quickstart.yaml"))
    ]
    for window in ("10s", "60s", "5m", "30m"):
        config = copy.deepcopy(CONFIG)
        for entry in config["feature_configs"]:
            if "window" in entry["params"]:
                entry["params"]["window"] = window
        cases.append((f"reference, windows {window}", FeaturizerConfig.from_dict(config)))
    results = []
    for n, (name, config) in enumerate(cases):
        settings = CheckpointSettings.from_every(workdir / f"ck-size-{n}", str(events // 2))
        options = RunOptions(emitter="synthetic", max_events=events, seed=7)
        _, checkpointer = run_checkpointed(config, options, workdir / f"size-{n}.jsonl", settings)
        from featurizer.checkpoint import inspect_directory

        first = inspect_directory(settings.directory).checkpoints[0]
        results.append(
            {
                "name": name,
                "state_bytes": first.state_bytes,
                "file_bytes": Path(first.path).stat().st_size,
                "duration_ms": first.duration_seconds * 1000,
                "commit_ms": checkpointer.metrics.last_duration_seconds * 1000,
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="events per throughput run")
    parser.add_argument("--resume", type=int, default=1_000_000, help="logged events to recover")
    parser.add_argument("--sizes", type=int, default=200_000, help="events before a checkpoint")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = workdir / "reference.yaml"
        config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
        logged = workdir / "reference-logged.yaml"
        section = {"dir": "ignored", "log_input": True}  # --checkpoint DIR replaces the dir
        logged.write_text(yaml.safe_dump({**CONFIG, "checkpoint": section}), encoding="utf-8")
        cost = throughput_cost(workdir, config, logged, args.events, args.repeats)
        print(
            f"throughput, {args.events:,} events, best of {args.repeats}: plain "
            f"{cost['plain']:,.0f} events/s; checkpoints per run {cost['checkpoints']}; "
            f"all plain runs {[round(r) for r in cost['all_plain']]}",
            flush=True,
        )
        for mode, what in (
            ("automatic", "automatic: no input log, the synthetic emitter replays its input"),
            ("logged", "log_input: true: every event logged"),
        ):
            c = cost[mode]
            print(
                f"  checkpointed every 10 s, {what}: {c['best']:,.0f} events/s: best-of ratio "
                f"{c['ratio']:.3f} (cost {100 * (1 - c['ratio']):.1f}%), median ratio of "
                f"back-to-back runs {c['median_pair_ratio']:.3f}; all runs "
                f"{[round(r) for r in c['all']]}",
                flush=True,
            )
        hot = hot_path_cost(workdir, min(args.events, 200_000), args.repeats)
        print(
            f"hot path, in process, best of {args.repeats}: graph alone "
            f"{hot['graph'] * 1e6:.2f} us/event; checkpointed dispatch without a log "
            f"{hot['checkpointed'] * 1e6:.2f} us/event (+"
            f"{(hot['checkpointed'] - hot['graph']) * 1e6:.2f}), with the input log "
            f"{hot['logged'] * 1e6:.2f} us/event (+{(hot['logged'] - hot['graph']) * 1e6:.2f}; "
            f"both with close)",
            flush=True,
        )
        rec = recovery(workdir, logged, args.resume)
        print(
            f"recovery: {rec['logged_events']:,} logged events replayed in "
            f"{rec['recovery_seconds']:.2f} s = {rec['recovery_rate']:,.0f} events/s; featurizer "
            f"replay {rec['replay_rate']:,.0f} events/s: ratio {rec['ratio']:.2f}; the restarted "
            f"process took {rec['restarted_process_seconds']:.1f} s in all (the synthetic "
            f"emitter regenerates and skips the {args.resume:,} consumed events)",
            flush=True,
        )
        resume = time_to_resume(workdir, logged, args.resume)
        print(
            f"time to resume after a kill with {args.resume:,} events since the last checkpoint: "
            f"{resume['seconds_to_continue_live']:.2f} s from process start to continuing live",
            flush=True,
        )
        for size in checkpoint_sizes(workdir, args.sizes):
            print(
                f"checkpoint after {args.sizes // 2:,} events, {size['name']}: state "
                f"{size['state_bytes']:,} bytes (file {size['file_bytes']:,}), "
                f"{size['duration_ms']:.1f} ms to the commit",
                flush=True,
            )


if __name__ == "__main__":
    main()
