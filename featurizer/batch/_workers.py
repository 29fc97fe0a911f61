"""Backfill parts computed outside the calling process: forked local processes or Ray tasks.

A worker computes one :class:`~featurizer.batch._parts.Part` with a
:class:`~featurizer.batch.Backfill` and writes its rows as an Arrow IPC stream (no encoding:
the batches' buffers as they are) into a file the caller reads back memory-mapped. Whatever
goes wrong in a worker (an exception, or the process dying) comes back as one
:class:`BackfillPartError` naming the part, its range and the cause.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from featurizer._errors import FeaturizerError

if TYPE_CHECKING:
    import pyarrow as pa

    from featurizer.batch._parts import Part

__all__ = [
    "BackfillPartError",
    "LocalWorker",
    "PartResult",
    "RayWorker",
    "RayWorkers",
    "compute_part",
    "describe",
    "fork_available",
    "guarded",
    "part_error",
    "read_part",
]


class BackfillPartError(FeaturizerError):
    """A part of a parallel backfill failed (its feature raised, its data is damaged, or its
    process died).

    :param message: ``part I of N (T0 to T1): cause``.
    :param part: the failed part's index (0 for the first range).
    """

    def __init__(self, message: str, *, part: int) -> None:
        super().__init__(message)
        self.part = part


def _one_line(text: str) -> str:
    return " ".join(text.split())


def part_error(part: Part, cause: str) -> BackfillPartError:
    """The error of ``part``, its cause made one line."""
    return BackfillPartError(f"{part.label}: {_one_line(cause)}", part=part.index)


def describe(error: BaseException) -> str:
    """An exception as ``Type: message`` (featurizer's own errors: just the message)."""
    if isinstance(error, FeaturizerError):
        return str(error)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@attrs.frozen(kw_only=True)
class PartResult:
    """A worker's part, computed.

    :param path: the Arrow IPC stream of its rows (``None``: no rows).
    :param rows: rows written.
    :param events_in: input events computed (warm-up included).
    :param restarts: warm-up extensions.
    :param warnings: the warnings it issued, as ``(category, message)``.
    """

    path: str | None
    rows: int
    events_in: int
    restarts: int
    warnings: tuple[tuple[type[Warning], str], ...] = ()


def compute_part(part: Part, root: str, path: str, options: dict[str, Any]) -> PartResult:
    """Compute ``part`` into the Arrow IPC stream ``path`` (runs in a worker)."""
    import pyarrow as pa

    from featurizer.batch._backfill import Backfill

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        writer: pa.ipc.RecordBatchStreamWriter | None = None
        schema: pa.Schema | None = None
        rows = 0
        try:
            with Backfill(
                part.config,
                root,
                start=part.start,
                end=part.end,
                part_floor=part.floor,
                **options,
            ) as job:
                for table in job:
                    if writer is None or schema is None:
                        schema = table.schema
                        writer = pa.ipc.new_stream(path, schema)
                    writer.write_table(table.cast(schema))
                    rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()
    return PartResult(
        path=path if writer is not None else None,
        rows=rows,
        events_in=job.events_in,
        restarts=job.restarts,
        warnings=tuple((w.category, str(w.message)) for w in caught),
    )


def guarded(part: Part, root: str, path: str, options: dict[str, Any]) -> tuple[str, Any]:
    """:func:`compute_part`, its failure returned as ``("error", cause)`` (never raised, so
    that no exception object has to survive pickling)."""
    try:
        return ("ok", compute_part(part, root, path, options))
    except BaseException as error:  # every failure reaches the caller, as text
        return ("error", describe(error))


def read_part(result: PartResult) -> Iterator[pa.Table]:
    """A worker's rows, a chunk at a time (memory-mapped: nothing is copied)."""
    import pyarrow as pa

    if result.path is None:
        return
    reader = pa.ipc.open_stream(pa.memory_map(result.path))
    for batch in reader:
        if batch.num_rows:
            yield pa.Table.from_batches([batch])


def _die_with(parent: int) -> None:
    """Have this worker killed when the caller dies, even by SIGKILL (Linux: the parent-death
    signal); elsewhere a worker of a killed caller finishes its part and exits on the broken
    pipe."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the caller died before the signal was armed
        os._exit(1)


def _serve(
    connection: Any, part: Part, root: str, path: str, options: dict[str, Any], parent: int
) -> None:
    """A local worker's body: compute the part, send the outcome."""
    _die_with(parent)
    connection.send(guarded(part, root, path, options))
    connection.close()


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"its worker process died (killed by {name}) before finishing the part"
    return f"its worker process died (exit code {exitcode}) before finishing the part"


def fork_available() -> bool:
    """Whether workers can be forked: a POSIX caller with no other threads (a forked copy of
    a thread holding a lock would hold it forever)."""
    return hasattr(os, "fork") and threading.active_count() == 1


class _Worker:
    """A part being computed elsewhere; its outcome is ``("ok", PartResult)`` or
    ``("error", cause)`` once :meth:`_settle` found it."""

    part: Part
    _outcome: tuple[str, Any] | None

    def _settle(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (``None``: for ever) for the outcome; whether there
        is one."""
        raise NotImplementedError

    def failure(self) -> BackfillPartError | None:
        """The part's error if it has already failed (does not wait)."""
        if self._settle(0) and self._outcome is not None and self._outcome[0] == "error":
            return part_error(self.part, self._outcome[1])
        return None

    def result(self) -> PartResult:
        """Wait for the part.

        :raises BackfillPartError: if it failed.
        """
        self._settle(None)
        assert self._outcome is not None
        status, payload = self._outcome
        if status == "error":
            raise part_error(self.part, payload)
        result: PartResult = payload
        return result

    def stop(self) -> None:
        """Stop the computation if it still runs."""
        raise NotImplementedError


class LocalWorker(_Worker):
    """One part computed in a local process (forked from the caller where possible, so it
    starts with the caller's imports and plugins; else spawned)."""

    def __init__(
        self, part: Part, root: str, path: str, options: dict[str, Any], *, fork: bool
    ) -> None:
        import multiprocessing

        self.part = part
        context: Any = multiprocessing.get_context("fork" if fork else "spawn")
        self._reader, writer = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_serve,
            args=(writer, part, root, path, options, os.getpid()),
            name=f"featurizer-backfill-part-{part.index}",
            daemon=True,
        )
        self._process.start()
        writer.close()  # the child holds the only writing end: its death is the pipe's end
        self._outcome: tuple[str, Any] | None = None

    def _settle(self, timeout: float | None) -> bool:
        from multiprocessing.connection import wait

        if self._outcome is not None:
            return True
        if not wait([self._reader, self._process.sentinel], timeout):
            return False
        if self._reader.poll():
            try:
                self._outcome = self._reader.recv()
            except EOFError:
                self._outcome = None
        if self._outcome is None:
            self._process.join()
            self._outcome = ("error", _death(self._process.exitcode))
        self._process.join()
        return True

    def stop(self) -> None:
        """Kill the process if it still runs (this worker's own process, by its handle)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._reader.close()


class RayWorkers:
    """Parts computed as Ray tasks: on the running Ray, or on a local Ray on loopback with
    ``cpus`` CPUs and a small object store (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) that
    :meth:`stop` shuts down. The task writes its rows to a file: the caller must see the
    workers' file system (one machine, or a shared one)."""

    def __init__(self, cpus: int) -> None:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        try:
            import ray
        except ImportError as error:
            raise FeaturizerError(
                "the ray scaler needs Ray: pip install featurizer-ray (or ray)"
            ) from error
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(
                address="local",  # a Ray of our own, never whatever Ray runs on the machine
                num_cpus=cpus,
                object_store_memory=80 * 1024 * 1024,
                include_dashboard=False,
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
            )
        self._task = ray.remote(num_cpus=1, max_retries=0)(guarded)

    def start(self, part: Part, root: str, path: str, options: dict[str, Any]) -> RayWorker:
        """Submit one part."""
        return RayWorker(self._ray, part, self._task.remote(part, root, path, options))

    def stop(self) -> None:
        """Shut down the Ray this started."""
        if self._started:
            self._ray.shutdown()


class RayWorker(_Worker):
    """One part as a Ray task."""

    def __init__(self, ray: Any, part: Part, ref: Any) -> None:
        self._ray = ray
        self.part = part
        self._ref = ref
        self._outcome: tuple[str, Any] | None = None

    def _settle(self, timeout: float | None) -> bool:
        if self._outcome is not None:
            return True
        ready, _ = self._ray.wait([self._ref], timeout=timeout)
        if not ready:
            return False
        try:
            self._outcome = self._ray.get(self._ref)
        except self._ray.exceptions.RayError as error:  # the task's worker died
            lines = str(error).strip().splitlines()
            first = lines[0] if lines else ""
            self._outcome = (
                "error",
                f"its Ray worker died before finishing the part ({type(error).__name__}: {first})",
            )
        return True

    def stop(self) -> None:
        """Cancel the task if it still runs."""
        if self._outcome is None:
            self._ray.cancel(self._ref, force=True)
