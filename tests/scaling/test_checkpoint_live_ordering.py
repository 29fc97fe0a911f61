"""What a 24/7 user runs, all at once: live input (the fake Binance exchange through the
cryptofeed emitter), ``featurizer run --scaler local --worker-processes --workers 2``, a
watermark delay and an idle timeout, ``--checkpoint DIR``, JSON Lines output. A worker process
is killed with ``kill -9`` by the PID the run logged, then the driver itself; the driver is
started again with the same command and stopped with Ctrl-C.

With a delay on live input the uninterrupted output is not unique (which events are late
depends on the wall clock), so the test checks what must hold whatever the timing: what was
published before each crash is a prefix of the final output; no row is written twice; every
event in the workers' input logs is accounted for exactly once, as the row it makes or as a
late event (the summary's counts, in all and per worker, continued across restarts; exactly
for the ticker, the trades and the gaps, which make one row per event, within bounds for the
book, whose updates make a row only while it is in sync); each restart is a gap (warned
about, a gap row); ``featurizer checkpoint verify`` passes; and with a delay that makes
nothing late, the output is exactly what one process computes from the logs, each source
group in event-time order."""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("cryptofeed", reason="the live tests need cryptofeed")
pytest.importorskip("cryptography", reason="the fake exchange's certificate needs cryptography")
pytest.importorskip("zmq", reason="worker processes talk over ZeroMQ")

from featurizer import (
    Feature,
    FeaturizerConfig,
    RunOptions,
    construct_features_from_configs,
    get_plugins,
)
from featurizer._sinks import JsonLinesSink
from featurizer.checkpoint import FAULT_ENV
from featurizer.checkpoint._log import InputLog
from featurizer.scaling import FeatureStreamWorkerGraph, build_plan, run_scaled
from featurizer.testing import InMemoryEmitter
from tests.checkpoint.checkpoint_support import featurizer
from tests.cryptofeed.fake_binance import FakeBinance, generate_script
from tests.cryptofeed.tls import make_certificate
from tests.scaling.scaling_support import mid, ticker
from tests.scaling.test_checkpoint_live import (
    CONFIG,
    RATE,
    STEPS,
    latest,
    past_a_checkpoint,
    replay_of_the_logs,
    wait_for,
)

TIMEOUT = 60.0
DELAYS = {"nothing-late": "0.3", "some-late": "0.0005"}
"""Watermark delays. The exchange stamps depth updates and trades with their sending time in
whole milliseconds, while the ticker, the books' snapshots and the gap events carry precise
receipt times, and the worker's event clock runs on from the last event it received: a delay
under a millisecond makes some depth updates and trades late; 0.3 s none."""
IDLE = "1"
_PIDS = re.compile(r"worker processes: (.*)")
_SOURCE_OF = {"mid": "ticker", "tvi": "trades", "book": "l2_book", "gaps": "gaps"}
"""The data source (by definition) whose events each output of :data:`CONFIG` computes."""


@pytest.fixture
def exchange(tmp_path: Path) -> Any:
    """The fake exchange, stamping its messages with the wall clock as a live exchange does
    (a script's own times would run ahead of the receipt times of the ticker, which has none,
    and a watermark delay would then make the ticker late for good)."""
    script = generate_script(23, ("BTC-USDT",), STEPS, start_ms=int(time.time() * 1000))
    with FakeBinance(script, make_certificate(tmp_path), rate=RATE, live_clock=True) as fake:
        yield fake


class _Driver:
    """``featurizer -v run ...`` in a subprocess, its stderr read line by line meanwhile."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def _drain(self) -> None:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)

    def pids(self) -> list[dict[int, int]]:
        """Each ``worker processes:`` line logged so far, as ``{worker: pid}``."""
        self._drain()
        return [
            {int(w): int(p) for w, p in re.findall(r"worker (\d+) pid (\d+)", m.group(1))}
            for m in (_PIDS.search(line) for line in self.lines)
            if m is not None
        ]

    def alive(self) -> bool:
        assert self.process.poll() is None, "the run ended: " + "".join(self.stderr()[-3000:])
        return True

    def stderr(self) -> str:
        self._drain()
        return "".join(self.lines)

    def kill(self) -> None:
        """Kill the process if it still runs (a failed test leaves nothing behind)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10.0)

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Wait for the process (killed after ``timeout``) and for its last lines."""
        try:
            self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10.0)
        self._reader.join(10.0)
        self._drain()
        return self.process.returncode


def _logged_events(directory: Path) -> collections.Counter[tuple[str, float, float]]:
    """Every event in the workers' input logs, as ``(source definition, timestamp, receipt
    time)``."""
    features = construct_features_from_configs(FeaturizerConfig.from_dict(CONFIG))
    plan = build_plan(features, "by_source", 2, get_plugins())
    found: collections.Counter[tuple[str, float, float]] = collections.Counter()
    for worker in plan.workers:
        log = InputLog(directory / "workers" / str(worker.index) / "log", list(worker.sources))
        try:
            for source, event in log.tail({}):
                name = "gaps" if source.definition_name == "feed_gaps" else source.definition_name
                found[(name, event["timestamp"], event["receipt_timestamp"])] += 1
        finally:
            log.close()
    return found


def _late(stderr: str) -> tuple[int, dict[int, int]]:
    """The late events of the run's summary (``late: N``, and per worker ``late N``),
    continued across restarts."""
    summary = [line for line in stderr.splitlines() if line.startswith("events in: ")]
    assert summary, stderr[-3000:]
    total = int(summary[-1].split("late: ")[1].split()[0].replace(",", ""))
    workers = re.findall(r"^  worker (\d+): events in .*?, late ([\d,]+)", stderr, re.MULTILINE)
    assert len(workers) == 2, stderr[-3000:]
    return total, {int(w): int(n.replace(",", "")) for w, n in workers}


@pytest.mark.parametrize("delay", list(DELAYS.values()), ids=list(DELAYS))
def test_a_live_scaled_run_with_a_watermark_delay_survives_a_worker_and_a_driver_kill(
    tmp_path: Path, exchange: FakeBinance, delay: str
) -> None:
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    out, directory = tmp_path / "out.jsonl", tmp_path / "ck"
    command = [
        sys.executable,
        "-m",
        "featurizer",
        "-v",
        "run",
        str(config),
        "--scaler",
        "local",
        "--worker-processes",
        "--workers",
        "2",
        "--no-combine",
        "--watermark-delay",
        delay,
        "--idle-timeout",
        IDLE,
        "--duration",
        str(TIMEOUT),
        "--out",
        str(out),
        "--checkpoint",
        str(directory),
        "--checkpoint-every",
        "1s",
    ]
    env = {**{k: v for k, v in os.environ.items() if k != FAULT_ENV}, **exchange.environ()}
    first = _Driver(command, env)
    try:
        # a worker process killed by its logged PID, after a commit and input after it
        wait_for(lambda: first.alive() and past_a_checkpoint(directory), "a checkpoint")
        (pids,) = wait_for(first.pids, "the workers' PIDs")
        before_worker_kill = out.read_bytes()
        killed_at = latest(directory)
        os.kill(pids[1], signal.SIGKILL)
        wait_for(lambda: first.alive() and len(first.pids()) == 2, "the workers restarted")
        wait_for(
            lambda: first.alive() and latest(directory).events_in > killed_at.events_in + 2_000,
            "a checkpoint after the restart",
        )
        # then the driver, after a commit and input after it
        wait_for(lambda: first.alive() and past_a_checkpoint(directory), "a checkpoint")
        before_driver_kill = out.read_bytes()
        os.kill(first.process.pid, signal.SIGKILL)
        assert first.finish() == -signal.SIGKILL
    finally:
        first.kill()
    for pid in pids.values():  # the killed run's worker processes went with it
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), f"process {pid} to exit")
    assert before_driver_kill.startswith(before_worker_kill)
    assert out.read_bytes().startswith(before_driver_kill)
    killed_at = latest(directory)
    second = _Driver(command, env)
    try:
        wait_for(
            lambda: second.alive() and latest(directory).events_in > killed_at.events_in + 2_000,
            "the resumed run to go on",
        )
        second.process.send_signal(signal.SIGINT)
        assert second.finish() == 130, second.stderr()[-3000:]
    finally:
        second.kill()
    first_log, second_log = first.stderr(), second.stderr()
    final = out.read_bytes()
    assert final.startswith(before_driver_kill), "a published row changed after the restart"

    # no row twice; every logged event one row or one late event
    rows = [json.loads(line) for line in final.splitlines()]
    made = collections.Counter(
        (_SOURCE_OF[row["feature"]], row["timestamp"], row["receipt_timestamp"]) for row in rows
    )
    twice = [key for key, count in made.items() if count > 1]
    assert not twice, f"rows written twice: {twice[:5]}"
    logged = _logged_events(directory)
    assert not [key for key, count in logged.items() if count > 1], "an event logged twice"
    unlogged = set(made) - set(logged)
    assert not unlogged, f"rows of events no worker logged: {sorted(unlogged)[:5]}"
    # an event of the ticker, the trades or the gaps is one row (of mid, tvi, gaps) unless it
    # was late; a book event makes a row only when the book is in sync (see L2Book). Worker 0
    # ingests the ticker and the book, worker 1 the trades and the gaps (see CONFIG)
    late, per_worker = _late(second_log)
    rowless = collections.Counter(key[0] for key in set(logged) - set(made))
    assert sum(per_worker.values()) == late, (per_worker, late)
    assert per_worker[1] == rowless["trades"] + rowless["gaps"], (per_worker, rowless)
    assert rowless["ticker"] <= per_worker[0] <= rowless["ticker"] + rowless["l2_book"], (
        per_worker,
        rowless,
    )

    # the downtime is a gap, each time: a warning, and a gap row of the trades per restart
    disconnects = [row for row in rows if row["feature"] == "gaps" and row["channel"] == "trades"]
    assert len(disconnects) >= 2 and {row["reason"] for row in disconnects} == {"disconnect"}
    assert "restart 1 of at most 3" in first_log and "killed by SIGKILL" in first_log
    assert "lost data while the run was down" in first_log, first_log[-3000:]
    assert "lost data while the run was down" in second_log, second_log[-3000:]
    assert "restarts: 2" in second_log, second_log[-3000:]
    verify = featurizer("checkpoint", "verify", str(directory))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    if delay == DELAYS["some-late"]:
        assert late > 0, "nothing was late: the variant tests nothing more"
    else:  # nothing late: exactly what one process computes from the logs
        assert late == 0, per_worker
        assert final == replay_of_the_logs(CONFIG, directory, event_time=True)


LAG = 0.5
"""Seconds a lagging feed's timestamps are behind the wall clock (more than the delay)."""


class _LaggingFeed(InMemoryEmitter):
    """A live feed that connects after 1 s (longer than the delay: a restarted worker's feed
    always takes that long), then ticks every 10 ms for 1.5 s, stamped :data:`LAG` seconds
    behind the wall clock (network latency and a clock behind the local one)."""

    def __init__(self, sources: list[Feature]) -> None:
        super().__init__([], validate=False)
        self.sources = sources

    def run(self) -> None:
        if self._stop.wait(1.0):
            return
        for i in range(150):
            if self._stop.wait(0.01):
                return
            now = time.time()
            for source in self.sources:
                event = {"timestamp": now - LAG, "receipt_timestamp": now, "bid": 1.0 + i}
                self._callbacks[source]({**event, "ask": 2.0 + i})
                self.emitted += 1


def test_a_feed_behind_the_wall_clock_that_connects_after_the_delay_is_not_late_for_good(
    tmp_path: Path,
) -> None:
    """Until a worker's first event its event clock is unknown; after the delay it uses the
    wall clock, and a feed stamped more than the delay behind it starts late. The clock then
    learns the feed's time from its events, late ones included: the feed is late for about
    ``LAG - delay`` seconds, then on time. (It was late for good: a late event did not teach
    the clock, so every event stayed behind the wall clock's watermark.)"""
    sources = [ticker("A"), ticker("B")]

    def feeds(plan: FeatureStreamWorkerGraph, index: int) -> dict[str, Any]:
        mine = list(plan.workers[index].sources)
        return {"memory": (_LaggingFeed(mine), mine)}

    summary = run_scaled(
        [mid(source) for source in sources],
        RunOptions(combine_outputs=False),
        JsonLinesSink(tmp_path / "out.jsonl"),
        workers=2,
        make_emitters=feeds,
        watermark_delay=float(DELAYS["nothing-late"]),
    )
    assert summary.outputs_out + summary.late_events == 300
    assert summary.outputs_out >= 150, summary.describe()
