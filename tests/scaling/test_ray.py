"""Real Ray actors and ZeroMQ sockets on loopback (a local Ray of 2 CPUs, started once here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from featurizer import (
    FeatureStreamGraph,
    FeaturizerConfig,
    construct_features_from_configs,
    get_plugins,
)
from featurizer._runner import RunOptions
from featurizer.scaling import ScalingError, WorkerError, build_plan, run_scaled
from featurizer.testing import CollectingSink

CONFIG = {
    "feature_configs": [
        {
            "name": "mid_btc",
            "feature_definition": "mid_price",
            "params": {"data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"}},
        },
        {
            "name": "vol_btc",
            "feature_definition": "volatility",
            "params": {
                "window": "10s",
                "data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"},
            },
        },
        {
            "name": "tvi_btc",
            "feature_definition": "trade_volume_imbalance",
            "params": {
                "window": "10s",
                "data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"},
            },
        },
        {
            "name": "mid_eth",
            "feature_definition": "mid_price",
            "params": {"data_source": {"exchange": "synthetic", "symbol": "ETH-USDT"}},
        },
        {
            "name": "vol_eth",
            "feature_definition": "volatility",
            "params": {
                "window": "5s",
                "data_source": {"exchange": "synthetic", "symbol": "ETH-USDT"},
            },
        },
    ]
}


def _all_cpus_free(ray: Any) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU") == 2.0:
            return True
        time.sleep(0.1)
    return False


def _reference(
    config: FeaturizerConfig, strategy: str, workers: int, seed: int, max_events: int
) -> list[Any]:
    """Single-process output for the input the workers' synthetic emitters produce."""
    from featurizer_synthetic import SyntheticEventEmitter

    plugins = get_plugins()
    features = construct_features_from_configs(config, plugins)
    plan = build_plan(features, strategy, workers, plugins)
    events = []
    for worker in plan.workers:
        if not worker.sources:
            continue
        emitter = SyntheticEventEmitter.from_options({"seed": seed, "max_events": max_events})
        for source in worker.sources:
            emitter.register_callback(source, lambda e, s=source: events.append((s, e)))
        emitter.run()
    events.sort(key=lambda named: (named[1]["timestamp"], plan.group_of(named[0])))
    got: list[Any] = []
    graph = FeatureStreamGraph(features, combine_outputs=True, combined_out_callback=got.append)
    for named in events:
        graph.emit_named_data_event(named)
    return got


@pytest.mark.parametrize(
    ("strategy", "workers", "seed"), [("by_source", 2, 3), ("split", 2, 5), ("single", 1, 7)]
)
def test_ray_output_equals_single_process_output(
    ray_cluster: Any, strategy: str, workers: int, seed: int
) -> None:
    config = FeaturizerConfig.from_dict(CONFIG)
    got: list[Any] = []
    summary = run_scaled(
        config,
        RunOptions(max_events=3000, seed=seed),
        CollectingSink(),
        scaler="ray",
        workers=workers,
        strategy=strategy,
        transport_options={"batch_size": 256},
        on_combined=got.append,
    )
    expected = _reference(config, strategy, workers, seed, 3000)
    assert len(expected) > 100
    assert got == expected
    assert summary.outputs_out == len(expected)
    assert set(summary.workers) == set(range(workers))
    assert _all_cpus_free(ray_cluster)  # every worker actor is gone


def test_ray_worker_that_raises_is_a_clear_error(ray_cluster: Any) -> None:
    config = FeaturizerConfig.from_dict(
        {
            "feature_configs": [
                {
                    "name": "mid_btc",
                    "feature_definition": "mid_price",
                    "params": {"data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"}},
                },
                {
                    "name": "boom",
                    "feature_definition": "tests.scaling.scaling_support:RaiseAfter",
                    "params": {
                        "after": 500,
                        "data_source": {"exchange": "synthetic", "symbol": "ETH-USDT"},
                    },
                },
            ]
        }
    )
    started = time.monotonic()
    with pytest.raises(
        WorkerError,
        match=r"worker \d failed: FeatureComputationError: feature 'boom'.*planned failure at event 500",
    ):
        run_scaled(
            config,
            RunOptions(max_events=100_000),
            CollectingSink(),
            scaler="ray",
            workers=2,
            strategy="by_source",
        )
    assert time.monotonic() - started < 60
    assert _all_cpus_free(ray_cluster)


@pytest.mark.parametrize(("strategy", "workers"), [("by_source", 2), ("single", 1)])
def test_ray_stop_by_duration_publishes_every_row_of_the_accepted_events(
    ray_cluster: Any, strategy: str, workers: int
) -> None:
    """A live-like (paced) run stopped by its duration drains: the rows are those of one
    process over exactly the events each worker accepted before the stop."""
    from featurizer_synthetic import SyntheticEventEmitter

    config = FeaturizerConfig.from_dict(CONFIG)
    got: list[Any] = []
    summary = run_scaled(
        config,
        RunOptions(pace=50.0, duration=1.5, seed=13),
        CollectingSink(),
        scaler="ray",
        workers=workers,
        strategy=strategy,
        on_combined=got.append,
    )
    assert summary.stopped_by == "duration"
    plugins = get_plugins()
    features = construct_features_from_configs(config, plugins)
    plan = build_plan(features, strategy, workers, plugins)
    events: list[Any] = []
    for worker in plan.workers:
        taken = int(summary.workers[worker.index]["events_in"])
        assert taken > 0
        emitter = SyntheticEventEmitter.from_options({"seed": 13, "max_events": taken})
        for source in worker.sources:
            emitter.register_callback(source, lambda e, s=source: events.append((s, e)))
        emitter.run()
    events.sort(key=lambda named: (named[1]["timestamp"], plan.group_of(named[0])))
    expected: list[Any] = []
    graph = FeatureStreamGraph(
        features, combine_outputs=True, combined_out_callback=expected.append
    )
    for named in events:
        graph.emit_named_data_event(named)
    assert got == expected
    assert summary.outputs_out == len(expected)


def _worker_actor_pids() -> list[int]:
    """PIDs of this test process's own Ray worker-actor processes (descendants of this
    process whose command line names the actor), never another session's."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                names[int(entry)] = cmdline.read().decode("utf-8", "replace")
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])

    def mine(pid: int) -> bool:
        for _ in range(20):
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
            if pid <= 1:
                return False
        return False

    return sorted(
        pid for pid, name in names.items() if "FeaturizerStreamWorkerActor" in name and mine(pid)
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ray_sigstopped_worker_is_named_within_seconds(
    ray_cluster: Any, record_property: Any
) -> None:
    import signal
    import threading

    stopped: list[int] = []
    when: list[float] = []
    sink = CollectingSink()

    def stop_one() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = _worker_actor_pids() if len(sink.rows) >= 5 else []  # rows flow: started
            if len(pids) == 2:
                os.kill(pids[0], signal.SIGSTOP)
                stopped.append(pids[0])
                when.append(time.monotonic())
                return
            time.sleep(0.05)  # polling for the actors to exist, bounded

    killer = threading.Thread(target=stop_one, daemon=True)
    killer.start()
    try:
        with pytest.raises(
            WorkerError, match=r"worker \d sent nothing for .*heartbeat timeout 2 s"
        ):
            run_scaled(
                FeaturizerConfig.from_dict(CONFIG),
                RunOptions(pace=1.0, duration=120.0),  # live-like: one event at a time
                sink,
                scaler="ray",
                workers=2,
                strategy="by_source",
                heartbeat_timeout=2.0,
            )
        detected = time.monotonic() - when[0]
    finally:
        killer.join(60)
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    record_property("seconds_from_sigstop_to_error", round(detected, 2))
    assert detected < 12.0, f"{detected:.1f} s from SIGSTOP to the error"
    assert _all_cpus_free(ray_cluster)


def test_ray_bad_emitter_option_fails_at_start_and_cleans_up(ray_cluster: Any) -> None:
    config = FeaturizerConfig.from_dict(CONFIG)
    with pytest.raises(ScalingError, match="book_depth"):
        run_scaled(
            config,
            RunOptions(max_events=1000, emitter_options={"book_depth": 0}),
            CollectingSink(),
            scaler="ray",
            workers=2,
            strategy="by_source",
        )
    assert _all_cpus_free(ray_cluster)


def test_ray_too_many_workers_fails_before_starting(ray_cluster: Any) -> None:
    config = FeaturizerConfig.from_dict(CONFIG)
    with pytest.raises(ScalingError, match=r"3 workers need 3 CPUs .* the cluster has 2"):
        run_scaled(
            config,
            RunOptions(max_events=10),
            CollectingSink(),
            scaler="ray",
            workers=3,
            strategy="split",
        )
    assert _all_cpus_free(ray_cluster)


def test_ray_unreachable_address_is_a_clear_error() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "featurizer",
            "run",
            "examples/quickstart.yaml",
            "--scaler",
            "ray",
            "--address",
            "127.0.0.1:1",
            "--max-events",
            "10",
            "--workers",
            "2",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
    )
    assert result.returncode == 1
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in result.stderr


def test_ray_address_in_the_environment_is_named_when_unreachable() -> None:
    command = ["run", "examples/quickstart.yaml", "--scaler", "ray", "--max-events", "10"]
    result = subprocess.run(
        [sys.executable, "-m", "featurizer", *command],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_ADDRESS": "127.0.0.1:1"},
    )
    assert result.returncode == 1
    assert "cannot reach the Ray cluster at '127.0.0.1:1' (from RAY_ADDRESS)" in result.stderr
    assert "unset RAY_ADDRESS to start a local Ray" in result.stderr
    assert "Traceback" not in result.stderr
