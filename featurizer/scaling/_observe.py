"""Live metrics of a scaled-out run: per-worker counters and per-channel transport stats, fed
to the driver's :class:`~featurizer.metrics.RunMetrics`.

Each channel of the plan (a worker to another worker, or to the driver) is one transport edge.
Its sender counts batches, records and bytes as it sends them and its receiver counts what it
takes, per batch (nothing is counted per event). Reading every receiver before any sender
keeps the numbers consistent: a batch counted as received is always counted as sent, so the
batches in flight (the edge's queue depth) are never negative.

In-process workers (the ``local`` scaler) are read at every scrape; remote ones (Ray actors)
are polled from a driver thread every ``interval`` seconds. The last reading, taken once the
workers stopped, is final: at the end of a run every edge's batches received equal its batches
sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from featurizer.scaling._plan import FeatureStreamWorkerGraph
from featurizer.scaling._worker import DRIVER

if TYPE_CHECKING:
    from featurizer.metrics import RunMetrics
    from featurizer.scaling._driver import ScaledRun
    from featurizer.scaling._ordering import OutputCollector

__all__ = ["ScaledRunObserver", "plan_channels"]

logger = logging.getLogger(__name__)

_Reading = tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]
"""``(what the driver received by sending worker, every worker's live stats by index)``."""


def plan_channels(plan: FeatureStreamWorkerGraph) -> list[tuple[int, int]]:
    """Every channel of a plan, ``(sender, receiver)``, :data:`DRIVER` for the driver: each
    worker sends to the driver and to every worker it ships features to.

    >>> from featurizer import Feature, get_plugins
    >>> from featurizer.scaling import build_plan
    >>> from featurizer.testing import ExampleMid, ExampleTicker
    >>> mids = [Feature.create(ExampleMid, {}, {"ticker": Feature.create(
    ...     ExampleTicker, {"exchange": "x", "symbol": s})}) for s in "AB"]
    >>> plan_channels(build_plan(mids, "by_source", 2, get_plugins()))
    [(0, -1), (1, -1)]
    """
    channels = []
    for worker in plan.workers:
        channels.append((worker.index, DRIVER))
        targets = sorted({t for ts in plan.targets(worker.index).values() for t in ts})
        channels.extend((worker.index, target) for target in targets)
    return channels


def _end(index: int) -> str:
    return "driver" if index == DRIVER else str(index)


def _edge_name(sender: int, receiver: int) -> str:
    return f"worker {sender} -> {'driver' if receiver == DRIVER else f'worker {receiver}'}"


class ScaledRunObserver:
    """Feeds a run's metrics with its workers' counters and its channels' transport stats.

    :meth:`register` (before the launch: the edges and workers appear at once, empty), then
    :meth:`bind` the launched run, and :meth:`close` once its workers stopped.

    :param run_metrics: the driver's metrics.
    :param plan: the plan.
    :param transport: the transport's name (a label of every edge).
    :param interval: seconds between polls of remote workers.
    """

    def __init__(
        self,
        run_metrics: RunMetrics,
        plan: FeatureStreamWorkerGraph,
        transport: str,
        *,
        interval: float = 0.5,
    ) -> None:
        self.run_metrics = run_metrics
        self.plan = plan
        self.transport = transport
        self.interval = interval
        self._launched: ScaledRun | None = None
        self._bytes_received: Callable[[], Mapping[int, int] | None] | None = None
        self._collector: OutputCollector | None = None
        self._reading: _Reading | None = None
        self._final = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> None:
        """Add one transport edge per channel and one worker per worker to the metrics."""
        for sender, receiver in plan_channels(self.plan):
            self.run_metrics.add_transport_edge(
                _edge_name(sender, receiver),
                self.transport,
                self._edge_reader(sender, receiver),
                sender=_end(sender),
                receiver=_end(receiver),
            )
        for worker in self.plan.workers:
            self.run_metrics.add_worker(str(worker.index), self._worker_reader(worker.index))

    def bind(
        self,
        launched: ScaledRun,
        bytes_received: Callable[[], Mapping[int, int] | None],
        collector: OutputCollector,
    ) -> None:
        """Start reading a launched run (polling it from a thread unless it is in-process).

        :param launched: the run.
        :param bytes_received: the bytes the driver received per worker so far (``None`` when
            its transport does not count them).
        :param collector: the driver's collector (batches and records received per worker).
        """
        self._launched, self._bytes_received, self._collector = launched, bytes_received, collector
        if not launched.stats_in_process and self._thread is None:  # bound again: a restart
            self._thread = threading.Thread(
                target=self._poll_loop, name="featurizer-scaled-metrics", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop polling and take the final reading (call it once the workers stopped; it
        never raises)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
        if self._launched is None:
            return
        try:
            reading = self._fresh()
        except Exception:
            logger.debug("the final reading of the workers' stats failed", exc_info=True)
            return
        with self._lock:
            self._reading = reading
            self._final = True

    # -- reading -----------------------------------------------------------------------------

    def _fresh(self) -> _Reading:
        """Read the driver's side, then every worker (receivers before senders)."""
        assert self._launched is not None and self._collector is not None
        inbox_bytes = self._bytes_received() if self._bytes_received is not None else None
        driver = {
            sender: {
                "batches": channel.expected,
                "records": channel.received,
                "bytes": None if inbox_bytes is None else inbox_bytes.get(sender, 0),
            }
            for sender, channel in self._collector.channels.items()
        }
        return driver, dict(self._launched.stats())

    def _poll_loop(self) -> None:
        while True:
            try:
                reading = self._fresh()
            except Exception:
                logger.debug("polling the workers' stats failed", exc_info=True)
            else:
                with self._lock:
                    if not self._final:
                        self._reading = reading
            if self._stop.wait(self.interval):
                return

    def _read(self) -> _Reading | None:
        with self._lock:
            launched = self._launched
            if self._final or launched is None or not launched.stats_in_process:
                return self._reading
        return self._fresh()

    def _edge_reader(self, sender: int, receiver: int) -> Callable[[], dict[str, Any] | None]:
        def read() -> dict[str, Any] | None:
            reading = self._read()
            if reading is None:
                return None
            driver, workers = reading
            sent = _get(_get(workers.get(sender), "sent"), receiver)
            if receiver == DRIVER:
                got = driver.get(sender)
            else:
                got = _get(_get(workers.get(receiver), "received"), sender)
            stats: dict[str, Any] = {}
            if sent is not None:
                stats.update(batches=sent["batches"], records=sent["records"], bytes=sent["bytes"])
            if got is not None:
                stats.update(
                    batches_received=got["batches"],
                    records_received=got["records"],
                    bytes_received=got["bytes"],
                )
            if sent is not None and got is not None:
                stats["queue_depth"] = max(0, sent["batches"] - got["batches"])
            return stats

        return read

    def _worker_reader(self, index: int) -> Callable[[], Mapping[str, Any] | None]:
        def read() -> Mapping[str, Any] | None:
            reading = self._read()
            return None if reading is None else reading[1].get(index)

        return read


def _get(mapping: Mapping[Any, Any] | None, key: Any) -> Any:
    return None if mapping is None else mapping.get(key)
