"""Transports: how batches of events travel between workers, and the in-process one.

A transport is a factory of *inboxes* (a worker's or the driver's receiving end, bound to an
address) and *outboxes* (a sending end connected to an inbox's address). Every channel is FIFO
and lossless; a full channel blocks the sender (backpressure) instead of growing memory.

What travels is a :class:`Batch`: records of one sender, the sender's per-group watermarks
after those records, and on the last batch of a channel the totals the receiver checks.
Transports that cross process boundaries serialise batches with :func:`encode_batch` (pickle
protocol 5 of plain tuples) and read them back with :func:`decode_batch`, which refuses any
object that is not plain data (no class is ever looked up), so a peer cannot make the receiver
run code. Features travel as their stable keys.
"""

from __future__ import annotations

import abc
import io
import itertools
import pickle
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

from featurizer.scaling._errors import TransportError

__all__ = [
    "Batch",
    "InProcessTransport",
    "Inbox",
    "Outbox",
    "Transport",
    "decode_batch",
    "encode_batch",
]

WIRE_VERSION = 3
"""Bumped whenever the serialised layout of :class:`Batch` changes."""

Watermark = tuple[float, int]
"""``(event time, sequence)`` of a group: every later record of the group has a greater key."""

END_WATERMARK: Watermark = (float("inf"), 2**62)
"""The watermark of a group that will send nothing more."""


@attrs.frozen(kw_only=True)
class Batch:
    """One transport message.

    :param sender: the sending worker's index (``-1`` for the driver).
    :param number: the batch's number on its channel, from 0 (checked for loss and order).
    :param keys: stable keys of the features the records refer to, by position.
    :param records: ``((time, group, sequence), feature position, event)`` tuples.
    :param watermarks: group rank to :data:`Watermark`, valid after these records.
    :param end: the last batch of the channel.
    :param total: on the last batch, how many records the channel carried in all.
    :param error: a worker's formatted error: the run must stop.
    :param late: input events that arrived behind the watermark, for the side output:
        ``(group, source key, event)``.
    :param metrics: on the last batch, the sender's counters.
    :param barrier: a checkpoint barrier (checkpointed runs): every record of the sender
        before the cut of checkpoint ``barrier`` is in this batch or an earlier one, none
        after it; ``0``: no barrier.
    :param snapshot: on a barrier batch to the driver, the sender's acknowledgement: its
        snapshot (plain data, pickled; see ``docs/fault-tolerance.md``).
    :param events_in: on a batch to the driver, the input events the sender consumed so far
        (a checkpointed run's driver counts them for ``--checkpoint-every N`` events).
    """

    sender: int
    number: int
    keys: tuple[str, ...] = ()
    records: list[tuple[Any, ...]] = attrs.field(factory=list)
    watermarks: Mapping[int, Watermark] = attrs.field(factory=dict)
    end: bool = False
    total: int = 0
    error: str | None = None
    late: list[tuple[Any, ...]] = attrs.field(factory=list)
    metrics: Mapping[str, Any] = attrs.field(factory=dict)
    barrier: int = 0
    snapshot: bytes = b""
    events_in: int = 0


def encode_batch(batch: Batch) -> bytes:
    """Serialise a batch (pickle protocol 5 of a plain tuple).

    >>> b = Batch(sender=0, number=3, keys=("k",), records=[((1.0, 0, 1), 0, {"x": 1.5})])
    >>> decode_batch(encode_batch(b)) == b
    True
    """
    return pickle.dumps(
        (
            WIRE_VERSION,
            batch.sender,
            batch.number,
            batch.keys,
            batch.records,
            dict(batch.watermarks),
            batch.end,
            batch.total,
            batch.error,
            batch.late,
            dict(batch.metrics),
            batch.barrier,
            batch.snapshot,
            batch.events_in,
        ),
        protocol=5,
    )


class _PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global: only plain data (dict, list, tuple, str, ...)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: transport batches carry plain data only"
        )


def decode_batch(data: bytes | memoryview) -> Batch:
    """Read a batch written by :func:`encode_batch`.

    :raises TransportError: for data that is not a batch of plain data of this wire version.
    """
    try:
        fields = _PlainDataUnpickler(io.BytesIO(data)).load()
    except Exception as exc:
        raise TransportError(f"cannot decode a transport batch: {exc}") from exc
    if not (isinstance(fields, tuple) and len(fields) == 14 and fields[0] == WIRE_VERSION):
        raise TransportError(
            f"expected a featurizer transport batch of wire version {WIRE_VERSION}, received "
            f"{str(fields)[:80]!r}"
        )
    (_, sender, number, keys, records, watermarks, end, total, error, late, metrics) = fields[:11]
    return Batch(
        sender=sender,
        number=number,
        keys=keys,
        records=records,
        watermarks=watermarks,
        end=end,
        total=total,
        error=error,
        late=late,
        metrics=metrics,
        barrier=fields[11],
        snapshot=fields[12],
        events_in=fields[13],
    )


class Outbox(abc.ABC):
    """The sending end of a channel."""

    address: str

    @abc.abstractmethod
    def send(self, batch: Batch, *, timeout: float | None = None) -> None:
        """Send a batch; blocks while the channel is full (backpressure).

        :param timeout: seconds to wait for room at most (``None``: for ever).
        :raises TransportError: on timeout or when the channel is closed.
        """

    @abc.abstractmethod
    def close(self, *, linger: float = 5.0) -> None:
        """Deliver what is queued (waiting ``linger`` seconds at most) and release the channel."""

    def bytes_sent(self) -> int | None:
        """Bytes of serialised batches handed to the channel so far (still valid once closed).

        :returns: the count, or ``None`` when the transport passes batches as objects (the
            default for transports that do not say).
        """
        return None


class Inbox(abc.ABC):
    """The receiving end: every outbox connected to :attr:`address` delivers here."""

    address: str

    @abc.abstractmethod
    def recv(self, timeout: float) -> Batch | None:
        """The next batch, or ``None`` after ``timeout`` seconds without one."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the address; safe to call twice."""

    def bytes_received(self) -> dict[int, int] | None:
        """Bytes of serialised batches received so far, by sending worker (still valid once
        closed); read from any thread.

        :returns: a copy of the counts, or ``None`` when the transport passes batches as
            objects (the default for transports that do not say).
        """
        return None


class Transport(abc.ABC):
    """A factory of inboxes and outboxes (one per process and run).

    :param options: transport options (``batch_size``, ``hwm``, ``host``, ``port``, ...).
    """

    #: records per batch a sender aims for
    batch_size: int = 1024

    @abc.abstractmethod
    def open_inbox(self, name: str, *, port: int | None = None) -> Inbox:
        """Bind a new inbox.

        :param name: a readable name (``"worker-1"``, ``"driver"``) for errors.
        :param port: a fixed port where the transport has ports (``None``: any free one).
        :raises TransportError: if the address cannot be bound (e.g. the port is in use).
        """

    @abc.abstractmethod
    def connect(self, address: str, name: str) -> Outbox:
        """Connect an outbox to an inbox's address.

        :raises TransportError: for an address of another transport or that cannot be reached.
        """

    def shared_options(self) -> dict[str, Any]:
        """Options every process of the run must use alike (e.g. security keys this transport
        generated); the driver's transport's are sent to every worker. Default: none."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the transport holds (contexts, threads)."""


class _Channel:
    def __init__(self, address: str, hwm: int) -> None:
        self.address = address
        self.queue: queue.Queue[Batch | bytes] = queue.Queue(maxsize=hwm)
        self.closed = threading.Event()


_registry: dict[str, _Channel] = {}
_registry_lock = threading.Lock()
_names = itertools.count()


class _InProcessInbox(Inbox):
    def __init__(self, channel: _Channel) -> None:
        self._channel = channel
        self.address = channel.address

    def recv(self, timeout: float) -> Batch | None:
        item = self.recv_item(timeout)
        if isinstance(item, bytes):  # from a serialising outbox of another transport object
            return decode_batch(item)
        return item

    def recv_item(self, timeout: float) -> Batch | bytes | None:
        try:
            return self._channel.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._channel.closed.set()
        with _registry_lock:
            if _registry.get(self.address) is self._channel:
                del _registry[self.address]


class _InProcessOutbox(Outbox):
    def __init__(self, channel: _Channel) -> None:
        self._channel = channel
        self.address = channel.address
        self._closed = False

    def send(self, batch: Batch | bytes, *, timeout: float | None = None) -> None:
        if self._closed:
            raise TransportError(f"outbox to {self.address} is closed", address=self.address)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._channel.closed.is_set():
                raise TransportError(
                    f"the inbox at {self.address} was closed", address=self.address
                )
            try:
                self._channel.queue.put(batch, timeout=0.05)
                return
            except queue.Full:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TransportError(
                        f"timed out after {timeout} s sending to {self.address} (the receiver "
                        f"does not keep up)",
                        address=self.address,
                    ) from None

    def close(self, *, linger: float = 5.0) -> None:
        self._closed = True


class InProcessTransport(Transport):
    """Bounded queues between threads of one process (tests, the ``local`` scaler).

    Addresses are ``inproc://featurizer-<n>`` and only valid inside the process. Batches are
    passed as objects, not serialised, unless ``serialise=True`` (tests of the wire format).

    :param options: ``hwm`` (batches queued per inbox before senders block, default 64),
        ``batch_size`` (records per batch, default 1024), ``serialise`` (default false).
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        opts = dict(options or {})
        self.hwm = int(opts.get("hwm", 64))
        self.batch_size = int(opts.get("batch_size", 1024))
        self.serialise = bool(opts.get("serialise", False))
        if self.hwm < 1 or self.batch_size < 1:
            raise TransportError(
                f"inproc transport: hwm and batch_size must be >= 1, received hwm={self.hwm}, "
                f"batch_size={self.batch_size}"
            )

    def open_inbox(self, name: str, *, port: int | None = None) -> Inbox:
        address = f"inproc://featurizer-{name}-{next(_names)}"
        channel = _Channel(address, self.hwm)
        with _registry_lock:
            _registry[address] = channel
        inbox = _InProcessInbox(channel)
        if self.serialise:
            return _SerialisingInbox(inbox)
        return inbox

    def connect(self, address: str, name: str) -> Outbox:
        with _registry_lock:
            channel = _registry.get(address)
        if channel is None:
            raise TransportError(
                f"inproc transport: no inbox is bound at {address!r} (for {name})", address=address
            )
        outbox = _InProcessOutbox(channel)
        if self.serialise:
            return _SerialisingOutbox(outbox)
        return outbox


class _SerialisingOutbox(Outbox):
    """Sends every batch as the bytes :func:`encode_batch` writes (the receiver decodes)."""

    def __init__(self, inner: _InProcessOutbox) -> None:
        self._inner = inner
        self.address = inner.address
        self._bytes = 0

    def send(self, batch: Batch, *, timeout: float | None = None) -> None:
        data = encode_batch(batch)
        self._bytes += len(data)  # before it can arrive: never fewer sent than received
        try:
            self._inner.send(data, timeout=timeout)
        except BaseException:
            self._bytes -= len(data)
            raise

    def close(self, *, linger: float = 5.0) -> None:
        self._inner.close(linger=linger)

    def bytes_sent(self) -> int | None:
        return self._bytes


class _SerialisingInbox(Inbox):
    def __init__(self, inner: _InProcessInbox) -> None:
        self._inner = inner
        self.address = inner.address
        self._bytes: dict[int, int] = {}

    def recv(self, timeout: float) -> Batch | None:
        item = self._inner.recv_item(timeout)
        if item is None or isinstance(item, Batch):
            return item
        batch = decode_batch(item)
        self._bytes[batch.sender] = self._bytes.get(batch.sender, 0) + len(item)
        return batch

    def close(self) -> None:
        self._inner.close()

    def bytes_received(self) -> dict[int, int] | None:
        return self._bytes.copy()
