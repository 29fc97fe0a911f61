"""A block writer's background work in a child process: the recording's thread keeps the GIL.

With ``BlockWriter(process=True)`` the writer forks once it is set up (root locked, WAL
recovered, session begun, before any of its threads starts). The **child** runs the writer's
usual WAL thread and publisher (encoding, WAL appends and fsyncs, blocks, snapshots, catalog
commits) on its own copy of the writer, with a catalog connection of its own. The **parent**
keeps the hot path unchanged; a *shipper* thread takes what the hot path recorded every
``sync_interval`` (the raw column buffers: numeric ones as bytes, other fields as values) and
writes it to a pipe, and a *receiver* thread reads the child's messages back: the number of
events acknowledged (after each WAL fsync: only then does the parent count them as
acknowledged), a failure, and the final counters. What the child does costs the recording's
thread no GIL time: only the shipping does (a copy of each buffer and one ``marshal`` call).

Lifecycle and failures:

* ``stop()`` ships the rest and a stop message; the child writes everything, closes the
  session, reports and exits; ``stop()`` returns once it has.
* A failure of the child (a full disk, an overlapping recording, a malformed field) is sent
  to the parent, which raises it where the threaded writer would (the hot path's
  backpressure, ``sync()``, ``stop()``).
* If the child dies, the parent's writer fails with an error naming it (what it acknowledged
  is in the WAL: the next writer or ``featurizer storage recover`` publishes it).
* If the parent dies, the child sees the pipe close before a stop message and exits at once,
  leaving the session open exactly as a crash of the threaded writer does (nothing it
  acknowledged is lost). The root's lock is held until both have exited.
* The child ignores ``SIGINT``, ``SIGTERM`` and ``SIGHUP`` (a terminal's Ctrl-C reaches the
  whole process group; a service manager may signal every process): the parent decides, and
  a stop it handles cleanly reaches the child as a stop message.

Fork needs a POSIX system; the child runs only the writer's own code (its threads start after
the fork), so locks other threads of the parent hold at that moment do not matter to it.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import pickle
import signal
import threading
from array import array
from typing import TYPE_CHECKING, Any

from featurizer.storage._errors import StorageError

try:
    import fcntl
except ImportError:  # (not POSIX: no writer process either)
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from featurizer.storage._writer import BlockWriter

__all__ = ["WriterProcess", "process_supported"]

logger = logging.getLogger(__name__)

_SIZE_BYTES = 8
_PIPE_BYTES = 1 << 20
"""The pipes' capacity asked for (Linux; fewer system calls, each a hand-over of the GIL)."""


def process_supported() -> bool:
    """Whether this platform can run a writer's work in a forked child process."""
    return hasattr(os, "fork") and hasattr(os, "waitpid")


def _send(fd: int, message: tuple[Any, ...]) -> None:
    """Write one message: its size and form, then its ``marshal`` form (``pickle`` for values
    ``marshal`` cannot hold), without copying it again."""
    try:
        form, payload = b"m", marshal.dumps(message)
    except ValueError:
        form, payload = b"p", pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    parts = [memoryview((len(payload) + 1).to_bytes(_SIZE_BYTES, "little") + form)]
    parts.append(memoryview(payload))
    while parts:
        written = os.writev(fd, parts)
        while parts and written >= len(parts[0]):
            written -= len(parts[0])
            parts.pop(0)
        if parts and written:
            parts[0] = parts[0][written:]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, _PIPE_BYTES))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int) -> tuple[Any, ...] | None:
    """The next message, or ``None`` once the other end closed the pipe."""
    header = _read_exact(fd, _SIZE_BYTES)
    if header is None:
        return None
    payload = _read_exact(fd, int.from_bytes(header, "little"))
    if payload is None:
        return None
    body = memoryview(payload)[1:]
    if payload[:1] == b"m":
        message: tuple[Any, ...] = marshal.loads(body)
    else:
        message = pickle.loads(body)
    return message


def _pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe()
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, set_size, _PIPE_BYTES)
    return read_end, write_end


def _failure_message(error: BaseException) -> tuple[Any, ...]:
    pickled: bytes | None = None
    with contextlib.suppress(Exception):
        candidate = pickle.dumps(error)
        pickle.loads(candidate)  # (an exception class may not rebuild from its arguments)
        pickled = candidate
    return ("failed", pickled, type(error).__name__, str(error))


def _failure_from(message: tuple[Any, ...]) -> BaseException:
    _, pickled, name, text = message
    if pickled is not None:
        with contextlib.suppress(Exception):
            error: BaseException = pickle.loads(pickled)
            return error
    return StorageError(f"the writer process failed: {name}: {text}")


class WriterProcess:
    """The parent's side of a writer whose background work runs in a forked child.

    Created by the writer once it is set up; forks at once (the child never returns from
    the constructor). The writer then runs :meth:`ship` as its background thread.

    :param writer: the writer (set up, none of its threads started).
    """

    def __init__(self, writer: BlockWriter) -> None:
        self.writer = writer
        data_read, data_write = _pipe()
        acks_read, acks_write = _pipe()
        # No catalog connection crosses the fork (SQLite's per-process lock bookkeeping would
        # be the child's too): this process's reopen when next used, the child's threads
        # open their own.
        writer.storage.catalog.close()
        try:
            pid = os.fork()
        except OSError as error:
            for fd in (data_read, data_write, acks_read, acks_write):
                os.close(fd)
            raise StorageError(
                f"cannot start the writer process: {error}; record with the writer's threads "
                "(storage.writer: thread, or --writer thread)",
                path=str(writer.storage.root),
            ) from error
        if pid == 0:  # the child
            code = 70
            try:
                os.close(data_write)
                os.close(acks_read)
                code = _Child(writer, data_read, acks_write).run()
            except BaseException as error:  # (reported already when it was the writer's)
                with contextlib.suppress(BaseException):
                    _send(acks_write, _failure_message(error))
            finally:
                os._exit(code)
        os.close(data_read)
        os.close(acks_write)
        logger.debug("writer process %d records session %s", pid, writer.session)
        self.pid = pid
        self._data = data_write
        self._acks = acks_read
        self._fields_shipped = {s.index: len(s.buffer.fields) for s in writer._series}
        self._samples_shipped: set[int] = set()
        self._finished = False
        self._receiver = threading.Thread(
            target=self._receive, name="featurizer-block-receiver", daemon=True
        )

    # the shipper thread ----------------------------------------------------------------

    def ship(self) -> None:
        """The writer's background thread in the parent: ship what the hot path recorded
        every ``sync_interval`` (at once when woken), then a stop message; wait for the child."""
        writer = self.writer
        self._receiver.start()
        try:
            while writer._failure is None:
                writer._wake.wait(writer.sync_interval)
                writer._wake.clear()
                stopping = writer._stopping or writer._rejected is not None
                message = self._take()
                if message is not None:
                    _send(self._data, message)
                if stopping:
                    break
            _send(self._data, ("stop",))
        except BrokenPipeError:
            pass  # the child is gone: waiting for it says how
        except BaseException as error:
            writer._fail(error)
        finally:
            os.close(self._data)  # (the child, if it has not seen a stop: as a crash)
            self._receiver.join()
            writer._stopped = True
            with writer._room:
                writer._room.notify_all()
            with writer._acked:
                writer._acked.notify_all()

    def _take(self) -> tuple[Any, ...] | None:
        """What the hot path recorded, as one message (``None`` if nothing)."""
        writer = self.writer
        taken = writer._take_order()
        if taken is None:
            return None
        parts = []
        for series in writer._series:
            count = taken.count(series.index)
            if not count:
                continue
            buffer = series.buffer
            ints, floats, others = buffer.take_raw(count)
            shipped = self._fields_shipped[series.index]
            new_fields = buffer.fields[shipped:]
            self._fields_shipped[series.index] = len(buffer.fields)
            sample = None
            if buffer.sample and series.index not in self._samples_shipped:
                self._samples_shipped.add(series.index)
                sample = list(buffer.sample[0])
            parts.append((series.index, ints, floats, others, new_fields, sample))
        return ("events", taken, parts)

    # the receiver thread ----------------------------------------------------------------

    def _receive(self) -> None:
        """Read the child's messages (acknowledgements, a failure, the final counters) until
        it exits, then reap it: a child that ends without reporting fails the writer at once."""
        writer = self.writer
        try:
            while True:
                message = _receive(self._acks)
                if message is None:
                    break
                kind = message[0]
                if kind == "acknowledged":
                    with writer._acked:
                        writer._acknowledged = message[1]
                        writer._acked.notify_all()
                    if writer.on_acknowledged is not None:
                        try:
                            writer.on_acknowledged(message[1])
                        except Exception as error:
                            writer._fail(error)
                elif kind == "failed":
                    writer._fail(_failure_from(message))
                elif kind == "finished":
                    writer.blocks_written, writer.bytes_written = message[1], message[2]
                    self._finished = True
        except BaseException as error:
            writer._fail(error)
        finally:
            os.close(self._acks)
            self._wait_child()
            with writer._room:
                writer._room.notify_all()
            with writer._acked:
                writer._acked.notify_all()

    def _wait_child(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        if self._finished and status == 0:
            return
        if os.WIFSIGNALED(status):
            how = f"was killed by signal {os.WTERMSIG(status)}"
        else:
            how = f"exited with status {os.waitstatus_to_exitcode(status)}"
        self.writer._fail(
            StorageError(
                f"the writer process (pid {self.pid}) {how} before it finished; what it "
                "acknowledged is in the WAL (the next writer or `featurizer storage recover` "
                "publishes it)",
                path=str(self.writer.storage.root),
            )
        )


class _Child:
    """The child's side: feed the shipped events to the writer's own WAL thread."""

    def __init__(self, writer: BlockWriter, data: int, acks: int) -> None:
        self.writer = writer
        self.data = data
        self.acks = acks
        self._send_lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            _send(self.acks, message)

    def run(self) -> int:
        """Serve until the stop message (0) or the parent's end (1: as a crash)."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        writer = self.writer
        writer.on_acknowledged = self._acknowledged
        writer._failure_listener = self._failed
        writer._thread.start()
        while True:
            message = _receive(self.data)
            if message is None:
                return 1
            if message[0] == "stop":
                break
            if writer._failure is None:
                self._append(message[1], message[2])
                self._wait_for_room()
        writer._stopping = True
        writer._wake.set()
        writer._thread.join()
        # Closing the last connections checkpoints the catalog's SQLite WAL into the database
        # file (what readers opening it immutable, as on a read-only mount, see).
        writer.storage.catalog.close()
        self.send(("finished", writer.blocks_written, writer.bytes_written))
        return 0

    def _acknowledged(self, total: int) -> None:
        self.send(("acknowledged", total))

    def _failed(self, error: BaseException) -> None:
        self.send(_failure_message(error))

    def _append(self, taken: bytes, parts: list[tuple[Any, ...]]) -> None:
        writer = self.writer
        for index, ints, floats, others, new_fields, sample in parts:
            buffer = writer._series[index].buffer
            for name, kind in new_fields:
                buffer.fields += ((name, kind),)
                buffer.encoder.add_field(name, kind)
            if sample is not None and not buffer.sample:
                buffer.sample.append(dict.fromkeys(sample))
            buffer.put_raw(ints, floats, others)
        order = writer._order
        if isinstance(order, array):
            order.frombytes(taken if isinstance(taken, bytes) else taken.tobytes())
        else:
            order.extend(taken)
        writer._wake.set()

    def _wait_for_room(self) -> None:
        writer = self.writer
        with writer._room:
            while len(writer._order) >= writer.max_pending and writer._thread.is_alive():
                writer._room.wait(0.05)
