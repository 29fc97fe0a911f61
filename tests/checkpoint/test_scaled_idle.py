"""Checkpointed scaled runs with an idle timeout over paced live-like input: a source goes
silent, becomes idle (the other one's rows are released without it), then comes back with
events behind its watermark (late) and new ones.

Which events are late depends on the wall clock, so no run is compared with another; every
run, crashed or not, must keep what the guarantee says whatever the timing: every input
event is either one row or one late event, exactly once (the late counter continues from the
checkpoint); no row is duplicated; each source's rows stay in event-time order; what was
published before a crash is never changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from featurizer import Event, Feature, RunOptions
from featurizer.checkpoint import FAULT_ENV, CheckpointSettings, make_scaled_checkpointer
from featurizer.scaling import FeatureStreamWorkerGraph, plan_by_source, run_scaled
from featurizer.testing import InMemoryEmitter
from tests.scaling.scaling_support import mid, ticker

A, B = ticker("A"), ticker("B")
FEATURES = [mid(A), mid(B)]
IDLE = 0.2
GAP = 0.01
ORDERINGS = {
    "idle": {"idle_timeout": IDLE},
    "delay+idle": {"idle_timeout": IDLE, "watermark_delay": 0.1},
}
ROOT = Path(__file__).parents[2]


def _event(ts: float, receipt: float, bid: float) -> Event:
    return {"timestamp": ts, "receipt_timestamp": receipt, "bid": bid, "ask": bid + 1.0}


def schedule(t0: float) -> list[tuple[Feature, Event, float]]:
    """``(source, event, seconds to wait before it)``: A ticks every 10 ms for 2 s; B ticks
    for 0.2 s, is silent for 0.8 s (idle after 0.2 s), then sends 15 events stamped in its
    silence (behind its idle watermark) and 40 new ones. Receipt times follow the schedule."""
    events: list[tuple[Feature, Event, float]] = []
    for i in range(200):
        events.append((A, _event(t0 + i * GAP, t0 + i * GAP, 100.0 + i), GAP))
    for i in range(20):
        events.append((B, _event(t0 + i * GAP, t0 + i * GAP, 200.0 + i), GAP))
    resumed = t0 + 20 * GAP + 0.8
    for i in range(15):
        gap = 0.8 if i == 0 else GAP
        events.append((B, _event(t0 + (20 + i) * GAP, resumed + i * GAP, 300.0 + i), gap))
    for i in range(40):
        ts = resumed + (15 + i) * GAP
        events.append((B, _event(ts, ts, 400.0 + i), GAP))
    return events


class PacedEmitter(InMemoryEmitter):
    """Waits the scheduled gap before each event (a live feed's pace)."""

    def __init__(self, events: list[tuple[Feature, Event, float]]) -> None:
        super().__init__([(f, e) for f, e, _ in events], validate=False)
        self.gaps = [gap for _, _, gap in events]

    def run(self) -> None:
        for (feature, event), gap in zip(self._events, self.gaps, strict=True):
            if self._stop.wait(gap):
                break
            callback = self._callbacks.get(feature)
            if callback is not None:
                callback(event)
                self.emitted += 1


def emitters(t0: float) -> Any:
    def make(plan: FeatureStreamWorkerGraph, index: int) -> dict[str, Any]:
        sources = list(plan.workers[index].sources)
        mine = [item for item in schedule(t0) if item[0] in sources]
        return {"memory": (PacedEmitter(mine), sources)}

    return make


def worker_of(source: Feature) -> int:
    plan = plan_by_source(FEATURES, 2)
    (index,) = [w.index for w in plan.workers if source in w.sources]
    return index


def run(directory: Path, t0: float, ordering: str) -> dict[str, Any]:
    """One checkpointed run (or its resumption) writing ``directory/out.jsonl``."""
    options = RunOptions(combine_outputs=False)
    settings = CheckpointSettings.from_every(directory / "ck", "0.05s")
    checkpointer = make_scaled_checkpointer(settings, directory / "out.jsonl", options)
    summary = run_scaled(
        FEATURES,
        options,
        checkpointer.sink,
        workers=2,
        make_emitters=emitters(t0),
        checkpoint=checkpointer,
        **ORDERINGS[ordering],
    )
    return {"late": summary.late_events, "restarts": checkpointer.metrics.restarts}


def assert_accounted(out: Path, t0: float, late: int) -> None:
    """Every input event is one row or one late event, exactly once; rows keep each source's
    event-time order."""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    names = {mid(A).name: A, mid(B).name: B}
    seen = [(names[row["feature"]], row["timestamp"]) for row in rows]
    inputs = {(source, event["timestamp"]) for source, event, _ in schedule(t0)}
    assert len(set(seen)) == len(seen), "a row was written twice"
    assert set(seen) <= inputs
    assert len(seen) + late == len(schedule(t0)), (len(seen), late)
    for source in (A, B):
        stamps = [ts for s, ts in seen if s == source]
        assert stamps == sorted(stamps)


@pytest.mark.parametrize("ordering", sorted(ORDERINGS))
@pytest.mark.parametrize(
    "point",
    [
        f"worker-event:120@{worker_of(A)}",
        f"worker-event:30@{worker_of(B)}",
        f"worker-barrier:8@{worker_of(B)}",
    ],
    ids=["A-after-B-came-back", "B-after-it-came-back", "B-barrier-while-idle"],
)
def test_a_dead_worker_keeps_every_event_accounted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ordering: str, point: str
) -> None:
    monkeypatch.setenv(FAULT_ENV, point)
    t0 = time.time()
    found = run(tmp_path, t0, ordering)
    assert found["restarts"] == 1, "the fault hook did not fire"
    assert found["late"] >= 15, "B's events stamped in its silence are late"
    assert_accounted(tmp_path / "out.jsonl", t0, found["late"])


def _driver(tmp: Path, t0: float, fault: str | None) -> subprocess.CompletedProcess[str]:
    """This module's :func:`run` in a driver process of its own (the fault hook kills it)."""
    code = (
        "import json, sys; from pathlib import Path; "
        "from tests.checkpoint.test_scaled_idle import run; "
        "print(json.dumps(run(Path(sys.argv[1]), float(sys.argv[2]), 'delay+idle')))"
    )
    env = {"PYTHONPATH": str(ROOT)}
    if fault is not None:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp), repr(t0)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != FAULT_ENV}, **env},
        check=False,
    )


def test_the_driver_killed_while_a_source_is_idle_keeps_its_published_prefix(
    tmp_path: Path,
) -> None:
    t0 = time.time()
    killed = _driver(tmp_path, t0, "publish:10")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    published = (tmp_path / "out.jsonl").read_bytes()
    assert published, "nothing was published before the kill"
    resumed = _driver(tmp_path, t0, None)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (tmp_path / "out.jsonl").read_bytes().startswith(published)
    assert json.loads(resumed.stdout.splitlines()[-1])["restarts"] == 1
    assert_accounted(
        tmp_path / "out.jsonl", t0, json.loads(resumed.stdout.splitlines()[-1])["late"]
    )
