"""The manager and worker actors (plain classes; :func:`ray.remote` is applied at launch)."""

from __future__ import annotations

import logging
import os
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
    known before anything starts: with the ``zmq`` transport on the address of the node the
    actor runs on (``ray.util.get_node_ip_address()``), so that workers on other nodes reach it.

    :param request: the run request (config, strategy, worker count, plan fingerprint, ...).
    :param index: this worker's index in the plan.
    """

    def __init__(self, request: ScaledRunRequest, index: int) -> None:
        import ray

        plugins = get_plugins()
        self.index = index
        self.node = ray.get_runtime_context().get_node_id()
        plan = plan_for_request(request, plugins)
        options = {k: v for k, v in request.transport_options.items() if k != "port"}
        if request.transport == "zmq":
            options.setdefault("host", ray.util.get_node_ip_address())
        self.transport = make_transport(request.transport, options, plugins)
        self.runtime = WorkerRuntime(
            plan,
            index,
            self.transport,
            plugins=plugins,
            own_process=True,
            **request.worker_options(),
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

    def drain(self) -> None:
        """Stop taking input and finish cleanly (:meth:`WorkerRuntime.drain`)."""
        self.runtime.drain()

    def request_barrier(self, checkpoint_id: int) -> None:
        """Take checkpoint barrier ``checkpoint_id`` (:meth:`WorkerRuntime.request_barrier`)."""
        self.runtime.request_barrier(checkpoint_id)

    def commit(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` committed (:meth:`WorkerRuntime.commit`)."""
        self.runtime.commit(checkpoint_id)

    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        return os.getpid()

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
                self._stopped = {**self.runtime.stop(ok=ok), "node": self.node}
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
                [
                    w.connect.remote(known, self.request.driver_address_for(index))
                    for index, w in enumerate(self.workers)
                ],
                timeout=self.timeout,
            )
            ray.get([w.start.remote() for w in reversed(self.workers)], timeout=self.timeout)
        except BaseException:
            self.stop(ok=False)
            raise

    def poll(self, timeout: float = 2.0) -> list[tuple[int, str]]:
        """The failures of workers: ``(index, error)`` for each failed or dead worker. A worker
        that does not answer within ``timeout`` is skipped (the driver's heartbeat timeout
        names a hung worker)."""
        import ray

        failures = []
        refs = {index: worker.status.remote() for index, worker in enumerate(self.workers)}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
        done = set(ready)
        for index, ref in refs.items():
            if ref not in done:
                continue
            try:
                _, failure, metrics = ray.get(ref)
            except ray.exceptions.RayActorError as error:
                failures.append((index, f"worker {index} died: {type(error).__name__}: {error}"))
                continue
            self.metrics[index] = metrics
            if failure is not None:
                failures.append((index, failure))
        return failures

    def drain(self) -> None:
        """Ask every worker to stop taking input and finish cleanly (returns at once)."""
        for worker in self.workers:
            worker.drain.remote()

    def request_barrier(self, checkpoint_id: int) -> None:
        """Ask every worker for checkpoint barrier ``checkpoint_id`` (returns at once)."""
        for worker in self.workers:
            worker.request_barrier.remote(checkpoint_id)

    def commit(self, checkpoint_id: int, wait: bool = False) -> None:
        """Tell every worker checkpoint ``checkpoint_id`` committed; with ``wait``, return
        once they all published their segments of it."""
        import ray

        refs = [worker.commit.remote(checkpoint_id) for worker in self.workers]
        if wait:
            ray.get(refs, timeout=self.timeout)

    def pids(self) -> list[int]:
        """Every worker's process id (tests kill one)."""
        import ray

        return list(ray.get([w.pid.remote() for w in self.workers], timeout=self.timeout))

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
        # a failed run does not wait long for a hung worker: it is killed below
        timeout = self.timeout if ok else min(self.timeout, 3.0)
        answered = dict(enumerate(self.workers))
        for name in ("stop", "stats"):
            refs = {
                i: (w.stop.remote(ok) if name == "stop" else w.stats.remote())
                for i, w in answered.items()
            }
            ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
            done = set(ready)
            for index, ref in refs.items():
                try:
                    if ref not in done:
                        raise TimeoutError(f"no answer within {timeout:g} s")
                    value = ray.get(ref)
                except Exception as error:
                    logger.warning("worker %d did not %s cleanly: %s", index, name, error)
                    answered.pop(index)
                    if name == "stop":
                        failed.append(f"worker {index}: {error}")
                    continue
                if name == "stop":
                    self.metrics[index] = value
                else:
                    self.live[index] = value
        for index, worker in enumerate(self.workers):
            try:
                ray.kill(worker)
            except Exception as error:
                logger.warning("cannot kill worker %d: %s", index, error)
        self.workers = []
        if failed and ok and self.request.outputs is not None:
            raise ScalingError("stopping the workers failed: " + "; ".join(failed))
        return dict(self.metrics)
