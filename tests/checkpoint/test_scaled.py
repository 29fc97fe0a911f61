"""Checkpointed scaled-out runs (local scaler): aligned barriers, exactly-once outputs in both
output modes, a dead worker restarted from the last checkpoint, the driver killed with
SIGKILL and restarted, the restart limit. Every case ends with the output of an
uninterrupted run, byte for byte (same rows, same order, same floats)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurizer import FeaturizerConfig, RunOptions
from featurizer._sinks import JsonLinesSink
from featurizer.checkpoint import (
    FAULT_ENV,
    CheckpointMismatchError,
    CheckpointSettings,
    inspect_directory,
    make_scaled_checkpointer,
    verify_directory,
)
from featurizer.scaling import ScalingError, WorkerOutputs, run_scaled
from tests.checkpoint.checkpoint_support import (
    CONFIG,
    assert_killed,
    assert_ok,
    featurizer,
    write_config,
)

EVENTS = 3_000
"""Input events per worker (the synthetic market of :data:`CONFIG`, two workers)."""

EVERY = "0.01s"


LONG_EVENTS = 20_000
"""Input events per worker of the runs whose driver is killed at its N-th commit: long enough
for several commits however fast the machine is (a checkpoint every 10 ms)."""


def _options(events: int = EVENTS) -> RunOptions:
    return RunOptions(max_events=events, seed=0)


def _plain(out: Path, *, worker_outputs: bool = False, events: int = EVENTS) -> None:
    """An uninterrupted scaled run without checkpoints (the reference output)."""
    config = FeaturizerConfig.from_dict(CONFIG)
    if worker_outputs:
        run_scaled(
            config,
            _options(events),
            None,
            workers=2,
            outputs=WorkerOutputs(target=str(out) + "/"),
        )
    else:
        run_scaled(config, _options(events), JsonLinesSink(out), workers=2)


def _references(root: Path, events: int) -> dict[str, bytes]:
    _plain(root / "out.jsonl", events=events)
    (root / "workers").mkdir()
    _plain(root / "workers", worker_outputs=True, events=events)
    found = {"driver": (root / "out.jsonl").read_bytes()}
    for index in (0, 1):
        found[f"worker-{index}"] = (root / "workers" / f"worker-{index}.jsonl").read_bytes()
    assert found["driver"].count(b"\n") > 1000
    assert all(found[f"worker-{i}"].count(b"\n") > 500 for i in (0, 1))
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The reference outputs: the driver's file, and each worker's file."""
    return _references(tmp_path_factory.mktemp("reference"), EVENTS)


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The same for :data:`LONG_EVENTS` events per worker."""
    return _references(tmp_path_factory.mktemp("long-reference"), LONG_EVENTS)


def _checkpointed(
    tmp: Path,
    *,
    worker_outputs: bool = False,
    max_restarts: int = 3,
    workers: int = 2,
) -> tuple[Any, Any]:
    """A checkpointed scaled run writing into ``tmp``; returns (summary, checkpointer)."""
    directory = tmp / "ck"
    target = tmp / ("workers" if worker_outputs else "out.jsonl")
    if worker_outputs:
        target.mkdir(exist_ok=True)
    settings = CheckpointSettings.from_every(directory, EVERY, max_restarts=max_restarts)
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
        workers=workers,
        outputs=WorkerOutputs(target=str(target) + "/") if worker_outputs else None,
        checkpoint=checkpointer,
    )
    return summary, checkpointer


def _outputs(tmp: Path, worker_outputs: bool) -> dict[str, bytes]:
    if worker_outputs:
        return {f"worker-{i}": (tmp / "workers" / f"worker-{i}.jsonl").read_bytes() for i in (0, 1)}
    return {"driver": (tmp / "out.jsonl").read_bytes()}


def _expected(reference: dict[str, bytes], worker_outputs: bool) -> dict[str, bytes]:
    keys = ("worker-0", "worker-1") if worker_outputs else ("driver",)
    return {key: reference[key] for key in keys}


@pytest.fixture
def fault(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Arm the fault hook in this process (worker points of the local scaler's threads)."""

    def arm(value: str) -> None:
        monkeypatch.setenv(FAULT_ENV, value)

    yield arm


@pytest.mark.parametrize("worker_outputs", [False, True], ids=["driver", "workers"])
def test_checkpointed_scaled_run_writes_the_uninterrupted_output(
    tmp_path: Path, reference: dict[str, bytes], worker_outputs: bool
) -> None:
    summary, checkpointer = _checkpointed(tmp_path, worker_outputs=worker_outputs)
    assert _outputs(tmp_path, worker_outputs) == _expected(reference, worker_outputs)
    assert summary.events_in == 2 * EVENTS
    report = verify_directory(tmp_path / "ck")
    assert report.ok, report.problems
    latest = report.latest
    assert latest is not None and latest.final and set(latest.workers) == {"0", "1"}
    assert checkpointer.metrics.checkpoints >= 1 and checkpointer.metrics.restarts == 0


@pytest.mark.parametrize("worker_outputs", [False, True], ids=["driver", "workers"])
@pytest.mark.parametrize(
    "point", ["worker-event:2000@1", "worker-event:1500@0", "worker-barrier:1@0"]
)
def test_a_dead_worker_is_restarted_from_the_last_checkpoint(
    tmp_path: Path, reference: dict[str, bytes], fault: Any, worker_outputs: bool, point: str
) -> None:
    fault(point)
    summary, checkpointer = _checkpointed(tmp_path, worker_outputs=worker_outputs)
    assert checkpointer.metrics.restarts == 1, "the fault hook did not fire"
    assert _outputs(tmp_path, worker_outputs) == _expected(reference, worker_outputs)
    assert summary.events_in == 2 * EVENTS
    assert verify_directory(tmp_path / "ck").ok


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    worker=st.sampled_from([0, 1]),
    event=st.integers(min_value=1, max_value=EVENTS),
    worker_outputs=st.booleans(),
)
def test_hypothesis_chosen_worker_deaths(
    tmp_path_factory: pytest.TempPathFactory,
    reference: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    worker: int,
    event: int,
    worker_outputs: bool,
) -> None:
    tmp = tmp_path_factory.mktemp("death")
    monkeypatch.setenv(FAULT_ENV, f"worker-event:{event}@{worker}")
    _, checkpointer = _checkpointed(tmp, worker_outputs=worker_outputs)
    assert checkpointer.metrics.restarts == 1
    assert _outputs(tmp, worker_outputs) == _expected(reference, worker_outputs)


@pytest.mark.parametrize(
    ("point", "log_input"),
    [("worker-event:1@0", True), ("worker-event:1@0", None), ("worker-event:1500@1", None)],
    ids=["first-event-logged", "first-event", "mid-run"],
)
def test_a_worker_whose_event_failed_acknowledges_no_barrier_before_it_fails(
    tmp_path: Path,
    reference: dict[str, bytes],
    fault: Any,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
    log_input: bool | None,
) -> None:
    """The interleaving behind a flaky empty output (``test_checkpoint_live``, worker 0 dying
    at its first event): the fault raises out of the worker's ingest after the event was
    counted in its source's position (and logged) but before the graph computed it; the
    lock is released before the emitter records its failure. Here the emitter's thread is
    held right there until the worker's supervisor had a barrier to take (and, if it took
    it, until the driver committed it). Taking it committed a cut that counts an event no
    state holds: the restart skipped it, and losing the first event left every row out (the
    run returned with an empty output). A worker whose event failed takes no barrier."""
    from featurizer.checkpoint import ScaledCheckpointer
    from featurizer.scaling._barriers import SimulatedWorkerDeath
    from featurizer.scaling._worker import WorkerRuntime

    fault(point)
    dying = int(point.rpartition("@")[2])
    wait = 60.0
    chance = threading.Event()  # the dying worker's supervisor had a barrier to take
    death: dict[str, int] = {}  # barriers the dying worker had taken when its event failed
    committed: list[int] = []
    commits = threading.Condition()
    timed_out: list[str] = []

    original_commit = ScaledCheckpointer.commit

    def commit(self: ScaledCheckpointer, *args: Any, **kwargs: Any) -> Any:
        info = original_commit(self, *args, **kwargs)
        with commits:
            committed.append(info.id)
            commits.notify_all()
        return info

    original_maybe_barrier = WorkerRuntime._maybe_barrier

    def maybe_barrier(self: WorkerRuntime) -> None:
        original_maybe_barrier(self)
        if self.index == dying and death and self._barrier_requested > death["done"]:
            chance.set()  # a barrier asked for after the failure: taken or declined

    original_resumed = WorkerRuntime._resumed

    def resumed(self: WorkerRuntime, source: Any) -> Any:
        callback = original_resumed(self, source)

        def held(event: Any) -> None:
            try:
                callback(event)
            except SimulatedWorkerDeath:  # the worker's lock is released; hold the emitter
                death["done"] = self._barrier_done
                if not chance.wait(wait):
                    timed_out.append("no barrier was asked for after the failure")
                taken = self._barrier_done
                if taken > death["done"]:  # acknowledged: the driver commits it
                    with commits:
                        if not commits.wait_for(lambda: taken in committed, wait):
                            timed_out.append(f"checkpoint {taken} was not committed")
                raise

        return held

    monkeypatch.setattr(ScaledCheckpointer, "commit", commit)
    monkeypatch.setattr(WorkerRuntime, "_maybe_barrier", maybe_barrier)
    monkeypatch.setattr(WorkerRuntime, "_resumed", resumed)
    directory = tmp_path / "ck"
    settings = attrs.evolve(CheckpointSettings.from_every(directory, EVERY), log_input=log_input)
    checkpointer = make_scaled_checkpointer(settings, tmp_path / "out.jsonl", _options())
    run_scaled(
        FeaturizerConfig.from_dict(CONFIG),
        _options(),
        checkpointer.sink,
        workers=2,
        checkpoint=checkpointer,
    )
    assert not timed_out, timed_out
    assert death and chance.is_set(), "the fault hook did not fire"
    assert checkpointer.metrics.restarts == 1
    assert (tmp_path / "out.jsonl").read_bytes() == reference["driver"]
    assert verify_directory(directory).ok


def test_the_restart_limit_fails_naming_the_worker_and_the_cause(
    tmp_path: Path, fault: Any
) -> None:
    fault("worker-event-always:1000@1")
    with pytest.raises(ScalingError) as caught:
        _checkpointed(tmp_path, max_restarts=2)
    message = str(caught.value)
    assert message.startswith("worker 1 failed and the run was already restarted 2 time(s)")
    assert "--max-restarts 2" in message and "died at worker-event" in message
    assert "\n" not in message


def test_the_restart_limit_keeps_the_published_output_a_prefix(
    tmp_path: Path, reference: dict[str, bytes], fault: Any
) -> None:
    fault("worker-event-always:2500@1")
    with pytest.raises(ScalingError, match="worker 1 failed"):
        _checkpointed(tmp_path, max_restarts=1)
    published = (tmp_path / "out.jsonl").read_bytes()
    assert reference["driver"].startswith(published)
    latest = inspect_directory(tmp_path / "ck").latest  # none if it died before the first
    assert len(published) == (0 if latest is None else latest.output_bytes)


def test_a_checkpoint_of_another_plan_is_refused(tmp_path: Path) -> None:
    _checkpointed(tmp_path)
    with pytest.raises(CheckpointMismatchError, match=r"it was a scaled run \(2 workers"):
        _checkpointed(tmp_path, workers=1)


# -- the driver (the `featurizer run --scaler local --checkpoint` process) killed ---------------


def _cli_run(tmp: Path, *extra: str, fault: str | None = None, events: int = EVENTS) -> Any:
    config = tmp / "config.yaml"
    if not config.exists():
        write_config(tmp)
    return featurizer(
        "run",
        str(config),
        "--scaler",
        "local",
        "--workers",
        "2",
        "--max-events",
        str(events),
        "--checkpoint",
        str(tmp / "ck"),
        "--checkpoint-every",
        EVERY,
        "-q",
        *extra,
        fault=fault,
    )


@pytest.mark.parametrize(
    "faults",
    [
        ("snapshot:2",),
        ("checkpoint-commit:2",),
        ("publish:2",),
        ("checkpoint-commit:2", "publish:1"),
    ],
    ids=["snapshot", "commit", "publish", "twice"],
)
def test_the_driver_killed_then_restarted_writes_the_uninterrupted_output(
    tmp_path: Path, long_reference: dict[str, bytes], faults: tuple[str, ...]
) -> None:
    out = ("--out", str(tmp_path / "out.jsonl"))
    for point in faults:
        assert_killed(_cli_run(tmp_path, *out, fault=point, events=LONG_EVENTS))
        assert long_reference["driver"].startswith((tmp_path / "out.jsonl").read_bytes())
    assert_ok(_cli_run(tmp_path, *out, events=LONG_EVENTS))
    assert (tmp_path / "out.jsonl").read_bytes() == long_reference["driver"]
    info = inspect_directory(tmp_path / "ck").latest
    assert info is not None and info.final and info.restarts == len(faults)


def test_the_driver_killed_with_worker_outputs_then_restarted(
    tmp_path: Path, long_reference: dict[str, bytes]
) -> None:
    (tmp_path / "workers").mkdir()
    args = ("--outputs", "workers", "--out", str(tmp_path / "workers") + "/")
    assert_killed(_cli_run(tmp_path, *args, fault="checkpoint-commit:3", events=LONG_EVENTS))
    assert_ok(_cli_run(tmp_path, *args, events=LONG_EVENTS))
    assert _outputs(tmp_path, True) == _expected(long_reference, True)


def test_the_cli_restart_limit_is_one_error_line(tmp_path: Path) -> None:
    result = _cli_run(
        tmp_path,
        "--out",
        str(tmp_path / "out.jsonl"),
        "--max-restarts",
        "1",
        fault="worker-event-always:1000@0",
    )
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]  # the workers' own failures are logged above
    assert last.startswith("featurizer: error: worker 0 failed and the run was already restarted")
    assert "--max-restarts 1" in last


def test_checkpoint_info_lists_the_workers(tmp_path: Path) -> None:
    assert_ok(_cli_run(tmp_path, "--out", str(tmp_path / "out.jsonl")))
    result = featurizer("checkpoint", "info", str(tmp_path / "ck"))
    assert_ok(result)
    assert "worker 0:" in result.stdout and "worker 1:" in result.stdout
    verify = featurizer("checkpoint", "verify", str(tmp_path / "ck"))
    assert_ok(verify)
    assert ": ok:" in verify.stdout
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows


@pytest.mark.parametrize("worker_outputs", [False, True], ids=["driver", "workers"])
@pytest.mark.parametrize("point", ["worker-barrier:1@1", "worker-event:2500@0"])
def test_barriers_align_across_worker_to_worker_channels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str, worker_outputs: bool
) -> None:
    """``split`` ships the sources and a feature from worker 0 to worker 1: worker 1 takes a
    barrier once it arrived on its channel (later batches wait), and restores what its merges
    held; one row per output event (``--no-combine``), so every record counts."""
    config = FeaturizerConfig.from_yaml(Path(__file__).parents[2] / "examples/quickstart.yaml")
    options = RunOptions(max_events=4_000, seed=0, combine_outputs=False)
    scaled: dict[str, Any] = {"workers": 2, "strategy": "split"}
    for name in ("plain", "out"):
        (tmp_path / name).mkdir()
    if worker_outputs:
        run_scaled(
            config, options, None, outputs=WorkerOutputs(target=f"{tmp_path}/plain/"), **scaled
        )
    else:
        run_scaled(config, options, JsonLinesSink(tmp_path / "plain" / "out.jsonl"), **scaled)
    monkeypatch.setenv(FAULT_ENV, point)
    settings = CheckpointSettings.from_every(tmp_path / "ck", EVERY)
    target = f"{tmp_path}/out/" if worker_outputs else str(tmp_path / "out" / "out.jsonl")
    checkpointer = make_scaled_checkpointer(
        settings, target, options, worker_outputs=worker_outputs
    )
    outputs = WorkerOutputs(target=target) if worker_outputs else None
    run_scaled(
        config, options, checkpointer.sink, outputs=outputs, checkpoint=checkpointer, **scaled
    )
    assert checkpointer.metrics.restarts == 1
    files = sorted(p.name for p in (tmp_path / "plain").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "out").iterdir())
    total = 0
    for name in files:
        plain = (tmp_path / "plain" / name).read_bytes()
        total += plain.count(b"\n")
        assert (tmp_path / "out" / name).read_bytes() == plain, name
    assert total > 5_000


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--late-out", "late.jsonl"), "--late-out is not published at checkpoints"),
    ],
)
def test_what_a_scaled_run_cannot_checkpoint_is_one_error_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    arguments: tuple[str, ...],
    message: str,
) -> None:
    from featurizer.cli import main

    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path)
    out = ["--out", str(tmp_path / "out") + ("/" if "workers" in arguments else ".jsonl")]
    (tmp_path / "out").mkdir()
    scaled = ["--scaler", "local", "--workers", "2", "--max-events", "100"]
    code = main(["run", str(config), *scaled, "--checkpoint", "ck", *out, *arguments])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and message in line, line
    assert not (tmp_path / "ck" / "checkpoints").exists()


def test_max_restarts_in_the_config_section_and_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from featurizer import ConfigError
    from featurizer.cli import main

    settings = CheckpointSettings.from_config_value({"dir": "x", "max_restarts": 5})
    assert settings.max_restarts == 5
    assert CheckpointSettings.from_config_value("x").max_restarts == 3
    with pytest.raises(ConfigError, match=r"checkpoint\.max_restarts"):
        CheckpointSettings.from_config_value({"dir": "x", "max_restarts": -1})
    config = write_config(tmp_path)
    code = main(["run", str(config), "--max-events", "100", "--max-restarts", "2"])
    assert code == 1
    assert "--max-restarts needs --checkpoint DIR" in capsys.readouterr().err
    out = str(tmp_path / "out.jsonl")
    checkpointed = ["--checkpoint", str(tmp_path / "ck"), "--max-restarts", "2"]
    code = main(["run", str(config), "--max-events", "100", "--out", out, *checkpointed])
    assert code == 1
    assert "--max-restarts bounds the restarts of a scaled run" in capsys.readouterr().err


@pytest.mark.parametrize("worker_outputs", [False, True], ids=["driver", "workers"])
def test_a_damaged_newest_checkpoint_resumes_from_the_older_one(
    tmp_path: Path, reference: dict[str, bytes], worker_outputs: bool
) -> None:
    """A flipped byte in the newest checkpoint's state: verify names it, and a resumed run
    goes back to the older checkpoint (the outputs are cut back to it) and ends with the
    uninterrupted output again."""
    _checkpointed(tmp_path, worker_outputs=worker_outputs)
    kept = sorted((tmp_path / "ck" / "checkpoints").glob("*.ckpt"))
    assert len(kept) == 2, "one periodic checkpoint at least, and the final one"
    newest = kept[-1]
    data = bytearray(newest.read_bytes())
    data[-10] ^= 0xFF
    newest.write_bytes(bytes(data))
    report = verify_directory(tmp_path / "ck")
    assert not report.ok and "checksum mismatch" in report.problems[0]
    _, checkpointer = _checkpointed(tmp_path, worker_outputs=worker_outputs)
    assert checkpointer.metrics.restarts == 1
    assert _outputs(tmp_path, worker_outputs) == _expected(reference, worker_outputs)


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


def test_a_local_worker_process_killed_by_pid_is_replaced(tmp_path: Path) -> None:
    """The local scaler with ``processes``: every worker in a process of its own (ZeroMQ
    between them). One is killed with SIGKILL by its PID mid-run: the driver sees it die,
    replaces the workers from the last checkpoint, and the output is the uninterrupted one."""
    config = FeaturizerConfig.from_dict(CONFIG)
    options = RunOptions(max_events=40_000, seed=3)
    plain = tmp_path / "plain.jsonl"
    run_scaled(config, options, JsonLinesSink(plain), workers=2)
    settings = CheckpointSettings.from_every(tmp_path / "ck", "0.2s")
    out = tmp_path / "out.jsonl"
    checkpointer = make_scaled_checkpointer(settings, out, options)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_scaled(
                config,
                options,
                checkpointer.sink,
                workers=2,
                transport="zmq",
                scaler_options={"processes": True},
                checkpoint=checkpointer,
            )
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120.0
    while not list((tmp_path / "ck").glob("checkpoints/*.ckpt")):
        assert thread.is_alive() and time.monotonic() < deadline, "no checkpoint committed"
        time.sleep(0.02)
    pids = _our_spawned_processes()
    assert len(pids) == 2, pids
    killed_at = time.time()
    os.kill(pids[0], signal.SIGKILL)
    thread.join(180.0)
    assert not thread.is_alive() and not errors, errors
    metrics = checkpointer.metrics
    assert metrics.restarts == 1, "the kill came after the end of the run"
    assert "killed by SIGKILL" in metrics.last_failure
    assert metrics.last_failure_at is not None and metrics.last_failure_at - killed_at < 10.0
    assert out.read_bytes() == plain.read_bytes()
    assert not _our_spawned_processes(), "a worker process was left behind"


def test_single_process_and_scaled_checkpoints_are_not_mixed(tmp_path: Path) -> None:
    from featurizer.checkpoint import run_checkpointed

    _checkpointed(tmp_path)  # a scaled run's checkpoints in tmp_path/ck, output out.jsonl
    settings = CheckpointSettings.from_every(tmp_path / "ck", EVERY)
    with pytest.raises(CheckpointMismatchError, match="this one is a single-process run"):
        run_checkpointed(
            FeaturizerConfig.from_dict(CONFIG), _options(), tmp_path / "out.jsonl", settings
        )
    single = tmp_path / "single"
    single.mkdir()
    settings = CheckpointSettings.from_every(single / "ck", "1000")
    run_checkpointed(FeaturizerConfig.from_dict(CONFIG), _options(), single / "out.jsonl", settings)
    with pytest.raises(CheckpointMismatchError, match="it was a single-process run"):
        _checkpointed(single)
