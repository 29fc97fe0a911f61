"""Checkpointed scaled runs on real Ray actors: a worker process killed by PID (SIGKILL)
mid-run, and a node of a simulated multi-node cluster removed mid-run. The driver detects
the death, restarts every worker from the last checkpoint, and the output is that of an
uninterrupted run, byte for byte. Ray stays on loopback."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from featurizer import FeaturizerConfig, RunOptions
from featurizer._sinks import JsonLinesSink
from featurizer.checkpoint import CheckpointSettings, make_scaled_checkpointer
from featurizer.scaling import run_scaled
from tests.checkpoint.checkpoint_support import CONFIG

EVENTS = 20_000
"""Input events per worker: a paced run of a few seconds, so that the kill comes mid-run."""

TIMEOUT = 240.0


PACE = 80.0
"""The killed runs replay the synthetic market at 80 times its event-time speed (about 2.5 s):
the kill comes mid-run however fast the machine is; the events do not depend on the pace."""


def _options(pace: str | float = "max") -> RunOptions:
    return RunOptions(max_events=EVENTS, seed=3, pace=pace)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The output of an uninterrupted run (the local scaler gives the same rows as Ray)."""
    out = tmp_path_factory.mktemp("reference") / "out.jsonl"
    run_scaled(FeaturizerConfig.from_dict(CONFIG), _options(), JsonLinesSink(out), workers=2)
    data = out.read_bytes()
    assert data.count(b"\n") > 10_000
    return data


def _descends_from_us(pid: int) -> bool:
    """Whether ``pid`` is a descendant of this process (a process of the Ray we started)."""
    me = os.getpid()
    for _ in range(64):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rpartition(")")[2].split()[1])
        if pid == me:
            return True
        if pid <= 1:
            return False
    return False


def worker_pids() -> list[int]:
    """The PIDs of our Ray's worker actors (Ray titles them ``ray::FeaturizerStreamWorkerActor``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if command.startswith(b"ray::FeaturizerStreamWorkerActor") and _descends_from_us(
            int(entry.name)
        ):
            found.append(int(entry.name))
    return sorted(found)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it is truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class _Run:
    """A checkpointed Ray run in a thread (the test kills things meanwhile)."""

    def __init__(self, tmp: Path, **scaled: Any) -> None:
        self.out = tmp / "out.jsonl"
        self.directory = tmp / "ck"
        settings = CheckpointSettings.from_every(self.directory, "0.2s", max_restarts=2)
        self.checkpointer = make_scaled_checkpointer(settings, self.out, _options(PACE))
        self.error: BaseException | None = None
        self.summary: Any = None
        self._thread = threading.Thread(target=self._run, kwargs=scaled, daemon=True)

    def _run(self, **scaled: Any) -> None:
        try:
            self.summary = run_scaled(
                FeaturizerConfig.from_dict(CONFIG),
                _options(PACE),
                self.checkpointer.sink,
                scaler="ray",
                workers=2,
                checkpoint=self.checkpointer,
                **scaled,
            )
        except BaseException as error:
            self.error = error

    def start(self) -> _Run:
        self._thread.start()
        return self

    def committed(self) -> bool:
        return any((self.directory / "checkpoints").glob("*.ckpt"))

    def join(self) -> None:
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the run did not end in time"
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize(
    "ordering",
    [{}, {"watermark_delay": 5.0, "idle_timeout": 30.0}],
    ids=["exact", "live-ordering"],
)
def test_a_ray_worker_killed_by_pid_is_replaced_from_the_last_checkpoint(
    ray_cluster: Any, tmp_path: Path, reference: bytes, ordering: dict[str, float]
) -> None:
    """With a watermark delay and an idle timeout too: nothing of the replay is late (a
    worker would have to stall 5 s), so the output is still the exact-order one."""
    run = _Run(tmp_path, **ordering).start()
    wait_for(run.committed, "the first checkpoint")
    (victim, _) = wait_for(lambda: worker_pids() if len(worker_pids()) == 2 else None, "2 workers")
    assert not run.checkpointer.metrics.restarts
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)
    run.join()
    metrics = run.checkpointer.metrics
    assert metrics.restarts == 1, "the kill came after the end of the run"
    assert metrics.last_failure_at is not None
    detection = metrics.last_failure_at - killed_at
    print(
        f"worker death detected {detection:.2f} s after the SIGKILL, workers replaced in {metrics.recovery_seconds:.2f} s"
    )
    assert detection < 10.0  # the target is 2 s; the bound leaves room for a busy machine
    assert run.out.read_bytes() == reference
    assert run.summary.events_in == 2 * EVENTS
    addresses = {node["NodeManagerAddress"] for node in ray_cluster.nodes()}
    assert addresses == {"127.0.0.1"}, f"Ray left loopback: {addresses}"


def test_a_checkpoint_of_the_local_scaler_resumes_on_ray_with_worker_outputs(
    ray_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint holds the plan, not the scaler: a local run writing worker files that
    failed for good (a worker dying in every incarnation, no restart allowed) resumes on Ray
    actors, which bring the files back to the checkpoint and publish the rest; each file is
    then that of an uninterrupted run."""
    from featurizer.checkpoint import FAULT_ENV, inspect_directory
    from featurizer.scaling import ScalingError, WorkerOutputs

    config = FeaturizerConfig.from_dict(CONFIG)
    (tmp_path / "plain").mkdir()
    run_scaled(
        config, _options(), None, workers=2, outputs=WorkerOutputs(target=f"{tmp_path}/plain/")
    )
    target = f"{tmp_path}/out/"
    (tmp_path / "out").mkdir()
    settings = CheckpointSettings.from_every(tmp_path / "ck", "0.05s", max_restarts=0)

    def checkpointed(**scaled: Any) -> Any:
        checkpointer = make_scaled_checkpointer(settings, target, _options(), worker_outputs=True)
        run_scaled(
            config,
            _options(),
            None,
            workers=2,
            outputs=WorkerOutputs(target=target),
            checkpoint=checkpointer,
            **scaled,
        )
        return checkpointer

    monkeypatch.setenv(FAULT_ENV, f"worker-event-always:{EVENTS * 3 // 4}@0")
    with pytest.raises(ScalingError, match="the limit \\(--max-restarts 0\\)"):
        checkpointed()
    monkeypatch.delenv(FAULT_ENV)
    latest = inspect_directory(tmp_path / "ck").latest
    assert latest is not None and not latest.final
    on_ray = checkpointed(scaler="ray")
    assert on_ray.metrics.restarts == 1  # this process resumed the directory
    for index in (0, 1):
        name = f"worker-{index}.jsonl"
        plain = (tmp_path / "plain" / name).read_bytes()
        assert plain.count(b"\n") > 1000
        assert (tmp_path / "out" / name).read_bytes() == plain
