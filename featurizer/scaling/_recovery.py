"""The driver's side of checkpoint barriers: ask for them, align, commit.

Every ``every`` seconds (once the previous one committed) the driver asks every worker for
barrier ``N``; with an interval in input events, when the input events the workers report
with their batches (each its own count so far) cross the next multiple of it. The workers
read the sources, so the driver learns their counts with a delay (a batch or a heartbeat,
every 0.5 s at most): the checkpoints come *about* every N events.

A worker's barrier batch on its channel to the driver carries its acknowledgement; from then
on the driver stops reading that worker's channel (it is aligned) until every worker's
barrier arrived or its channel ended (an ended worker's last batch carries its
acknowledgement as an ended worker). At that moment the collector holds exactly
what the workers sent before the cut: its state is snapshotted, the rows it released so far
are the checkpoint's output, and the checkpoint commits. Then the workers are told (they
publish their own output segments in worker-output mode), and the driver reads every channel
again.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from featurizer.scaling._barriers import load_ack
from featurizer.scaling._errors import TransportError
from featurizer.scaling._ordering import OutputCollector
from featurizer.scaling._transport import Batch

if TYPE_CHECKING:
    from featurizer.checkpoint._scaled import ScaledCheckpointer

__all__ = ["BarrierCoordinator"]

logger = logging.getLogger(__name__)


class BarrierCoordinator:
    """Barriers of one launched run (see the module docstring).

    :param checkpointer: commits.
    :param collector: the driver's collector.
    :param workers: the worker indexes.
    :param request: asks every worker for a barrier (``ScaledRun.request_barrier``).
    :param commit: tells every worker a checkpoint committed (``ScaledRun.commit``).
    """

    def __init__(
        self,
        checkpointer: ScaledCheckpointer,
        collector: OutputCollector,
        workers: list[int],
        request: Callable[[int], None],
        commit: Callable[[int], None],
    ) -> None:
        self.checkpointer = checkpointer
        self.collector = collector
        self.workers = workers
        self._request = request
        self._commit = commit
        self._every = checkpointer.due_every()
        self._due = time.monotonic() + self._every
        self._every_events = checkpointer.settings.every_events
        self._events: dict[int, int] = {}
        self._next_events = math.inf  # known once every worker reported its count
        self.in_flight: int | None = None
        self._started = 0.0
        self.aligned: dict[int, bytes] = {}
        self._ended: dict[int, bytes] = {}

    def count(self, index: int, events_in: int) -> None:
        """Worker ``index`` consumed ``events_in`` input events so far (from its batch)."""
        self._events[index] = events_in
        if (
            self._every_events is not None
            and self._next_events == math.inf
            and len(self._events) == len(self.workers)
        ):
            self._next_events = self._after(sum(self._events.values()))

    def _after(self, events: int) -> float:
        """The next multiple of the interval in events after ``events``."""
        assert self._every_events is not None
        return float((events // self._every_events + 1) * self._every_events)

    def tick(self, now: float) -> None:
        """Ask for the next barrier when it is due and none is in flight."""
        if self.in_flight is not None:
            return
        if now < self._due and sum(self._events.values()) < self._next_events:
            return
        self.in_flight = self.checkpointer.next_id
        self._started = time.perf_counter()
        self.aligned = dict(self._ended)
        self._request(self.in_flight)
        self._maybe_commit()

    def blocked(self, index: int) -> bool:
        """Whether the driver must not read worker ``index`` now (it is aligned)."""
        return index in self.aligned

    def taken(self, index: int, batch: Batch) -> None:
        """After the collector handled ``batch`` of worker ``index``."""
        if batch.end:
            self._ended[index] = batch.snapshot
            if self.in_flight is not None and index not in self.aligned:
                self.aligned[index] = batch.snapshot
                self._maybe_commit()
        elif batch.barrier:
            if batch.barrier != self.in_flight:
                raise TransportError(
                    f"worker {index} sent barrier {batch.barrier}, expected {self.in_flight}"
                )
            self.aligned[index] = batch.snapshot
            self._maybe_commit()

    def _maybe_commit(self) -> None:
        if self.in_flight is None or len(self.aligned) < len(self.workers):
            return
        number = self.in_flight
        self._commit_now(self.aligned, final=False)
        self._commit(number)
        self.in_flight = None
        self.aligned = {}
        self._due = time.monotonic() + self._every
        if self._next_events != math.inf:
            self._next_events = self._after(sum(self._events.values()))

    def _commit_now(self, raw: dict[int, bytes], *, final: bool) -> None:
        acks = {index: load_ack(data) for index, data in raw.items()}
        state = pickle.dumps(self.collector.snapshot(), protocol=pickle.HIGHEST_PROTOCOL)
        self.checkpointer.commit(acks, raw, state, started=self._started, final=final)

    def final(self) -> int:
        """Every worker ended: commit the final checkpoint (the rest of the output); returns
        its id (the workers publish their last segments when told so)."""
        number = self.checkpointer.next_id
        if self.in_flight is None:
            self._started = time.perf_counter()
        self._commit_now(dict(self._ended), final=True)
        self._commit(number)
        self.in_flight = None
        return number
