"""Watermark merges, the driver's collector, late events and failing workers (local scaler)."""

from __future__ import annotations

import pickle
import threading
import time
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurizer import Feature
from featurizer._runner import RunOptions
from featurizer.scaling import (
    END_WATERMARK,
    Batch,
    GroupMerge,
    OutputCollector,
    PlanError,
    TransportError,
    WorkerError,
    plan_by_source,
    plan_split,
    run_scaled,
)
from featurizer.testing import CollectingSink
from tests.scaling.scaling_support import Boom, RunningMax, Sum2, memory_emitters, mid, tick, ticker

A, B = ticker("A"), ticker("B")
MID_A, MID_B = mid(A), mid(B)
MAX_A = Feature.create(RunningMax, {}, {"mid": MID_A})
SUM_AA = Feature.create(Sum2, {"scale": 2.0}, {"a": MID_A, "b": MID_A})


def test_group_merge_waits_for_every_sender_then_releases_in_sequence_order() -> None:
    merge = GroupMerge([1, 2])
    merge.push(1, ((1.0, 0, 0), "x", {}))
    merge.push(1, ((2.0, 0, 2), "x", {}))
    assert list(merge.release()) == []  # sender 2 might still send sequence 0 or 1
    merge.push(2, ((1.5, 0, 1), "y", {}))
    assert [r[0][2] for r in merge.release()] == [0, 1]
    assert merge.frontier() == (1.5, 0)  # sender 2 may send more of sequence 1
    merge.advance(2, (2.0, 2))
    assert [r[0][2] for r in merge.release()] == [2]
    merge.advance(1, END_WATERMARK)
    merge.advance(2, END_WATERMARK)
    assert merge.frontier() == END_WATERMARK


def test_collector_orders_records_of_one_input_by_node_rank_whatever_the_arrival() -> None:
    plan = plan_split([SUM_AA, MAX_A], 2)
    owner = {f: w.index for w in plan.workers for f in w.outputs}
    assert owner[SUM_AA] != owner[MAX_A]
    assert plan.node_rank(SUM_AA) < plan.node_rank(MAX_A)
    seen: list[str] = []
    collector = OutputCollector(plan, on_event=lambda f, e: seen.append(f.name), combine=False)
    key = (1.0, 0, 0)
    # the worker owning the higher-ranked output answers first
    for worker in (owner[MAX_A], owner[SUM_AA]):
        features = [f for f in plan.outputs if owner[f] == worker]
        collector.handle(
            Batch(
                sender=worker,
                number=0,
                keys=tuple(f.key for f in features),
                records=[(key, i, {"timestamp": 1.0}) for i in range(len(features))],
                watermarks={0: (1.0, 0)},
                end=True,
                total=len(features),
            )
        )
    ranked = sorted(plan.outputs, key=plan.node_rank)
    assert seen == [f.name for f in ranked]


def test_collector_rejects_lost_or_reordered_batches() -> None:
    plan = plan_split([MID_A], 1)
    collector = OutputCollector(plan)
    with pytest.raises(TransportError, match="expected batch 0 from worker 0, received batch 1"):
        collector.handle(Batch(sender=0, number=1))
    collector = OutputCollector(plan)
    with pytest.raises(TransportError, match="sent 3 records but 0 arrived"):
        collector.handle(Batch(sender=0, number=0, end=True, total=3))


def test_a_worker_that_raises_is_a_clear_error_at_the_driver_not_a_hang() -> None:
    boom = Feature.create(Boom, {}, {"ticker": B})
    events = [(A, tick(float(i), 1.0)) for i in range(50)] + [
        (B, tick(float(i), 13.0 if i == 7 else 2.0)) for i in range(50)
    ]
    sink = _ClosingSink()
    started = time.monotonic()
    with pytest.raises(
        WorkerError,
        match=r"worker \d failed: FeatureComputationError: .*scaling_boom.*unlucky bid 13",
    ) as info:
        run_scaled(
            [MID_A, boom],
            RunOptions(),
            sink,
            workers=2,
            strategy="by_source",
            make_emitters=memory_emitters(events),
        )
    assert time.monotonic() - started < 10
    assert info.value.worker is not None
    assert sink.closed == [False]
    assert not [t for t in threading.enumerate() if t.name.startswith("featurizer-worker")]


def test_bad_names_fail_before_anything_starts() -> None:
    events = [(A, tick(1.0, 1.0))]
    for kwargs, message in [
        ({"strategy": "diagonal"}, "unknown scaling strategy 'diagonal'"),
        ({"transport": "pigeon"}, "unknown transport 'pigeon'"),
        ({"scaler": "kubernetes"}, "unknown scaler 'kubernetes'"),
        ({"workers": 2, "strategy": "by_source"}, "cannot use 2 workers"),
    ]:
        sink = _ClosingSink()
        with pytest.raises(PlanError, match=message):
            run_scaled([MID_A], RunOptions(), sink, make_emitters=memory_emitters(events), **kwargs)
    assert not [t for t in threading.enumerate() if t.name.startswith("featurizer-worker")]


def test_late_events_go_to_the_side_output_and_are_counted() -> None:
    now = time.time()
    # live-like input: ~20 ms apart; every third event is stamped 5 s in the past
    events = [
        (A, tick(now - 5.0 if i % 3 == 2 else now + i * 0.02, float(i % 5 + 1))) for i in range(30)
    ]
    late: list[tuple[Feature, dict[str, Any]]] = []
    sink = CollectingSink()
    summary = run_scaled(
        [MID_A],
        RunOptions(combine_outputs=False),
        sink,
        make_emitters=memory_emitters(events, delay=0.02),
        watermark_delay=1.0,
        on_late=lambda f, e: late.append((f, e)),
    )
    assert summary.late_events == 10 == len(late)
    assert all(f == A and e["timestamp"] == now - 5.0 for f, e in late)
    assert len(sink.rows) == 20
    assert summary.events_in == 20


class _ClosingSink(CollectingSink):
    def __init__(self) -> None:
        super().__init__()
        self.closed: list[bool] = []

    def close(self, ok: bool = True) -> None:
        self.closed.append(ok)


# -- the collector's snapshot: the core of a checkpointed run's guarantee ----------------------

C = ticker("C")
MID_C = mid(C)
_SNAPSHOT_FEATURES = [MID_A, MAX_A, MID_B, MID_C]


@st.composite
def _worker_streams(draw: st.DrawFn, plan: Any) -> dict[int, list[Batch]]:
    """Each worker's batches as it would send them: per group, records with increasing keys
    (several output features may answer one input event), watermarks that pass them or move
    on in time alone (a delay or an idle group), late input events, and a last batch."""
    streams: dict[int, list[Batch]] = {}
    for worker in plan.workers:
        outputs = list(worker.outputs)
        keys = tuple(f.key for f in outputs)
        by_group: dict[int, list[int]] = {}
        for i, feature in enumerate(outputs):
            by_group.setdefault(plan.group_of(feature), []).append(i)
        clock = {g: (0.0, -1) for g in by_group}
        source = {g: next(iter(plan.groups[g].sources)).key for g in by_group}
        batches: list[Batch] = []
        total = 0
        for number in range(draw(st.integers(0, 6))):
            records: list[tuple[Any, ...]] = []
            late: list[tuple[Any, ...]] = []
            for _ in range(draw(st.integers(0, 5))):
                group = draw(st.sampled_from(sorted(by_group)))
                time_, seq = clock[group]
                step = draw(st.sampled_from(["event", "event", "silent", "late"]))
                if step == "late":
                    late.append((group, source[group], {"timestamp": time_ - 1.0}))
                    continue
                time_ += draw(st.sampled_from([0.0, 0.5, 1.0]))
                if step == "silent":
                    clock[group] = (time_, seq)
                    continue
                seq += 1
                clock[group] = (time_, seq)
                answering = draw(
                    st.lists(st.sampled_from(by_group[group]), min_size=1, unique=True)
                )
                for index in sorted(answering):
                    event = {"timestamp": time_, "value": float(seq * 10 + index)}
                    records.append(((time_, group, seq), index, event))
            total += len(records)
            batches.append(
                Batch(
                    sender=worker.index,
                    number=number,
                    keys=keys,
                    records=records,
                    watermarks=dict(clock),
                    total=total,
                    late=late,
                )
            )
        batches.append(Batch(sender=worker.index, number=len(batches), end=True, total=total))
        streams[worker.index] = batches
    return streams


def _renumbered(batches: list[Batch], start: int) -> list[Batch]:
    """A restored run's channels start anew: batches from ``start`` on, numbered from 0 and
    counting records from there; a worker that had ended is restored as ended and ends its
    new channel at once."""
    if start == len(batches):
        return [Batch(sender=batches[0].sender, number=0, end=True, total=0)]
    renumbered, total = [], 0
    for number, batch in enumerate(batches[start:]):
        total += len(batch.records)
        renumbered.append(attrs.evolve(batch, number=number, total=total))
    return renumbered


@settings(max_examples=200, deadline=None)
@given(data=st.data(), combine=st.booleans(), workers=st.sampled_from([1, 2, 3]))
def test_a_restored_collector_continues_exactly_like_the_uninterrupted_one(
    data: st.DataObject, combine: bool, workers: int
) -> None:
    """Snapshot (pickled, as a checkpoint stores it) between any two batches, restore into a
    fresh collector, feed it the rest on fresh channels: what it releases, the late events it
    reports and its counters continue exactly those of one collector fed everything."""
    plan = plan_by_source(_SNAPSHOT_FEATURES, workers)
    streams = data.draw(_worker_streams(plan))
    order = data.draw(
        st.permutations([w for w, batches in streams.items() for _ in batches]), label="order"
    )

    def collector(out: list[Any]) -> OutputCollector:
        return OutputCollector(
            plan,
            on_combined=lambda row: out.append(("row", [(f.key, e) for f, e in row])),
            on_event=lambda f, e: out.append(("event", f.key, e)),
            on_late=lambda f, e: out.append(("late", f.key, e)),
            combine=combine,
        )

    def feed(target: OutputCollector, sequence: list[int], batches: dict[int, list[Batch]]) -> None:
        taken = dict.fromkeys(batches, 0)
        for worker in sequence:
            target.handle(batches[worker][taken[worker]])
            taken[worker] += 1

    whole: list[Any] = []
    one = collector(whole)
    feed(one, order, streams)
    cut = data.draw(st.integers(0, len(order)), label="cut")
    before: list[Any] = []
    first = collector(before)
    feed(first, order[:cut], streams)
    state = pickle.loads(pickle.dumps(first.snapshot(), protocol=pickle.HIGHEST_PROTOCOL))
    after: list[Any] = []
    restored = collector(after)
    restored.restore(state)
    consumed = {w: order[:cut].count(w) for w in streams}
    rest = {w: _renumbered(batches, consumed[w]) for w, batches in streams.items()}
    ended = [w for w, batches in streams.items() if consumed[w] == len(batches)]
    feed(restored, ended + order[cut:], rest)
    assert before + after == whole
    assert restored.finished and one.finished
    assert (restored.outputs, restored.records, restored.late) == (
        one.outputs,
        one.records,
        one.late,
    )
    assert restored.pending() == one.pending() == 0


@settings(max_examples=200, deadline=None)
@given(data=st.data(), senders=st.integers(1, 3))
def test_a_restored_group_merge_continues_exactly_like_the_uninterrupted_one(
    data: st.DataObject, senders: int
) -> None:
    """A worker's merge of one group from several senders (sequences dealt out among them,
    watermarks passing what each sent), snapshotted at any point and restored into a fresh
    merge: what it releases and its frontier continue exactly those of one merge."""
    owners = data.draw(st.lists(st.integers(0, senders - 1), max_size=20), label="owners")
    steps: list[tuple[str, int, Any]] = []
    time_ = 0.0
    for seq, sender in enumerate(owners):
        time_ += data.draw(st.sampled_from([0.0, 1.0]))
        steps.append(("push", sender, ((time_, 0, seq), MID_A, {"seq": seq})))
        if data.draw(st.booleans()):
            other = data.draw(st.integers(0, senders - 1))
            steps.append(("advance", other, (time_, seq)))
    steps += [("advance", s, END_WATERMARK) for s in range(senders)]
    cut = data.draw(st.integers(0, len(steps)), label="cut")

    def apply(merge: GroupMerge, part: list[tuple[str, int, Any]]) -> list[Any]:
        out: list[Any] = []
        for kind, sender, value in part:
            if kind == "push":
                merge.push(sender, value)
            else:
                merge.advance(sender, value)
            out += [record[0] for record in merge.release()]
            out.append(merge.frontier())
        return out

    whole = apply(GroupMerge(range(senders)), steps)
    first = GroupMerge(range(senders))
    before = apply(first, steps[:cut])
    state = pickle.loads(pickle.dumps(first.snapshot(), protocol=pickle.HIGHEST_PROTOCOL))
    restored = GroupMerge(range(senders))
    restored.restore(state, {MID_A.key: MID_A})
    assert before + apply(restored, steps[cut:]) == whole
    assert restored.frontier() == END_WATERMARK
