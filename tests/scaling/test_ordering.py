"""Watermark merges, the driver's collector, late events and failing workers (local scaler)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

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
