"""Event-time order across workers: per-group merges in workers, the global merge at the driver.

Every input event gets a key ``(time, group, sequence)`` where it is ingested (see
:class:`~featurizer.scaling.SourceGroup`): ``sequence`` numbers the group's events in emitter
order and ``time`` is the running maximum of their timestamps, so keys increase along each
group. Everything derived from an input carries its key. Watermarks ``(time, sequence)`` per
group say that no record of the group with a key at or below them will follow.

* A worker receiving a group's records from several workers merges them by sequence
  (:class:`GroupMerge`), releasing a record once every sender has passed it.
* The driver merges every worker's output records by ``(key, node rank)``
  (:class:`OutputCollector`): all records at or below the minimum watermark are released in
  that order, which is the order a single-process graph produces them in, and combined exactly
  as the single-process graph combines them (once per input event that updated an output,
  once every output has a value).
"""

from __future__ import annotations

import collections
import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from featurizer._events import Event, GroupedNamedDataEvent, NamedDataEvent
from featurizer._feature import Feature
from featurizer.scaling._errors import TransportError
from featurizer.scaling._plan import FeatureStreamWorkerGraph
from featurizer.scaling._transport import END_WATERMARK, Batch, Watermark

__all__ = ["GroupMerge", "OutputCollector", "resolve_keys"]

_START: Watermark = (float("-inf"), -1)


def resolve_keys(keys: Sequence[str], by_key: Mapping[str, Feature], sender: int) -> list[Feature]:
    """Map a batch's feature keys to this process's features.

    :raises TransportError: for a key the plan does not know (the peers disagree on the plan).
    """
    found = []
    for key in keys:
        feature = by_key.get(key)
        if feature is None:
            raise TransportError(
                f"worker {sender} sent events of feature key {key[:12]!r} which this plan does "
                f"not contain: the processes built different plans (plugin versions differ?)"
            )
        found.append(feature)
    return found


class _Channel:
    """Per-sender bookkeeping: batch numbering (FIFO, no loss) and record counts."""

    def __init__(self, sender: int) -> None:
        self.sender = sender
        self.expected = 0
        self.received = 0
        self.ended = False
        self.keys: tuple[str, ...] | None = None
        self.features: list[Feature] = []

    def accept(self, batch: Batch, by_key: Mapping[str, Feature], where: str) -> None:
        if self.ended:
            raise TransportError(
                f"{where}: worker {self.sender} sent batch {batch.number} after its end"
            )
        if batch.number != self.expected:
            raise TransportError(
                f"{where}: expected batch {self.expected} from worker {self.sender}, received "
                f"batch {batch.number}: the channel lost or reordered batches"
            )
        self.expected += 1
        self.received += len(batch.records)
        if batch.keys != self.keys and batch.keys:
            self.keys = batch.keys
            self.features = resolve_keys(batch.keys, by_key, batch.sender)
        if batch.end:
            self.ended = True
            if batch.total != self.received:
                raise TransportError(
                    f"{where}: worker {self.sender} sent {batch.total} records but "
                    f"{self.received} arrived: the channel lost records"
                )


class GroupMerge:
    """Merge one group's records arriving from several senders, by sequence.

    :param senders: the workers that send records of this group.
    """

    def __init__(self, senders: Sequence[int]) -> None:
        self.queues: dict[int, collections.deque[tuple[Any, ...]]] = {
            s: collections.deque() for s in senders
        }
        self.marks: dict[int, Watermark] = dict.fromkeys(senders, _START)

    def push(self, sender: int, record: tuple[Any, ...]) -> None:
        """Queue a record ``(key, feature, event)`` of ``sender`` (keys increase per sender)."""
        self.queues[sender].append(record)
        key = record[0]
        self.marks[sender] = (key[0], key[2] - 1)

    def advance(self, sender: int, mark: Watermark) -> None:
        """Record a sender's watermark for the group (it only grows)."""
        self.marks[sender] = max(self.marks[sender], mark)

    def release(self) -> Iterator[tuple[Any, ...]]:
        """Yield every record no sender can precede any more, in sequence order."""
        queues = self.queues
        if len(queues) == 1:
            (queue,) = queues.values()
            while queue:
                yield queue.popleft()
            return
        marks = self.marks
        while True:
            best = None
            best_seq = 0
            for sender, queue in queues.items():
                if queue:
                    seq = queue[0][0][2]
                    if best is None or seq < best_seq:
                        best, best_seq = sender, seq
            if best is None:
                return
            for sender, queue in queues.items():
                if not queue and marks[sender][1] < best_seq:
                    return
            yield queues[best].popleft()

    def snapshot(self) -> dict[str, Any]:
        """The merge's state as plain data (features by key), for a checkpoint."""
        return {
            "queues": {
                s: [(key, feature.key, event) for key, feature, event in q]
                for s, q in self.queues.items()
            },
            "marks": dict(self.marks),
        }

    def restore(self, state: Mapping[str, Any], by_key: Mapping[str, Feature]) -> None:
        """Become the merge :meth:`snapshot` was taken of."""
        for sender, records in state["queues"].items():
            self.queues[sender] = collections.deque(
                (key, by_key[feature], event) for key, feature, event in records
            )
        self.marks.update(state["marks"])

    def frontier(self) -> Watermark:
        """The group's watermark once what was released is processed."""
        lowest: Watermark | None = None
        for sender, queue in self.queues.items():
            if queue:
                key = queue[0][0]
                mark = (key[0], key[2] - 1)
            else:
                mark = self.marks[sender]
            if lowest is None or mark < lowest:
                lowest = mark
        return lowest if lowest is not None else END_WATERMARK


class OutputCollector:
    """The driver's side of a run: merges worker outputs into single-process order.

    :param plan: the plan (for feature keys, node ranks and which worker sends which group).
    :param on_combined: called with each combined output (``combine=True``).
    :param on_event: called with ``(feature, event)`` for each output event, in order.
    :param on_late: called with ``(source feature, event)`` for each late input event.
    :param combine: build combined outputs.
    :param worker: collect only this worker's outputs (worker-output mode: the worker merges
        and combines its own outputs, in the same order and the same way, restricted to the
        features it outputs); ``None``: every worker's (the driver).
    """

    def __init__(
        self,
        plan: FeatureStreamWorkerGraph,
        *,
        on_combined: Callable[[GroupedNamedDataEvent], None] | None = None,
        on_event: Callable[[Feature, Event], None] | None = None,
        on_late: Callable[[Feature, Event], None] | None = None,
        combine: bool = True,
        worker: int | None = None,
    ) -> None:
        self.plan = plan
        workers = plan.workers if worker is None else (plan.workers[worker],)
        mine = {f for w in workers for f in w.outputs}
        outputs = [f for f in plan.outputs if f in mine]
        self._by_key = plan.feature_by_key()
        self._slot = {feature: i for i, feature in enumerate(outputs)}
        self._rank = {feature: plan.node_rank(feature) for feature in outputs}
        self._on_combined = on_combined
        self._on_event = on_event
        self._on_late = on_late
        self._combine = combine
        self._latest: list[NamedDataEvent | None] = [None] * len(outputs)
        self._missing = len(outputs)
        self.channels = {w.index: _Channel(w.index) for w in workers}
        self.queues: dict[tuple[int, int], collections.deque[tuple[Any, ...]]] = {}
        self.marks: dict[tuple[int, int], tuple[float, int, int]] = {}
        for owner in workers:
            for feature in owner.outputs:
                pair = (owner.index, plan.group_of(feature))
                self.queues.setdefault(pair, collections.deque())
                self.marks[pair] = (_START[0], pair[1], _START[1])
        self.late: collections.Counter[int] = collections.Counter()
        self.metrics: dict[int, Mapping[str, Any]] = {}
        self.outputs = 0
        self.records = 0
        self._arrival = 0

    def snapshot(self) -> dict[str, Any]:
        """What the collector holds between batches, as plain data (features by key), for a
        checkpoint: the records held back by watermarks, the watermarks, the latest value of
        every output and the counters. Channels are not part of it: a restored run starts
        them anew."""
        return {
            "queues": {
                pair: [(k, r, a, feature.key, event) for k, r, a, feature, event in queue]
                for pair, queue in self.queues.items()
            },
            "marks": dict(self.marks),
            "latest": [None if item is None else (item[0].key, item[1]) for item in self._latest],
            "missing": self._missing,
            "late": dict(self.late),
            "outputs": self.outputs,
            "records": self.records,
            "arrival": self._arrival,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Become the collector :meth:`snapshot` was taken of (before any batch)."""
        by_key = self._by_key
        for pair, records in state["queues"].items():
            self.queues[pair] = collections.deque(
                (k, r, a, by_key[feature], event) for k, r, a, feature, event in records
            )
        self.marks.update(state["marks"])
        self._latest = [
            None if item is None else (by_key[item[0]], item[1]) for item in state["latest"]
        ]
        self._missing = state["missing"]
        self.late = collections.Counter(state["late"])
        self.outputs = state["outputs"]
        self.records = state["records"]
        self._arrival = state["arrival"]

    @property
    def finished(self) -> bool:
        """Whether every worker sent its last batch."""
        return all(channel.ended for channel in self.channels.values())

    def pending(self) -> int:
        """Records received but not yet released (held back by a watermark)."""
        return sum(len(q) for q in self.queues.values())

    def queued(self, sender: int) -> int:
        """Records of ``sender`` received but not yet released."""
        return sum(len(q) for pair, q in self.queues.items() if pair[0] == sender)

    def holding_back(self) -> set[int]:
        """The senders whose watermark is the lowest: only their batches can release records
        (the driver always reads them, so that bounding what it reads cannot deadlock)."""
        if not self.marks:
            return set(self.channels)
        bound = min(self.marks.values())
        return {pair[0] for pair, mark in self.marks.items() if mark == bound}

    def handle(self, batch: Batch) -> None:
        """Take one batch from a worker and release what the watermarks allow.

        :raises TransportError: for lost, reordered or foreign batches.
        """
        channel = self.channels.get(batch.sender)
        if channel is None:
            raise TransportError(f"driver: received a batch from unknown worker {batch.sender}")
        channel.accept(batch, self._by_key, "driver")
        features = channel.features
        sender = batch.sender
        queues = self.queues
        rank = self._rank
        for key, index, event in batch.records:
            feature = features[index]
            self._arrival += 1
            queues[sender, key[1]].append((key, rank[feature], self._arrival, feature, event))
        for group, (time, seq) in batch.watermarks.items():
            pair = (sender, group)
            mark = self.marks.get(pair)
            # a silent group's watermark advances in time with the same sequence (live input)
            if mark is not None and (time, seq) > (mark[0], mark[2]):
                self.marks[pair] = (time, group, seq)
        if batch.end:
            for pair in self.marks:
                if pair[0] == sender:
                    self.marks[pair] = (END_WATERMARK[0], pair[1], END_WATERMARK[1])
            self.metrics[sender] = dict(batch.metrics)
        for group, source_key, event in batch.late:
            self.late[group] += 1
            if self._on_late is not None:
                self._on_late(self._by_key[source_key], event)
        self.release()

    def release(self) -> None:
        """Deliver every record at or below the lowest watermark, in single-process order."""
        if not self.marks:
            return
        bound = min(self.marks.values())
        heap = []
        for pair, queue in self.queues.items():
            if queue and queue[0][0] <= bound:
                heap.append((*queue[0][:3], pair))
        if not heap:
            return
        heapq.heapify(heap)
        queues = self.queues
        current = None
        dirty = False
        latest = self._latest
        slot = self._slot
        on_event = self._on_event
        combine = self._combine
        while heap:
            key, _, _, pair = heap[0]
            queue = queues[pair]
            _, _, _, feature, event = queue.popleft()
            if queue and queue[0][0] <= bound:
                heapq.heapreplace(heap, (*queue[0][:3], pair))
            else:
                heapq.heappop(heap)
            if key != current:
                if dirty:
                    self._emit()
                current = key
                dirty = False
            self.records += 1
            if on_event is not None:
                on_event(feature, event)
            if combine:
                index = slot[feature]
                if latest[index] is None:
                    self._missing -= 1
                latest[index] = (feature, event)
                dirty = True
        if dirty:
            self._emit()

    def _emit(self) -> None:
        if self._missing == 0:
            self.outputs += 1
            if self._on_combined is not None:
                self._on_combined(tuple(self._latest))  # type: ignore[arg-type]
