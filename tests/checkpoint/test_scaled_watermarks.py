"""Checkpointed scaled runs with live ordering: ``--watermark-delay`` and ``--idle-timeout``.

Over a replay whose events come in timestamp order, a watermark delay longer than any stall
of a worker makes nothing late: each group's events are dispatched in ``(time, arrival)``
order whenever the watermark releases them, which is the arrival order, so the rows are
exactly those of exact event-time order. There, every crash (a worker thread, a worker
process killed by its PID, the driver killed at each commit phase) ends with that output,
byte for byte. An idle timeout over paced live-like input depends on the wall clock: there
the tests check what holds whatever the timing (every input event is a row or counted late,
exactly once; the published prefix never changes)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurizer import FeaturizerConfig, RunOptions
from featurizer._sinks import JsonLinesSink
from featurizer.checkpoint import (
    FAULT_ENV,
    CheckpointMismatchError,
    CheckpointSettings,
    make_scaled_checkpointer,
    verify_directory,
)
from featurizer.scaling import WorkerOutputs, run_scaled
from tests.checkpoint.checkpoint_support import (
    CONFIG,
    assert_killed,
    assert_ok,
    featurizer,
    write_config,
)

EVENTS = 20_000
"""Input events per worker: the ETH worker's 20,000 events span about 65 s of event time, the
BTC worker's about 200 s, so a 5 s delay releases events all along the run."""

DELAY = 5.0
"""Seconds of event time: a worker would have to stall this long for an event to be late."""

ORDERINGS = {
    "delay": {"watermark_delay": DELAY},
    "idle": {"idle_timeout": 30.0},
    "delay+idle": {"watermark_delay": DELAY, "idle_timeout": 30.0},
}
"""The live ordering modes over the replay (no group of a replay at full speed is silent for
30 s: the idle timeout is armed but never fires, so the output stays deterministic)."""

EVERY = "0.02s"


def _options(events: int = EVENTS, **extra: Any) -> RunOptions:
    return RunOptions(max_events=events, seed=0, **extra)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The uninterrupted outputs in exact event-time order: the driver's file and each
    worker's file."""
    root = tmp_path_factory.mktemp("reference")
    config = FeaturizerConfig.from_dict(CONFIG)
    run_scaled(config, _options(), JsonLinesSink(root / "out.jsonl"), workers=2)
    (root / "workers").mkdir()
    run_scaled(
        config, _options(), None, workers=2, outputs=WorkerOutputs(target=f"{root}/workers/")
    )
    found = {"driver": (root / "out.jsonl").read_bytes()}
    for index in (0, 1):
        found[f"worker-{index}"] = (root / "workers" / f"worker-{index}.jsonl").read_bytes()
    assert found["driver"].count(b"\n") > 10_000
    return found


def _outputs(tmp: Path, worker_outputs: bool) -> dict[str, bytes]:
    if worker_outputs:
        return {f"worker-{i}": (tmp / "workers" / f"worker-{i}.jsonl").read_bytes() for i in (0, 1)}
    return {"driver": (tmp / "out.jsonl").read_bytes()}


def _expected(reference: dict[str, bytes], worker_outputs: bool) -> dict[str, bytes]:
    keys = ("worker-0", "worker-1") if worker_outputs else ("driver",)
    return {key: reference[key] for key in keys}


def _checkpointed(
    tmp: Path, ordering: dict[str, float], *, worker_outputs: bool = False, **scaled: Any
) -> tuple[Any, Any]:
    """A checkpointed scaled run with ``ordering`` writing into ``tmp``."""
    target = tmp / ("workers" if worker_outputs else "out.jsonl")
    if worker_outputs:
        target.mkdir(exist_ok=True)
    settings = CheckpointSettings.from_every(tmp / "ck", EVERY)
    checkpointer = make_scaled_checkpointer(
        settings,
        str(target) + ("/" if worker_outputs else ""),
        _options(),
        worker_outputs=worker_outputs,
    )
    summary = run_scaled(
        FeaturizerConfig.from_dict(CONFIG),
        _options(),
        checkpointer.sink,
        workers=2,
        outputs=WorkerOutputs(target=f"{target}/") if worker_outputs else None,
        checkpoint=checkpointer,
        **ordering,
        **scaled,
    )
    return summary, checkpointer


def test_a_watermark_delay_over_an_ordered_replay_gives_the_exact_rows(
    tmp_path: Path, reference: dict[str, bytes]
) -> None:
    """What makes the tests below deterministic: nothing is late, and the rows are those of
    exact event-time order."""
    summary = run_scaled(
        FeaturizerConfig.from_dict(CONFIG),
        _options(),
        JsonLinesSink(tmp_path / "out.jsonl"),
        workers=2,
        **ORDERINGS["delay+idle"],
    )
    assert summary.late_events == 0
    assert (tmp_path / "out.jsonl").read_bytes() == reference["driver"]


@pytest.mark.parametrize(
    ("point", "worker_outputs", "ordering"),
    [
        *(("worker-event:12000@1", False, ordering) for ordering in sorted(ORDERINGS)),
        ("worker-barrier:3@0", False, "delay"),
        ("worker-event:9000@0", True, "delay+idle"),
    ],
    ids=[*(f"event-driver-{o}" for o in sorted(ORDERINGS)), "barrier-driver", "event-workers"],
)
def test_a_dead_worker_resumes_the_ordering_state(
    tmp_path: Path,
    reference: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    ordering: str,
    point: str,
    worker_outputs: bool,
) -> None:
    """The held events, watermarks, sequences and the collector come back from the
    checkpoint: the output is the uninterrupted one. Every ordering mode dies at an event;
    the death at a barrier and the workers' own files each run once, with the mode that
    holds the most (the delay; the delay and the idle timeout): what they add (a barrier
    half answered, the workers' files restored) does not depend on the mode."""
    monkeypatch.setenv(FAULT_ENV, point)
    summary, checkpointer = _checkpointed(
        tmp_path, ORDERINGS[ordering], worker_outputs=worker_outputs
    )
    assert checkpointer.metrics.restarts == 1, "the fault hook did not fire"
    assert summary.late_events == 0 and summary.events_in == 2 * EVENTS
    assert _outputs(tmp_path, worker_outputs) == _expected(reference, worker_outputs)
    assert verify_directory(tmp_path / "ck").ok


@pytest.mark.parametrize(
    "faults",
    [
        ("snapshot:2",),
        ("checkpoint-commit:2",),
        ("publish:2",),
        ("checkpoint-commit:3", "publish:1"),
    ],
    ids=["snapshot", "commit", "publish", "twice"],
)
def test_the_driver_killed_with_live_ordering_then_restarted(
    tmp_path: Path, reference: dict[str, bytes], faults: tuple[str, ...]
) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "out.jsonl"
    command = (
        "run",
        str(config),
        "--scaler",
        "local",
        "--workers",
        "2",
        "--max-events",
        str(EVENTS),
        "--out",
        str(out),
        "--checkpoint",
        str(tmp_path / "ck"),
        "--checkpoint-every",
        EVERY,
        "--watermark-delay",
        str(DELAY),
        "--idle-timeout",
        "30",
        "-q",
    )
    for point in faults:
        assert_killed(featurizer(*command, fault=point))
        assert reference["driver"].startswith(out.read_bytes())
    assert_ok(featurizer(*command))
    assert out.read_bytes() == reference["driver"]


def test_resuming_with_another_ordering_is_refused_naming_it(tmp_path: Path) -> None:
    """The ordering mode is part of the checkpoint's fingerprint: what the workers hold (events
    waiting for a watermark) means nothing in another mode."""
    _checkpointed(tmp_path, {"watermark_delay": DELAY})
    with pytest.raises(CheckpointMismatchError) as caught:
        _checkpointed(tmp_path, {"watermark_delay": 2.0, "idle_timeout": 1.0})
    message = str(caught.value)
    assert "watermark delay 5 s)" in message
    assert "watermark delay 2 s, idle timeout 1 s)" in message
    with pytest.raises(CheckpointMismatchError, match=r"this one is .*exact event-time order\)"):
        _checkpointed(tmp_path, {})


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


def test_a_worker_process_killed_by_pid_resumes_with_a_watermark_delay(
    tmp_path: Path, reference: dict[str, bytes]
) -> None:
    """Every worker in a process of its own (ZeroMQ between them); one is killed with SIGKILL
    by its PID once a checkpoint committed: the workers are replaced from the checkpoint, the
    output is the uninterrupted one."""
    settings = CheckpointSettings.from_every(tmp_path / "ck", "0.05s")
    out = tmp_path / "out.jsonl"
    checkpointer = make_scaled_checkpointer(settings, out, _options())
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_scaled(
                FeaturizerConfig.from_dict(CONFIG),
                _options(),
                checkpointer.sink,
                workers=2,
                transport="zmq",
                scaler_options={"processes": True},
                checkpoint=checkpointer,
                watermark_delay=DELAY,
            )
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120.0
    while not list((tmp_path / "ck").glob("checkpoints/*.ckpt")):
        assert thread.is_alive() and time.monotonic() < deadline, "no checkpoint committed"
        time.sleep(0.01)
    pids = _our_spawned_processes()
    assert len(pids) == 2, pids
    os.kill(pids[1], signal.SIGKILL)
    thread.join(180.0)
    assert not thread.is_alive() and not errors, errors
    assert checkpointer.metrics.restarts == 1, "the kill came after the end of the run"
    assert "killed by SIGKILL" in checkpointer.metrics.last_failure
    assert out.read_bytes() == reference["driver"]
    assert not _our_spawned_processes(), "a worker process was left behind"


def _worker(plan: Any, directory: Path) -> Any:
    from featurizer._plugins import get_plugins
    from featurizer.scaling import WorkerRuntime
    from featurizer.scaling._barriers import WorkerCheckpointing
    from featurizer.scaling._transport import InProcessTransport

    return WorkerRuntime(
        plan,
        0,
        InProcessTransport(),
        options=RunOptions(),
        plugins=get_plugins(),
        watermark_delay=DELAY,
        checkpoint=WorkerCheckpointing(directory=str(directory)),
    )


def test_a_restored_worker_learns_its_event_clock_again(tmp_path: Path) -> None:
    """A replay of old data, restored after a downtime longer than the delay: the event clock
    is not carried over (it would have run on with the wall clock while the run was down and
    made the replayed events late); the watermark waits for the first event after the
    restore, as at a start."""
    from featurizer.scaling import plan_by_source
    from featurizer.scaling._worker_state import restore_worker, snapshot_worker
    from tests.scaling.scaling_support import mid, tick, ticker

    source = ticker("A")
    plan = plan_by_source([mid(source)], 1)
    old = time.time() - 86_400.0  # yesterday's data
    first = _worker(plan, tmp_path)
    ingest = first._ingest(source)
    for i in range(10):
        ingest(tick(old + i, 1.0))
    ack = {
        "finished": False,
        "state": snapshot_worker(first),
        "sources": first._source_positions(),
        "metrics": first.metrics(),
        "output": None,
    }
    restored = _worker(plan, tmp_path)
    restore_worker(restored, ack)
    downtime = DELAY * 10
    restored._started_wall = time.time() + downtime  # started again after the downtime
    restored._advance_watermarks(restored._started_wall + 0.1)
    restored._ingest(source)(tick(old + 10, 1.0))
    assert restored.late_count == 0 and restored.events_in == 11
    restored._advance_watermarks(time.time())  # the clock follows that event now
    assert old + 10 - DELAY <= restored._groups[0].announced < old + 10


def test_late_out_with_checkpoint_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The late side output is a plain file: a resumed run would write it anew, so it is
    refused with ``--checkpoint`` (the summary's late count is exact across restarts)."""
    from featurizer.cli import main

    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path)
    scaled = ["--scaler", "local", "--workers", "2", "--max-events", "100"]
    late = ["--watermark-delay", "1", "--late-out", "late.jsonl"]
    code = main(["run", str(config), *scaled, "--checkpoint", "ck", "--out", "o.jsonl", *late])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "--late-out is not published at checkpoints" in line, line
    assert not (tmp_path / "ck").exists() and not (tmp_path / "late.jsonl").exists()


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(worker=st.sampled_from([0, 1]), event=st.integers(min_value=1, max_value=EVENTS))
def test_hypothesis_chosen_worker_deaths_with_a_watermark_delay(
    tmp_path_factory: pytest.TempPathFactory,
    reference: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    worker: int,
    event: int,
) -> None:
    tmp = tmp_path_factory.mktemp("death")
    monkeypatch.setenv(FAULT_ENV, f"worker-event:{event}@{worker}")
    _, checkpointer = _checkpointed(tmp, ORDERINGS["delay"])
    assert checkpointer.metrics.restarts == 1
    assert _outputs(tmp, False) == _expected(reference, False)


@pytest.mark.parametrize("point", ["worker-barrier:2@1", "worker-event:2500@0"])
def test_worker_to_worker_channels_with_a_watermark_delay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """``split`` ships the sources and a feature from worker 0 to worker 1, whose merges take
    the watermarks a delay announces; one row per output event (``--no-combine``)."""
    config = FeaturizerConfig.from_yaml(Path(__file__).parents[2] / "examples/quickstart.yaml")
    options = RunOptions(max_events=4_000, seed=0, combine_outputs=False)
    run_scaled(
        config, options, JsonLinesSink(tmp_path / "plain.jsonl"), workers=2, strategy="split"
    )
    monkeypatch.setenv(FAULT_ENV, point)
    settings = CheckpointSettings.from_every(tmp_path / "ck", EVERY)
    checkpointer = make_scaled_checkpointer(settings, tmp_path / "out.jsonl", options)
    summary = run_scaled(
        config,
        options,
        checkpointer.sink,
        workers=2,
        strategy="split",
        checkpoint=checkpointer,
        watermark_delay=DELAY,
    )
    assert checkpointer.metrics.restarts == 1 and summary.late_events == 0
    plain = (tmp_path / "plain.jsonl").read_bytes()
    assert plain.count(b"\n") > 5_000
    assert (tmp_path / "out.jsonl").read_bytes() == plain
