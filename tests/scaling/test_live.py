"""Scaled runs over live-like input: silent and idle sources, stops that drain, the watermark
delay that reorders, hung workers, and the driver's memory bound.

Emitters here stamp events with the wall clock when they emit them (as a live feed does), or
replay old timestamps at a pace; every wait is on a condition, bounded in time.
"""

from __future__ import annotations

import _thread
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pytest
from streamz import Stream

from featurizer import (
    DataDefinition,
    Event,
    Feature,
    FeatureDefinition,
    Param,
    Schema,
    get_plugins,
)
from featurizer._runner import RunOptions
from featurizer.scaling import ScalingError, WorkerError, build_plan, run_scaled
from featurizer.scaling import _driver as driver_module
from featurizer.scaling._ordering import OutputCollector
from featurizer.testing import CollectingSink, ExampleMid, ExampleTicker, InMemoryEmitter
from tests.scaling.scaling_support import (
    Pairs,
    RunningMax,
    SlowEmitter,
    canonical,
    mid,
    tick,
    ticker,
    times,
)
from tests.scaling.test_parity import single_process

A, B = ticker("A"), ticker("B")
MID_A, MID_B = mid(A), mid(B)
OUTPUTS = [MID_A, Feature.create(RunningMax, {}, {"mid": MID_A}), MID_B]
OUTPUTS += [Feature.create(Pairs, {}, {"mid": MID_B})]


class ClosingSink(CollectingSink):
    """Records whether the run published (``close(ok=True)``) or discarded its output."""

    def __init__(self) -> None:
        super().__init__()
        self.closed: list[bool] = []

    def close(self, ok: bool = True) -> None:
        self.closed.append(ok)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``condition`` (bounded in time); whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)  # polling a condition, bounded by the deadline
    return condition()


class LiveEmitter(InMemoryEmitter):
    """Emits ``script`` (``(source, bid, age)``: the event is stamped ``age`` seconds before
    the wall clock when emitted), ``gap`` seconds apart, then stays open like a live feed
    until stopped or until ``until()`` is true. Records what it delivered."""

    def __init__(
        self,
        script: Sequence[tuple[Feature, float, float]],
        *,
        gap: float = 0.002,
        until: Callable[[], bool] | None = None,
        after: Callable[[], None] | None = None,
    ) -> None:
        super().__init__((), validate=False)
        self.script = list(script)
        self.gap = gap
        self.until = until
        self.after = after
        self.delivered: list[tuple[Feature, Event]] = []

    def run(self) -> None:
        for source, bid, age in self.script:
            if self._stop.wait(self.gap):
                return
            ts = time.time() - age
            event = tick(ts, bid)
            self.delivered.append((source, event))
            self._callbacks[source](event)
        if self.after is not None:
            self.after()
        while not self._stop.wait(0.005):  # open until stopped (or told to end)
            if self.until is not None and self.until():
                return


def emitters_of(by_source: Mapping[Feature, LiveEmitter]) -> Any:
    """An emitter factory giving each worker the emitters of the sources it ingests."""

    def make(plan: Any, index: int) -> dict[str, Any]:
        sources = list(plan.workers[index].sources)
        built = {}
        for source in sources:
            built[f"live-{source.params['symbol']}"] = (by_source[source], [source])
        return built

    return make


# -- stops drain -----------------------------------------------------------------------------


@pytest.mark.parametrize(("strategy", "workers"), [("single", 1), ("by_source", 2), ("split", 2)])
@pytest.mark.parametrize("delay", [None, 0.5])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_stop_at_a_random_moment_publishes_every_row_produced_before_it(
    strategy: str, workers: int, delay: float | None, seed: int
) -> None:
    rng = random.Random(seed)
    plan = build_plan(OUTPUTS, strategy, workers, get_plugins())
    built: dict[int, LiveEmitter] = {}

    def make(plan: Any, index: int) -> dict[str, Any]:
        sources = list(plan.workers[index].sources)
        script = [(rng.choice(sources), float(rng.randint(1, 9)), 0.0) for _ in range(5000)]
        built[index] = LiveEmitter(script)
        return {"live": (built[index], sources)}

    sink = ClosingSink()
    got: list[Any] = []
    late: list[tuple[Feature, Event]] = []  # only on a machine busy enough to stall a thread
    summary = run_scaled(
        OUTPUTS,
        RunOptions(duration=rng.uniform(0.2, 0.6)),
        sink,
        workers=workers,
        strategy=strategy,
        watermark_delay=delay,
        make_emitters=make,
        on_combined=got.append,
        on_late=lambda source, event: late.append((source, event)),
        transport_options={"batch_size": 16, "hwm": 4},
    )
    assert summary.stopped_by == "duration"
    assert sink.closed == [True]
    # each worker took a prefix of what its emitter delivered (but the late events, counted
    # and sent to the side output), and stopped there
    assert summary.late_events == len(late)
    assert delay is not None or not late
    late_ids = {id(event) for _, event in late}
    inputs: list[tuple[Feature, Event]] = []
    for index, emitter in built.items():
        taken = int(summary.workers[index]["events_in"])
        on_time = [named for named in emitter.delivered if id(named[1]) not in late_ids]
        assert 0 <= taken <= len(on_time)  # 0 when a stalled machine starts it after the stop
        inputs += on_time[:taken]
    assert len(inputs) == summary.events_in
    expected = single_process(OUTPUTS, canonical(plan, inputs), combine=True)
    assert got == expected


# -- silent and idle sources -----------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [{"watermark_delay": 0.5}, {"idle_timeout": 0.5}, {"watermark_delay": 0.5, "idle_timeout": 5}],
)
def test_a_silent_source_does_not_hold_back_the_others(settings: dict[str, float]) -> None:
    count = 200
    sink = ClosingSink()
    arrived: list[bool] = []

    def mid_a_rows() -> int:
        return sum(1 for row in list(sink.rows) if row["feature"] == MID_A.name)

    def check() -> None:  # on A's emitter thread, once A emitted everything; B is silent
        arrived.append(wait_for(lambda: mid_a_rows() == count))

    emitter_a = LiveEmitter([(A, 5.0, 0.0)] * count, after=check, until=lambda: bool(arrived))
    emitter_b = LiveEmitter([], until=lambda: bool(arrived))
    summary = run_scaled(
        [MID_A, MID_B],
        RunOptions(combine_outputs=False),
        sink,
        workers=2,
        strategy="by_source",
        make_emitters=emitters_of({A: emitter_a, B: emitter_b}),
        **settings,  # type: ignore[arg-type]
    )
    assert arrived == [True], "A's rows were held back by the silent source B"
    assert summary.stopped_by == "completed"
    assert [row["timestamp"] for row in sink.rows] == [
        e["timestamp"] for _, e in emitter_a.delivered
    ]
    assert summary.late_events == 0


def test_an_idle_source_rejoins_and_its_events_behind_the_watermark_are_late() -> None:
    sink = ClosingSink()
    late: list[tuple[Feature, Event]] = []
    a_done = threading.Event()

    def a_rows_out() -> None:
        assert wait_for(lambda: len(sink.rows) == 50)  # B is idle: A's rows came out
        a_done.set()

    emitter_a = LiveEmitter([(A, 5.0, 0.0)] * 50, after=a_rows_out, until=lambda: True)

    class Rejoining(LiveEmitter):
        def run(self) -> None:
            if not a_done.wait(20.0):
                return
            for bid, age in ((7.0, 30.0), (8.0, 0.0)):  # 30 s behind: late; then a fresh one
                ts = time.time() - age
                event = tick(ts, bid)
                self.delivered.append((B, event))
                self._callbacks[B](event)

    emitter_b = Rejoining([])
    summary = run_scaled(
        [MID_A, MID_B],
        RunOptions(combine_outputs=False),
        sink,
        workers=2,
        strategy="by_source",
        idle_timeout=0.2,
        make_emitters=emitters_of({A: emitter_a, B: emitter_b}),
        on_late=lambda source, event: late.append((source, event)),
    )
    assert summary.late_events == 1
    assert late == [emitter_b.delivered[0]]
    assert summary.workers[1]["late_events"] == 1
    b_rows = [row for row in sink.rows if row["feature"] == MID_B.name]
    assert [row["timestamp"] for row in b_rows] == [emitter_b.delivered[1][1]["timestamp"]]


# -- the watermark delay reorders ------------------------------------------------------------


def test_the_watermark_delay_reorders_a_sources_events_within_the_delay() -> None:
    sink = ClosingSink()
    # ages: the third event is 50 ms behind the second one
    script = [(A, 1.0, 0.3), (A, 2.0, 0.2), (A, 3.0, 0.25), (A, 4.0, 0.1), (A, 5.0, 0.0)]
    # (a delay well above the ages: only a thread stalled for a second could make one late)
    emitter = LiveEmitter(script, gap=0.0, until=lambda: True)
    running_max = Feature.create(RunningMax, {}, {"mid": MID_A})
    summary = run_scaled(
        [MID_A, running_max],
        RunOptions(combine_outputs=False),
        sink,
        watermark_delay=1.5,
        make_emitters=emitters_of({A: emitter}),
    )
    assert summary.late_events == 0
    sent = [e for _, e in emitter.delivered]
    assert [e["timestamp"] for e in sent] != sorted(e["timestamp"] for e in sent)
    mids = [row for row in sink.rows if row["feature"] == MID_A.name]
    assert [row["timestamp"] for row in mids] == sorted(e["timestamp"] for e in sent)
    in_order = sorted(sent, key=lambda e: e["timestamp"])
    assert [row["mid"] for row in mids] == [(e["bid"] + e["ask"]) / 2 for e in in_order]


def test_replaying_old_data_with_a_delay_marks_nothing_late() -> None:
    old = 1_704_067_200.0  # 2024-01-01
    events = [(A, tick(old + i * 0.01, 5.0)) for i in range(150)]
    events += [(B, tick(old + i * 0.01 + 0.005, 6.0)) for i in range(150)]
    events.sort(key=lambda named: named[1]["timestamp"])
    sink = ClosingSink()
    summary = run_scaled(
        [MID_A, MID_B],
        RunOptions(combine_outputs=False),
        sink,
        workers=2,
        strategy="by_source",
        watermark_delay=0.5,
        make_emitters=_replay(events, delay=0.002),  # paced: the wall clock moves meanwhile
    )
    assert summary.late_events == 0
    assert len(sink.rows) == 300
    assert [row["timestamp"] for row in sink.rows] == [e["timestamp"] for _, e in events]


def _replay(events: list[tuple[Feature, Event]], *, delay: float = 0.0) -> Any:
    def make(plan: Any, index: int) -> dict[str, Any]:
        sources = list(plan.workers[index].sources)
        mine = [named for named in events if named[0] in sources]
        emitter = SlowEmitter(mine, delay) if delay else InMemoryEmitter(mine, validate=False)
        return {"memory": (emitter, sources)}

    return make


# -- hung workers, Ctrl-C, SIGTERM -----------------------------------------------------------

STUCK = threading.Event()
"""Released at the end of a test: a :class:`Stuck` feature waits on it for ever till then."""


class Stuck(FeatureDefinition):
    """Mid price that never returns from its event with a bid of 13 (until :data:`STUCK`)."""

    name = "scaling_stuck"
    params: ClassVar[Mapping[str, Param]] = {}

    @classmethod
    def event_schema(cls) -> Schema:
        return {"mid": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"ticker": ExampleTicker}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        def mid(event: Event) -> Event:
            if event["bid"] == 13.0:
                STUCK.wait(120.0)
            return {**times(event), "mid": event["bid"]}

        return upstreams["ticker"].map(mid)


@pytest.fixture
def stuck() -> Any:
    STUCK.clear()
    yield Feature.create(Stuck, {}, {"ticker": B})
    STUCK.set()


def test_a_stuck_worker_is_named_within_seconds_and_nothing_is_published(stuck: Feature) -> None:
    emitter_a = LiveEmitter([(A, 5.0, 0.0)] * 20)
    emitter_b = LiveEmitter([(B, 2.0, 0.0)] * 5 + [(B, 13.0, 0.0)])
    sink = ClosingSink()
    started = time.monotonic()
    with pytest.raises(
        WorkerError, match=r"worker 1 sent nothing for .* \(heartbeat timeout 1 s\)"
    ):
        run_scaled(
            [MID_A, stuck],
            RunOptions(),
            sink,
            workers=2,
            strategy="by_source",
            heartbeat_timeout=1.0,
            make_emitters=emitters_of({A: emitter_a, B: emitter_b}),
        )
    assert time.monotonic() - started < 15.0
    assert sink.closed == [False]


def _interrupt_when(condition: Callable[[], bool], how: str) -> threading.Thread:
    def fire() -> None:
        if wait_for(condition):
            if how == "sigint":
                _thread.interrupt_main()
            else:
                os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_on_a_stuck_run_ends_it_within_seconds_publishing_nothing(stuck: Feature) -> None:
    emitter_a = LiveEmitter([(A, 5.0, 0.0)] * 20)
    emitter_b = LiveEmitter([(B, 2.0, 0.0)] * 5 + [(B, 13.0, 0.0)])
    sink = ClosingSink()
    firing = _interrupt_when(lambda: len(emitter_b.delivered) == 6, "sigint")
    started = time.monotonic()
    with pytest.raises(ScalingError, match=r"worker\(s\) 1 did not finish within 1 s"):
        run_scaled(
            [MID_A, stuck],
            RunOptions(),
            sink,
            workers=2,
            strategy="by_source",
            drain_timeout=1.0,
            make_emitters=emitters_of({A: emitter_a, B: emitter_b}),
        )
    firing.join(5.0)
    assert time.monotonic() - started < 15.0
    assert sink.closed == [False]


@pytest.mark.parametrize("how", ["sigint", "sigterm"])
def test_ctrl_c_and_sigterm_drain_a_live_run_and_publish_it(how: str) -> None:
    emitter_a = LiveEmitter([(A, 5.0, 0.0)] * 5000)
    emitter_b = LiveEmitter([(B, 4.0, 0.0)] * 5000)
    sink = ClosingSink()
    firing = _interrupt_when(lambda: len(emitter_a.delivered) >= 50, how)
    before = signal.getsignal(signal.SIGTERM)
    summary = run_scaled(
        [MID_A, MID_B],
        RunOptions(combine_outputs=False),
        sink,
        workers=2,
        strategy="by_source",
        watermark_delay=0.05,
        make_emitters=emitters_of({A: emitter_a, B: emitter_b}),
    )
    firing.join(5.0)
    assert summary.stopped_by == "interrupted"
    assert sink.closed == [True]
    assert len(sink.rows) == summary.events_in >= 50
    assert signal.getsignal(signal.SIGTERM) is before


# -- the driver's memory is bounded whatever the speed difference --------------------------


SLOW_GATE = threading.Event()
""":class:`Slow` starts working once this is set (or after 30 s): the test opens it when the
driver holds as many records as the case needs, so the pile-up does not depend on how fast
the machine happens to run each worker."""


class Slow(FeatureDefinition):
    """Mid price that takes a millisecond per event (once :data:`SLOW_GATE` is open)."""

    name = "scaling_slow_mid"

    @classmethod
    def event_schema(cls) -> Schema:
        return {"mid": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        return {"mid": ExampleMid}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        def slow(event: Event) -> Event:
            SLOW_GATE.wait(30.0)
            time.sleep(0.001)  # the work of a heavy feature
            return event

        return upstreams["mid"].map(slow)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
@pytest.mark.parametrize("bound", [2_000, None])
def test_a_fast_worker_beside_a_slow_one_does_not_grow_the_drivers_memory(
    monkeypatch: pytest.MonkeyPatch, record_property: Any, bound: int | None
) -> None:
    """A sub-DAG 1,000 times slower than the other: with the bound the driver holds at most
    ``max_pending`` records (plus a batch) and the process's peak RSS barely moves; without it
    (the control, ``max_pending`` above the input) the fast worker's records pile up."""
    peak = [0]
    # the slow worker starts once the driver holds this many records: past the control's
    # threshold without a bound, at the bound with one (which it must then never exceed)
    opens_at = bound if bound is not None else 20_001
    SLOW_GATE.clear()

    class Measuring(OutputCollector):
        def handle(self, batch: Any) -> None:
            super().handle(batch)
            peak[0] = max(peak[0], self.pending())
            if peak[0] >= opens_at:
                SLOW_GATE.set()

    monkeypatch.setattr(driver_module, "OutputCollector", Measuring)
    fast = [(A, tick(i * 0.001, 5.0)) for i in range(100_000)]
    slow = [(B, tick(i * 0.04, 6.0)) for i in range(2_500)]  # 2.5 s of work, spread over 100 s
    events = sorted(fast + slow, key=lambda named: named[1]["timestamp"])
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as clear:
        clear.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = _rss_kib("VmRSS")
    try:
        summary = run_scaled(
            [MID_A, Feature.create(Slow, {}, {"mid": MID_B})],
            RunOptions(combine_outputs=False),
            None,
            workers=2,
            strategy="by_source",
            max_pending=bound if bound is not None else 10**9,
            transport_options={"batch_size": 64, "hwm": 2},
            make_emitters=_replay(events),
        )
    finally:
        SLOW_GATE.set()
    growth_mb = (_rss_kib("VmHWM") - before) / 1024
    record_property("peak_rss_growth_mb", round(growth_mb, 1))
    record_property("peak_records_held", peak[0])
    assert summary.events_in == summary.outputs_out == 102_500
    if bound is None:
        assert peak[0] > 20_000, "the control must pile records up, else the test proves nothing"
        return
    assert peak[0] <= bound + 64, f"the driver held {peak[0]:,} records"
    assert growth_mb < 15, f"peak RSS grew {growth_mb:.1f} MB"  # measured: 4.6 (control 19.3)


def test_a_stop_drains_worker_output_files_too(tmp_path: Any) -> None:
    """``--outputs workers``: a live run stopped by its duration publishes, per worker, the rows
    of the events it accepted (with ``--no-combine``, the union per output feature is one
    process's output over those events)."""
    import json

    from featurizer.scaling import WorkerOutputs

    plan = build_plan(OUTPUTS, "by_source", 2, get_plugins())
    built: dict[int, LiveEmitter] = {}

    def make(plan: Any, index: int) -> dict[str, Any]:
        sources = list(plan.workers[index].sources)
        built[index] = LiveEmitter([(sources[0], float(i % 9 + 1), 0.0) for i in range(5000)])
        return {"live": (built[index], sources)}

    summary = run_scaled(
        OUTPUTS,
        RunOptions(duration=0.4, combine_outputs=False),
        None,
        workers=2,
        strategy="by_source",
        watermark_delay=0.5,
        make_emitters=make,
        outputs=WorkerOutputs(target=str(tmp_path / "w-{worker}.jsonl")),
    )
    assert summary.stopped_by == "duration"
    inputs = []
    for index, emitter in built.items():
        inputs += emitter.delivered[: int(summary.workers[index]["events_in"])]
    expected = json.loads(
        json.dumps(single_process(OUTPUTS, canonical(plan, inputs), combine=False))
    )
    rows = []
    for path in summary.output_files:
        with open(path, encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle]
    assert summary.late_events == 0
    for feature in OUTPUTS:
        mine = [row for row in rows if row["feature"] == feature.name]
        assert mine == [row for row in expected if row["feature"] == feature.name]
    assert len(rows) == len(expected) == summary.outputs_out > 0
