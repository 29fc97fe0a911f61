"""The local scaler's workers as processes of this machine (``LocalScaler({"processes": True})``).

Each worker runs in a process of its own, started with ``multiprocessing``'s ``spawn`` (a
fresh interpreter: nothing of the driver's threads is copied), over a transport that crosses
processes (``zmq``). The driver talks to each process over a pipe: one request at a time,
each answered (``address``, ``connect``, ``start``, ``barrier``, ``commit``, ``status``,
``stats``, ``drain``, ``stop``). A process whose driver went away (its end of the pipe
closed) exits at once. A process that dies (``kill -9``) is seen by :meth:`poll` through its
exit code: a :class:`~featurizer.scaling.WorkerError` naming the worker, its PID and the
signal.

The mode exists for what threads cannot show: a worker process killed by its PID, with the
same worker code the Ray actors run, without a Ray cluster. Each start (and each restart of a
checkpointed run) logs the PIDs at INFO: ``worker processes: worker 0 pid 1234, worker 1 pid
1235`` (``featurizer run -v ... --worker-processes``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from featurizer.scaling._driver import ScaledRun
from featurizer.scaling._errors import ScalingError, WorkerError
from featurizer.scaling._worker import WorkerRuntime, format_error

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from featurizer.scaling._driver import ScaledRunRequest

__all__ = ["ProcessRun", "start_processes"]

logger = logging.getLogger(__name__)


def _serve(request: ScaledRunRequest, index: int, conn: Connection) -> None:
    """A worker process: build the worker, then answer the driver's requests until ``stop``
    (or until the driver is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    from featurizer._plugins import get_plugins
    from featurizer.scaling._driver import make_transport, plan_for_request

    try:
        plugins = get_plugins()
        plan = plan_for_request(request, plugins)
        options = {k: v for k, v in request.transport_options.items() if k != "port"}
        transport = make_transport(request.transport, options, plugins)
        runtime = WorkerRuntime(
            plan, index, transport, plugins=plugins, own_process=True, **request.worker_options()
        )
    except BaseException as error:
        conn.send(("error", format_error(index, error)))
        return

    def connect(addresses: dict[int, str], driver: str) -> None:
        runtime.connect(addresses, driver)
        runtime.build_emitters()

    def status() -> tuple[bool, str | None, dict[str, Any]]:
        return runtime.finished(), runtime.failure(), runtime.metrics()

    handlers: dict[str, Callable[..., Any]] = {
        "address": lambda: runtime.address,
        "connect": connect,
        "start": runtime.start,
        "barrier": runtime.request_barrier,
        "commit": runtime.commit,
        "status": status,
        "received": runtime.received_stats,
        "stats": runtime.live_stats,
        "drain": runtime.drain,
        "stop": lambda ok: runtime.stop(ok=ok),
    }
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):  # the driver closed the pipe, or is gone: so is this worker
            os._exit(0)
        try:
            conn.send(("ok", handlers[name](*args)))
        except BaseException as error:
            conn.send(("error", format_error(index, error)))
        if name == "stop":
            transport.close()


class _Child:
    """The driver's end of one worker process."""

    def __init__(self, index: int, process: Any, conn: Connection, timeout: float) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.timeout = timeout
        self.lock = threading.Lock()

    def call(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Ask the worker; its answer, or :class:`WorkerError` (failed, dead or silent)."""
        with self.lock:
            try:
                self.conn.send((name, args))
                if not self.conn.poll(self.timeout if timeout is None else timeout):
                    raise WorkerError(
                        f"worker {self.index} (process {self.process.pid}) did not answer {name!r}",
                        worker=self.index,
                    )
                kind, value = self.conn.recv()
            except (EOFError, OSError) as error:
                raise WorkerError(self.death(), worker=self.index, detail=self.death()) from error
        if kind == "error":
            raise WorkerError(value, worker=self.index, detail=value)
        return value

    def death(self) -> str:
        """Why the process is gone (or that it is)."""
        self.process.join(0.5)
        code = self.process.exitcode
        how = (
            f"killed by {signal.Signals(-code).name}"
            if code is not None and code < 0
            else f"exit code {code}"
        )
        return f"worker {self.index} died: its process {self.process.pid} ended ({how})"


def start_processes(request: ScaledRunRequest, size: int, timeout: float) -> ProcessRun:
    """Start, wire and start every worker process; all or nothing.

    :raises ScalingError: when the workers cannot be started (every process is killed).
    """
    if request.config is None:
        raise ScalingError(
            "local worker processes rebuild the features from a FeaturizerConfig: pass a "
            "config, not Feature objects"
        )
    if request.transport == "inproc":
        raise ScalingError(
            "the inproc transport connects threads of one process, but these workers are "
            "processes: use transport 'zmq'"
        )
    if request.make_emitters is not None:
        raise ScalingError("local worker processes build their emitters from the config")
    context = multiprocessing.get_context("spawn")
    children: list[_Child] = []
    try:
        for index in range(size):
            parent, child = context.Pipe()
            process = context.Process(
                target=_serve,
                args=(request, index, child),
                name=f"featurizer-worker-{index}",
                daemon=True,
            )
            process.start()
            child.close()
            children.append(_Child(index, process, parent, timeout))
        addresses = {c.index: c.call("address") for c in children}
        known = {i: a for i, a in addresses.items() if a is not None}
        for c in children:
            c.call("connect", known, request.driver_address_for(c.index))
        for c in reversed(children):
            c.call("start")
        logger.info(
            "worker processes: %s",
            ", ".join(f"worker {c.index} pid {c.process.pid}" for c in children),
        )
    except BaseException:
        for c in children:
            c.process.kill()
            c.process.join(5.0)
        raise
    return ProcessRun(children)


class ProcessRun(ScaledRun):
    """A run whose workers are local processes (what :class:`LocalScaler` returns then)."""

    def __init__(self, children: list[_Child]) -> None:
        self.children = children
        self._metrics: dict[int, dict[str, Any]] | None = None
        self.live: dict[int, dict[str, Any]] = {}

    def worker_pids(self) -> list[int]:
        """The workers' process ids, by index."""
        return [int(c.process.pid) for c in self.children]

    def poll(self) -> None:
        for child in self.children:
            if not child.process.is_alive():
                death = child.death()
                raise WorkerError(death, worker=child.index, detail=death)
            _, failure, _ = child.call("status")
            if failure is not None:
                raise WorkerError(failure, worker=child.index, detail=failure)

    def stats(self) -> dict[int, dict[str, Any]]:
        if self._metrics is not None:
            return dict(self.live)
        try:
            received = {c.index: c.call("received", timeout=5.0) for c in self.children}
            for child in self.children:
                stats = child.call("stats", timeout=5.0)
                stats["received"] = received[child.index]
                self.live[child.index] = stats
        except WorkerError as error:
            raise ScalingError(f"cannot read the workers' stats: {error}") from error
        return dict(self.live)

    def request_barrier(self, checkpoint_id: int) -> None:
        for child in self.children:
            child.call("barrier", checkpoint_id)

    def commit(self, checkpoint_id: int) -> None:
        for child in self.children:
            child.call("commit", checkpoint_id)

    def drain(self) -> None:
        try:
            for child in self.children:
                child.call("drain")
        except WorkerError as error:
            raise ScalingError(f"cannot tell the workers to stop: {error}") from error

    def stop(self, ok: bool = True) -> dict[int, dict[str, Any]]:
        if self._metrics is not None:
            return self._metrics
        metrics: dict[int, dict[str, Any]] = {}
        failed: list[str] = []
        for child in self.children:
            if not child.process.is_alive():
                failed.append(child.death())
                continue
            try:
                metrics[child.index] = child.call("stop", ok, timeout=30.0 if ok else 5.0)
                self.live[child.index] = child.call("stats", timeout=5.0)  # the final reading
            except WorkerError as error:
                failed.append(str(error))
        for child in self.children:
            child.conn.close()  # the process exits when its pipe closes
            child.process.join(5.0)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(5.0)
        self._metrics = metrics
        if failed and ok:
            raise ScalingError("stopping the workers failed: " + "; ".join(failed))
        return metrics
