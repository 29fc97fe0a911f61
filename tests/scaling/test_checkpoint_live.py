"""Checkpointed scaled runs over a live feed (the fake Binance exchange through the cryptofeed
emitter): every worker with a live source logs what it consumes, and a worker or driver killed
with SIGKILL resumes from its log. The published output is then exactly what a replay of the
workers' logs computes, and holds the events consumed between the last checkpoint and the
kill (they were lost before: the workers kept no log). A scaled run over replayable input
still keeps none."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("cryptofeed", reason="the live tests need cryptofeed")
pytest.importorskip("cryptography", reason="the fake exchange's certificate needs cryptography")

from featurizer import (
    Event,
    Feature,
    FeatureStreamGraph,
    FeaturizerConfig,
    RunOptions,
    construct_features_from_configs,
    get_plugins,
)
from featurizer._sinks import JsonLinesSink, _json_default
from featurizer.checkpoint import (
    FAULT_ENV,
    CheckpointError,
    CheckpointSettings,
    inspect_directory,
    make_scaled_checkpointer,
    verify_directory,
)
from featurizer.checkpoint._log import InputLog
from featurizer.scaling import build_plan, run_scaled
from tests.checkpoint.checkpoint_support import CONFIG as SYNTHETIC
from tests.checkpoint.checkpoint_support import featurizer
from tests.cryptofeed.fake_binance import FakeBinance, generate_script
from tests.cryptofeed.tls import make_certificate


def _entry(name: str, definition: str, **params: Any) -> dict[str, Any]:
    return {
        "name": name,
        "feature_definition": definition,
        "params": {**params, "data_source": {"exchange": "BINANCE", "symbol": "BTC-USDT"}},
    }


CONFIG = {
    "feature_configs": [
        _entry("mid", "mid_price"),
        _entry("tvi", "trade_volume_imbalance", window="2s"),
        _entry("book", "l2_snapshot", depth=3),
        _entry("gaps", "feed_gaps"),
    ]
}
"""Two workers (``by_source``): worker 0 ingests the ticker and the book, worker 1 the trades
and the gaps of the same instrument."""

STEPS = 40_000
RATE = 2_000.0
TIMEOUT = 120.0
EVERY = "1s"
AFTER_CUT = (0.3, 0.7)
"""Seconds after a commit when the test kills: the workers consumed events after the cut
(about 2,000 a second), and the next checkpoint is not due yet. The silent ``gaps`` source
holds the driver's output back until the end (exact event-time order), so the driver's rows
cannot tell how far the workers got; that the events after the cut were consumed, logged and
replayed is checked after the run (``replayed_events``)."""


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll ``condition`` until it is truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def latest(directory: Path) -> Any:
    """The newest committed checkpoint's manifest (``None``: none yet), read while the run
    commits and deletes checkpoints."""
    for _ in range(100):
        try:
            return inspect_directory(directory).latest if directory.is_dir() else None
        except CheckpointError:
            continue  # an older one was deleted between listing and reading
    raise AssertionError(f"cannot read the checkpoints of {directory}")


def past_a_checkpoint(directory: Path) -> bool:
    """A checkpoint with input committed, :data:`AFTER_CUT` seconds ago."""
    newest = latest(directory)
    if newest is None or newest.events_in == 0:
        return False
    return AFTER_CUT[0] <= time.time() - newest.created <= AFTER_CUT[1]


def replay_of_the_logs(
    config: dict[str, Any], directory: Path, *, event_time: bool = False
) -> bytes:
    """The rows one process computes from the workers' logs, in the order the scaled run
    publishes them: each worker's events in the order it consumed them, keyed as the workers
    key them (the running maximum time of the source's group, the group, the sequence in the
    group) and merged by key, then one row per output event.

    :param event_time: the run had a watermark delay and nothing was late: each group's
        events were dispatched in ``(timestamp, arrival)`` order.
    """
    features = construct_features_from_configs(FeaturizerConfig.from_dict(config))
    plan = build_plan(features, "by_source", 2, get_plugins())
    keyed: list[tuple[tuple[float, int, int], Feature, Event]] = []
    for worker in plan.workers:
        log = InputLog(directory / "workers" / str(worker.index) / "log", list(worker.sources))
        running: dict[int, tuple[float, int]] = {}
        try:
            consumed = list(log.tail({}))
            if event_time:
                consumed.sort(key=lambda item: (plan.group_of(item[0]), item[1]["timestamp"]))
            for source, event in consumed:
                group = plan.group_of(source)
                top, sequence = running.get(group, (float("-inf"), -1))
                top, sequence = max(top, event["timestamp"]), sequence + 1
                running[group] = (top, sequence)
                keyed.append(((top, group, sequence), source, event))
        finally:
            log.close()
    keyed.sort(key=lambda item: item[0])
    graph = FeatureStreamGraph(features)
    encode = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
    lines: list[str] = []

    def write(feature: Feature, event: Event) -> None:
        lines.append(encode({"feature": feature.name, **event}) + "\n")

    for output in graph.get_outs():
        graph.set_callback(output, write)
    for _, source, event in keyed:
        graph.emit_named_data_event((source, event))
    return "".join(lines).encode()


def assert_replays_the_logs(out: Path, directory: Path) -> list[dict[str, Any]]:
    """The published output is the replay of the logs, row for row; returns the rows."""
    published = out.read_bytes().splitlines()
    replayed = replay_of_the_logs(CONFIG, directory).splitlines()
    first = next(
        (i for i, pair in enumerate(zip(published, replayed, strict=False)) if pair[0] != pair[1]),
        None,
    )
    assert (first, len(published)) == (None, len(replayed)), (
        f"row {first} of {len(published)} published differs from the replay of the logs "
        f"({len(replayed)} rows): {published[first] if first is not None else ''!r} != "
        f"{replayed[first] if first is not None else ''!r}"
    )
    return [json.loads(line) for line in published]


def assert_gap_rows(rows: list[dict[str, Any]]) -> None:
    """Worker 1's trades lost what the exchange sent while it was down: a gap event."""
    gaps = [row for row in rows if row["feature"] == "gaps" and row["reason"] == "disconnect"]
    assert "trades" in {row["channel"] for row in gaps}, gaps


def _our_spawned_processes() -> list[int]:
    """The PIDs of the worker processes this process spawned (multiprocessing ``spawn``)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == me and b"spawn_main" in command:
            found.append(int(entry.name))
    return sorted(found)


@pytest.fixture
def exchange(tmp_path: Path) -> Any:
    """The fake exchange, its market starting a minute ago (the feed goes on while a worker
    is down: what it sends then is lost to that worker)."""
    start_ms = int(time.time() * 1000) - 60_000
    script = generate_script(23, ("BTC-USDT",), STEPS, start_ms=start_ms)
    with FakeBinance(script, make_certificate(tmp_path), rate=RATE) as fake:
        yield fake


class _Run:
    """A checkpointed scaled run of :data:`CONFIG` in a thread (the test kills meanwhile)."""

    def __init__(self, tmp: Path, fake: FakeBinance, **scaled: Any) -> None:
        self.out = tmp / "out.jsonl"
        self.directory = tmp / "ck"
        self.options = RunOptions(
            combine_outputs=False, duration=6.0, emitter_options=fake.emitter_options()
        )
        settings = attrs.evolve(
            CheckpointSettings.from_every(self.directory, EVERY, max_restarts=2),
            sync_interval=0.01,
        )
        self.checkpointer = make_scaled_checkpointer(settings, self.out, self.options)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, kwargs=scaled, daemon=True)

    def _run(self, **scaled: Any) -> None:
        try:
            run_scaled(
                FeaturizerConfig.from_dict(CONFIG),
                self.options,
                self.checkpointer.sink,
                workers=2,
                strategy="by_source",
                checkpoint=self.checkpointer,
                **scaled,
            )
        except BaseException as error:
            self.error = error

    def start(self) -> _Run:
        self._thread.start()
        return self

    def past_a_checkpoint(self) -> bool:
        """See :func:`past_a_checkpoint`."""
        assert self._thread.is_alive(), f"the run ended before the kill: {self.error!r}"
        return past_a_checkpoint(self.directory)

    def join(self) -> None:
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the run did not end in time"
        if self.error is not None:
            raise self.error


def _assert_resumed_from_the_logs(run: _Run) -> None:
    metrics = run.checkpointer.metrics
    assert metrics.restarts == 1, "the kill came after the end of the run"
    # what worker 0 consumed between the checkpoint and the kill came back from its log
    assert metrics.replayed_events > 0, "nothing was replayed: the input after the cut is lost"
    assert metrics.gaps >= 1
    rows = assert_replays_the_logs(run.out, run.directory)
    assert_gap_rows(rows)
    report = verify_directory(run.directory)
    assert report.ok, report.problems
    latest = report.latest
    assert latest is not None and latest.input_logged
    assert all(worker["input_logged"] for worker in latest.workers.values())


def test_a_killed_worker_process_resumes_from_its_input_log(
    tmp_path: Path, exchange: FakeBinance
) -> None:
    run = _Run(tmp_path, exchange, transport="zmq", scaler_options={"processes": True}).start()
    wait_for(run.past_a_checkpoint, "a checkpoint and input after it")
    pids = _our_spawned_processes()
    assert len(pids) == 2, pids
    os.kill(pids[0], signal.SIGKILL)
    run.join()
    _assert_resumed_from_the_logs(run)
    assert "killed by SIGKILL" in run.checkpointer.metrics.last_failure
    assert not _our_spawned_processes(), "a worker process was left behind"


def test_a_killed_ray_worker_resumes_from_its_input_log(
    ray_cluster: Any, tmp_path: Path, exchange: FakeBinance
) -> None:
    from tests.scaling.test_ray_checkpoint import worker_pids

    run = _Run(tmp_path, exchange, scaler="ray").start()
    wait_for(run.past_a_checkpoint, "a checkpoint and input after it")
    (victim, _) = wait_for(lambda: worker_pids() if len(worker_pids()) == 2 else None, "workers")
    os.kill(victim, signal.SIGKILL)
    run.join()
    _assert_resumed_from_the_logs(run)


def test_a_killed_driver_resumes_every_worker_from_its_input_log(
    tmp_path: Path, exchange: FakeBinance
) -> None:
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    directory = tmp_path / "ck"
    command = [
        sys.executable,
        "-m",
        "featurizer",
        "run",
        str(config),
        "--scaler",
        "local",
        "--workers",
        "2",
        "--no-combine",
        "--duration",
        str(TIMEOUT / 2),
        "--out",
        str(out),
        "--checkpoint",
        str(directory),
        "--checkpoint-every",
        EVERY,
    ]
    env = {**{k: v for k, v in os.environ.items() if k != FAULT_ENV}, **exchange.environ()}
    driver = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: past_a_checkpoint(directory), "a checkpoint and input after it")
        os.kill(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=TIMEOUT)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == -signal.SIGKILL
    killed_at = latest(directory)
    assert killed_at is not None
    resumed = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: latest(directory).events_in > killed_at.events_in + 2_000,
            "the resumed run to go on",
        )
        resumed.send_signal(signal.SIGINT)
        _, stderr = resumed.communicate(timeout=TIMEOUT)
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.communicate()
    assert resumed.returncode == 130, stderr[-3000:]
    assert "restarts: 1" in stderr and "lost data while the run was down" in stderr
    replayed = int(stderr.rpartition("replayed: ")[2].split()[0].replace(",", ""))
    assert replayed > 0, "the events consumed after the last checkpoint were not replayed"
    rows = assert_replays_the_logs(out, directory)
    assert_gap_rows(rows)
    assert verify_directory(directory).ok


def test_a_scaled_run_over_replayable_input_keeps_no_input_log(tmp_path: Path) -> None:
    config = FeaturizerConfig.from_dict(SYNTHETIC)
    options = RunOptions(max_events=2_000, seed=0, pace=20.0)  # about 1 s: many barriers
    for name, log_input in (("auto", None), ("logged", True)):
        settings = attrs.evolve(
            CheckpointSettings.from_every(tmp_path / name, "0.02s"),
            log_input=log_input,
            log_rotate_events=300,
        )
        out = tmp_path / f"{name}.jsonl"
        checkpointer = make_scaled_checkpointer(settings, out, options)
        run_scaled(config, options, checkpointer.sink, workers=2, checkpoint=checkpointer)
        latest = inspect_directory(tmp_path / name).latest
        assert latest is not None and latest.final
        logs = sorted(p.parent.name for p in (tmp_path / name).glob("workers/*/log"))
        if log_input is None:
            assert logs == [] and not latest.input_logged
            assert not any(worker["input_logged"] for worker in latest.workers.values())
        else:
            assert logs == ["0", "1"] and latest.input_logged
            for index in logs:  # rotated every 300 events, the roots consumed pruned
                log = tmp_path / name / "workers" / index / "log"
                roots = {p.name for p in log.iterdir() if p.name.isdigit()}
                pruned = set(json.loads((log / "pruned.json").read_text())["roots"])
                assert pruned and roots and not pruned & roots, (index, roots, pruned)
    assert (tmp_path / "auto.jsonl").read_bytes() == (tmp_path / "logged.jsonl").read_bytes()
    for name, logged in (("auto", "no"), ("logged", "yes")):
        info = featurizer("checkpoint", "info", str(tmp_path / name)).stdout
        workers = [line for line in info.splitlines() if line.startswith("  worker ")]
        assert len(workers) == 2 and all(f"input log: {logged}" in w for w in workers), info
    assert verify_directory(tmp_path / "logged").ok
    shutil.rmtree(tmp_path / "logged" / "workers" / "1" / "log")
    verify = featurizer("checkpoint", "verify", str(tmp_path / "logged"))
    assert verify.returncode == 1 and "workers/1/log: the input log is missing" in verify.stdout


def test_a_checkpoint_directory_a_worker_cannot_see_is_refused(tmp_path: Path) -> None:
    """A worker on another machine (Ray) gets the driver's absolute path: where it does not
    exist, the worker refuses to start instead of logging into a directory of its own."""
    from featurizer.scaling import ScalingError, WorkerRuntime
    from featurizer.scaling._barriers import WorkerCheckpointing
    from featurizer.scaling._driver import make_transport

    plugins = get_plugins()
    features = construct_features_from_configs(FeaturizerConfig.from_dict(SYNTHETIC), plugins)
    plan = build_plan(features, "by_source", 2, plugins)
    transport = make_transport("inproc", {}, plugins)
    elsewhere = str(tmp_path / "on-the-driver-only")
    try:
        with pytest.raises(ScalingError, match="does not exist where this worker runs") as caught:
            WorkerRuntime(
                plan,
                0,
                transport,
                options=RunOptions(),
                plugins=plugins,
                checkpoint=WorkerCheckpointing(directory=elsewhere),
            )
    finally:
        transport.close()
    assert "a filesystem every machine of the cluster shares" in str(caught.value)
    assert elsewhere in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output file of an uninterrupted scaled run of the synthetic market."""
    out = tmp_path_factory.mktemp("uninterrupted") / "out.jsonl"
    run_scaled(
        FeaturizerConfig.from_dict(SYNTHETIC),
        RunOptions(max_events=LOGGED_EVENTS, seed=0),
        JsonLinesSink(out),
        workers=2,
    )
    return out


LOGGED_EVENTS = 3_000
"""Input events per worker of the logged synthetic runs."""


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(worker=st.sampled_from([0, 1]), event=st.integers(min_value=1, max_value=LOGGED_EVENTS))
def test_a_logging_worker_that_dies_replays_its_log_then_skips_what_its_emitter_resends(
    tmp_path_factory: pytest.TempPathFactory,
    uninterrupted: Path,
    monkeypatch: pytest.MonkeyPatch,
    worker: int,
    event: int,
) -> None:
    """``log_input: true`` over the synthetic market: every worker logs (rotating every 500
    events). After a worker dies at a hypothesis-chosen event, every worker replays its log's
    tail, then its replaying emitter skips what the checkpoint and the replay covered: the
    output is the uninterrupted one."""
    tmp = tmp_path_factory.mktemp("logged")
    monkeypatch.setenv(FAULT_ENV, f"worker-event:{event}@{worker}")
    options = RunOptions(max_events=LOGGED_EVENTS, seed=0)
    settings_ = attrs.evolve(
        CheckpointSettings.from_every(tmp / "ck", "0.01s"), log_input=True, log_rotate_events=500
    )
    checkpointer = make_scaled_checkpointer(settings_, tmp / "out.jsonl", options)
    run_scaled(
        FeaturizerConfig.from_dict(SYNTHETIC),
        options,
        checkpointer.sink,
        workers=2,
        checkpoint=checkpointer,
    )
    assert checkpointer.metrics.restarts == 1, "the fault hook did not fire"
    assert (tmp / "out.jsonl").read_bytes() == uninterrupted.read_bytes()
    assert verify_directory(tmp / "ck").ok


def test_a_worker_that_prunes_its_log_never_waits_for_a_busy_driver(tmp_path: Path) -> None:
    """Tiny channels keep the workers blocked on sending to the driver while they hold their
    lock; the driver tells them of every commit meanwhile. A worker prunes its log on its own
    thread, so the commit never waits for the worker (which waits for the driver): the run
    ends. (It hung when the commit took the worker's lock to prune.)"""
    options = RunOptions(max_events=10_000, seed=0)
    settings = attrs.evolve(
        CheckpointSettings.from_every(tmp_path / "ck", "0.01s"),
        log_input=True,
        log_rotate_events=1_000,
    )
    checkpointer = make_scaled_checkpointer(settings, tmp_path / "out.jsonl", options)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_scaled(
                FeaturizerConfig.from_dict(SYNTHETIC),
                options,
                checkpointer.sink,
                workers=2,
                checkpoint=checkpointer,
                transport_options={"batch_size": 8, "hwm": 1},
            )
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "the run hung: a commit waited for a worker's lock"
    assert not errors, errors
    assert checkpointer.metrics.checkpoints > 5
    assert (tmp_path / "ck" / "workers" / "0" / "log" / "pruned.json").is_file()
