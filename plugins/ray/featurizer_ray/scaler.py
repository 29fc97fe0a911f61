"""The ``ray`` scaler: connects to (or starts) Ray and runs the manager actor."""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from featurizer import Plugins
from featurizer.scaling import (
    FeatureStreamWorkerGraph,
    ScaledRun,
    ScaledRunRequest,
    Scaler,
    ScalingError,
    WorkerError,
)
from featurizer_ray.actors import FeaturizerStreamManagerActor, FeaturizerStreamWorkerActor

__all__ = ["RayScaler", "import_ray", "remote_manager_class", "remote_worker_class"]

logger = logging.getLogger(__name__)

_OPTIONS = {
    "address": None,
    "num_cpus": None,
    "object_store_memory": 150 * 1024 * 1024,
    "worker_cpus": 1.0,
    "timeout": 60.0,
    "node_ip_address": "127.0.0.1",
    "log_to_driver": False,
}


def import_ray() -> Any:
    """Import ray, making a locally started Ray bind the loopback address only.

    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` must be in the environment when ray is first
    imported for that (it is read at import); it is set unless the environment says otherwise.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ScalingError("the ray scaler needs ray: pip install featurizer-ray") from error
    return ray


@functools.cache
def remote_worker_class() -> Any:
    """:class:`FeaturizerStreamWorkerActor` as a Ray actor class."""
    return import_ray().remote(FeaturizerStreamWorkerActor)


@functools.cache
def remote_manager_class() -> Any:
    """:class:`FeaturizerStreamManagerActor` as a Ray actor class."""
    return import_ray().remote(FeaturizerStreamManagerActor)


class RayScaler(Scaler):
    """Runs the workers as Ray actors.

    Without ``address`` it uses the Ray already initialised in this process, or starts a local
    one (``num_cpus``, ``object_store_memory``, no dashboard, bound to ``node_ip_address``) and
    shuts it down when the run ends. With ``address`` it connects to that cluster and fails
    fast, before anything starts, when it cannot be reached.

    :param options: ``address``, ``num_cpus``, ``object_store_memory`` (bytes, default 150 MB),
        ``worker_cpus`` (CPUs each worker actor reserves, default 1), ``timeout`` (seconds for
        each step of starting and stopping, default 60), ``node_ip_address`` (default
        ``127.0.0.1``), ``log_to_driver`` (default false).
    :raises ScalingError: for unknown options or an unreachable address.
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        unknown = sorted(set(options or {}) - set(_OPTIONS))
        if unknown:
            raise ScalingError(
                f"ray scaler: unknown option {unknown[0]!r} (valid: {', '.join(_OPTIONS)})"
            )
        self.options = {**_OPTIONS, **{k: v for k, v in (options or {}).items() if v is not None}}
        self._address_from = "--address"
        if self.options["address"] is None and os.environ.get("RAY_ADDRESS"):
            # ray.init() would follow RAY_ADDRESS anyway: say so, and check it like --address
            self.options["address"] = os.environ["RAY_ADDRESS"]
            self._address_from = "RAY_ADDRESS"
        self._started_ray = False
        self._ray = import_ray()
        self._connect()

    def _connect(self) -> None:
        ray = self._ray
        address = self.options["address"]
        if ray.is_initialized():
            if address is not None:
                logger.info("ray is already initialised; ignoring address %r", address)
            return
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": bool(self.options["log_to_driver"]),
            "ignore_reinit_error": True,
        }
        if address is None:
            kwargs.update(
                address="local",  # a Ray of our own, never whatever Ray runs on the machine
                num_cpus=self.options["num_cpus"] or os.cpu_count() or 1,
                object_store_memory=int(self.options["object_store_memory"]),
                _node_ip_address=self.options["node_ip_address"],
            )
        else:
            _check_reachable(str(address), float(self.options["timeout"]), self._address_from)
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except Exception as error:
            try:
                ray.shutdown()
            except Exception:
                logger.debug("ray.shutdown() after a failed init raised", exc_info=True)
            where = (
                f"the Ray cluster at {address!r} (from {self._address_from})"
                if address
                else "a local Ray"
            )
            raise ScalingError(
                f"ray scaler: cannot connect to {where}: {type(error).__name__}: {error}"
            ) from error
        self._started_ray = True

    def launch(
        self, request: ScaledRunRequest, plan: FeatureStreamWorkerGraph, plugins: Plugins
    ) -> ScaledRun:
        """Check the cluster has room, start the manager and let it start the workers."""
        ray = self._ray
        if request.config is None:
            raise ScalingError(
                "the ray scaler rebuilds features in each actor from a FeaturizerConfig; pass "
                "a config, not Feature objects"
            )
        worker_cpus = float(self.options["worker_cpus"])
        total = ray.cluster_resources().get("CPU", 0.0)
        if plan.size * worker_cpus > total:
            raise ScalingError(
                f"ray scaler: {plan.size} workers need {plan.size * worker_cpus:g} CPUs "
                f"(worker_cpus={worker_cpus:g}) but the cluster has {total:g}; use fewer "
                f"workers or a smaller worker_cpus"
            )
        timeout = float(self.options["timeout"])
        manager = (
            remote_manager_class()
            .options(num_cpus=0)
            .remote(request, {"num_cpus": worker_cpus}, timeout)
        )
        try:
            ray.get(manager.start.remote(), timeout=timeout * 3)
        except Exception as error:
            _kill(ray, manager)
            raise _as_scaling_error(error) from error
        return _RayRun(ray, manager, timeout, outputs=request.outputs is not None)

    def driver_host(self) -> str | None:
        """With ``address`` (a cluster), this machine's address as Ray sees it: the driver's
        inboxes bind there so that workers on other nodes reach them."""
        if self.options["address"] is None:
            return None
        host = str(self._ray.util.get_node_ip_address())
        return None if host in ("127.0.0.1", "localhost", "::1") else host

    def close(self) -> None:
        """Shut Ray down if this scaler started it."""
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False


def _check_reachable(address: str, timeout: float, source: str = "--address") -> None:
    """Fail fast for a ``host:port`` Ray cannot reach (ray.init itself retries for minutes)."""
    target = address.split("://", 1)[-1]
    if target == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=min(timeout, 5.0)):
            return
    except (OSError, ValueError) as error:
        raise ScalingError(
            f"ray scaler: cannot reach the Ray cluster at {address!r} (from {source}): {error}; "
            f"check {source} (host:port of the head node's GCS, e.g. 127.0.0.1:6379)"
            + ("; unset RAY_ADDRESS to start a local Ray" if source == "RAY_ADDRESS" else "")
        ) from error


def _as_scaling_error(error: BaseException) -> ScalingError:
    cause = getattr(error, "cause", None)
    if isinstance(cause, ScalingError):
        return cause
    if isinstance(error, ScalingError):
        return error
    return ScalingError(f"ray scaler: starting the workers failed: {type(error).__name__}: {error}")


def _kill(ray: Any, actor: Any) -> None:
    try:
        ray.kill(actor)
    except Exception:
        logger.debug("killing an actor failed", exc_info=True)


class _RayRun(ScaledRun):
    def __init__(self, ray: Any, manager: Any, timeout: float, *, outputs: bool = False) -> None:
        self._ray = ray
        self._outputs = outputs
        self._manager = manager
        self._timeout = timeout
        self._metrics: dict[int, dict[str, Any]] | None = None
        self._final_stats: dict[int, dict[str, Any]] | None = None
        self._polling: Any = None

    def stats(self) -> dict[int, dict[str, Any]]:
        """The workers' live counters, through the manager (one remote call; the driver makes
        it from its metrics thread); after :meth:`stop`, the final ones."""
        if self._final_stats is not None:
            return self._final_stats
        ray = self._ray
        try:
            stats: dict[int, dict[str, Any]] = ray.get(
                self._manager.stats.remote(), timeout=min(self._timeout, 10.0)
            )
        except Exception as error:
            if self._final_stats is not None:  # stopped meanwhile
                return self._final_stats
            raise ScalingError(f"ray scaler: cannot read the workers' stats: {error}") from error
        return stats

    def poll(self) -> None:
        """Check the answer of the previous poll, if it came, and ask again (never blocks:
        a hung worker is named by the driver's heartbeat timeout)."""
        ray = self._ray
        if self._polling is None:
            self._polling = self._manager.poll.remote()
            return
        ready, _ = ray.wait([self._polling], timeout=0)
        if not ready:
            return
        ref, self._polling = self._polling, self._manager.poll.remote()
        try:
            failures = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            raise WorkerError(f"the manager actor died: {error}") from error
        if failures:
            index, detail = failures[0]
            raise WorkerError(detail, worker=index, detail=detail)

    def request_barrier(self, checkpoint_id: int) -> None:
        """Ask the workers for a barrier through the manager (returns at once)."""
        self._manager.request_barrier.remote(checkpoint_id)

    def commit(self, checkpoint_id: int) -> None:
        """Tell the workers a checkpoint committed (returns at once; the calls keep their
        order, so every segment is published before the workers stop)."""
        self._manager.commit.remote(checkpoint_id)

    def worker_pids(self) -> list[int]:
        """The workers' process ids (tests kill one by PID)."""
        return list(self._ray.get(self._manager.pids.remote(), timeout=self._timeout))

    def drain(self) -> None:
        try:
            self._ray.get(self._manager.drain.remote(), timeout=min(self._timeout, 10.0))
        except Exception as error:
            raise ScalingError(f"ray scaler: cannot tell the workers to stop: {error}") from error

    def stop(self, ok: bool = True) -> dict[int, dict[str, Any]]:
        if self._metrics is None:
            ray = self._ray
            failure: BaseException | None = None
            try:
                self._metrics = ray.get(self._manager.stop.remote(ok), timeout=self._timeout * 2)
            except Exception as error:
                logger.warning("the manager did not stop cleanly: %s", error)
                self._metrics = {}
                failure = error
            try:
                self._final_stats = ray.get(self._manager.stats.remote(), timeout=self._timeout)
            except Exception as error:
                logger.warning("the manager did not report the final stats: %s", error)
                self._final_stats = {}
            _kill(ray, self._manager)
            if failure is not None and ok and self._outputs:  # files may not be published
                cause = getattr(failure, "cause", None)
                if isinstance(cause, ScalingError):
                    raise cause from failure
                raise ScalingError(
                    f"ray scaler: stopping the workers failed: {type(failure).__name__}: {failure}"
                ) from failure
        return self._metrics
