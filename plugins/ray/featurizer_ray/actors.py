"""The manager and worker actors (plain classes; :func:`ray.remote` is applied at launch)."""

from __future__ import annotations

import logging
from typing import Any

from featurizer import get_plugins
from featurizer.scaling import (
    ScaledRunRequest,
    WorkerRuntime,
    make_transport,
    plan_for_request,
)

__all__ = ["FeaturizerStreamManagerActor", "FeaturizerStreamWorkerActor"]

logger = logging.getLogger(__name__)


class FeaturizerStreamWorkerActor:
    """One worker: rebuilds the plan from the config, runs its part of the graph.

    The constructor binds the worker's inbox (when it receives events) so that its address is
    known before anything starts.

    :param request: the run request (config, strategy, worker count, plan fingerprint, ...).
    :param index: this worker's index in the plan.
    """

    def __init__(self, request: ScaledRunRequest, index: int) -> None:
        plugins = get_plugins()
        self.index = index
        plan = plan_for_request(request, plugins)
        options = {k: v for k, v in request.transport_options.items() if k != "port"}
        self.transport = make_transport(request.transport, options, plugins)
        self.runtime = WorkerRuntime(
            plan,
            index,
            self.transport,
            options=request.options,
            plugins=plugins,
            make_emitters=request.make_emitters,
            watermark_delay=request.watermark_delay,
            flush_interval=request.flush_interval,
            outputs=request.outputs,
        )
        self._stopped: dict[str, Any] | None = None

    def address(self) -> str | None:
        """The worker's inbox address, or ``None`` when it receives nothing."""
        return self.runtime.address

    def connect(self, addresses: dict[int, str], driver: str) -> None:
        """Connect outboxes to the other workers and the driver, then build the emitters."""
        self.runtime.connect(addresses, driver)
        self.runtime.build_emitters()

    def start(self) -> None:
        """Start the emitters and the worker's threads."""
        self.runtime.start()

    def status(self) -> tuple[bool, str | None, dict[str, Any]]:
        """``(finished, failure, metrics)``."""
        return self.runtime.finished(), self.runtime.failure(), self.runtime.metrics()

    def received_stats(self) -> dict[int, dict[str, int | None]]:
        """What the worker received, per sending worker (batches, records, bytes)."""
        return self.runtime.received_stats()

    def stats(self) -> dict[str, Any]:
        """The worker's live counters (:meth:`WorkerRuntime.live_stats`); valid once stopped."""
        return self.runtime.live_stats()

    def stop(self, ok: bool = True) -> dict[str, Any]:
        """Stop everything and close sockets; returns the metrics (idempotent).

        :param ok: whether the run succeeded (worker-output mode: publish the worker's file,
            else delete it).
        """
        if self._stopped is None:
            try:
                self._stopped = self.runtime.stop(ok=ok)
            finally:
                self.transport.close()
        return self._stopped


class FeaturizerStreamManagerActor:
    """Creates the plan, starts and wires the worker actors, watches and stops them.

    :param request: the run request.
    :param worker_options: Ray options of each worker actor (``num_cpus``, ...).
    :param timeout: seconds to wait for any one step of the workers.
    """

    def __init__(
        self, request: ScaledRunRequest, worker_options: dict[str, Any], timeout: float = 60.0
    ) -> None:
        self.request = request
        self.plan = plan_for_request(request, get_plugins())
        self.worker_options = worker_options
        self.timeout = timeout
        self.workers: list[Any] = []
        self.metrics: dict[int, dict[str, Any]] = {}
        self.live: dict[int, dict[str, Any]] = {}

    def describe_plan(self) -> str:
        """The plan as ``featurizer plan`` prints it."""
        return self.plan.describe()

    def start(self) -> None:
        """Start one actor per worker, wire them, start the emitters; all or nothing."""
        import ray

        from featurizer_ray.scaler import remote_worker_class

        worker_class = remote_worker_class()
        try:
            self.workers = [
                worker_class.options(**self.worker_options).remote(self.request, index)
                for index in range(self.plan.size)
            ]
            addresses = ray.get([w.address.remote() for w in self.workers], timeout=self.timeout)
            known = {i: a for i, a in enumerate(addresses) if a is not None}
            ray.get(
                [w.connect.remote(known, self.request.driver_address) for w in self.workers],
                timeout=self.timeout,
            )
            ray.get([w.start.remote() for w in reversed(self.workers)], timeout=self.timeout)
        except BaseException:
            self.stop(ok=False)
            raise

    def poll(self) -> list[tuple[int, str]]:
        """The failures of workers: ``(index, error)`` for each failed or dead worker."""
        import ray

        failures = []
        for index, worker in enumerate(self.workers):
            try:
                _, failure, metrics = ray.get(worker.status.remote(), timeout=self.timeout)
            except ray.exceptions.RayActorError as error:
                failures.append((index, f"worker {index} died: {type(error).__name__}: {error}"))
                continue
            except ray.exceptions.GetTimeoutError:
                failures.append((index, f"worker {index} did not answer within {self.timeout} s"))
                continue
            self.metrics[index] = metrics
            if failure is not None:
                failures.append((index, failure))
        return failures

    def stats(self) -> dict[int, dict[str, Any]]:
        """Every worker's live counters, by index: all workers' ``received`` counts are read
        before any worker's other counts, so that no batch is counted as received and not as
        sent. Workers that do not answer keep their previous reading; once the workers are
        stopped, the final readings.
        """
        import ray

        if not self.workers:
            return dict(self.live)
        timeout = min(self.timeout, 10.0)
        received: dict[int, Any] = {}
        refs = {index: worker.received_stats.remote() for index, worker in enumerate(self.workers)}
        for index, ref in refs.items():
            try:
                received[index] = ray.get(ref, timeout=timeout)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as error:
                logger.debug("worker %d did not report its stats: %s", index, error)
        refs = {index: worker.stats.remote() for index, worker in enumerate(self.workers)}
        for index, ref in refs.items():
            try:
                stats = ray.get(ref, timeout=timeout)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as error:
                logger.debug("worker %d did not report its stats: %s", index, error)
                continue
            if index in received:
                stats["received"] = received[index]
                self.live[index] = stats
        return dict(self.live)

    def stop(self, ok: bool = True) -> dict[int, dict[str, Any]]:
        """Stop every worker (gathering metrics and final stats) and kill the actors.

        :param ok: whether the run succeeded (worker-output mode: workers publish their files,
            else delete them).
        :raises ScalingError: in worker-output mode with ``ok``, when a worker could not stop
            (its file may not be published); every actor is killed first.
        """
        import ray

        from featurizer.scaling import ScalingError

        failed: list[str] = []
        for index, worker in enumerate(self.workers):
            try:
                self.metrics[index] = ray.get(worker.stop.remote(ok), timeout=self.timeout)
            except Exception as error:
                logger.warning("worker %d did not stop cleanly: %s", index, error)
                failed.append(f"worker {index}: {error}")
        for index, worker in enumerate(self.workers):
            try:
                self.live[index] = ray.get(worker.stats.remote(), timeout=self.timeout)
            except Exception as error:
                logger.warning("worker %d did not report its final stats: %s", index, error)
        for index, worker in enumerate(self.workers):
            try:
                ray.kill(worker)
            except Exception as error:
                logger.warning("cannot kill worker %d: %s", index, error)
        self.workers = []
        if failed and ok and self.request.outputs is not None:
            raise ScalingError("stopping the workers failed: " + "; ".join(failed))
        return dict(self.metrics)
