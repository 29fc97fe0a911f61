"""The ZeroMQ transport: PUSH/PULL over TCP, batches as single frames."""

from __future__ import annotations

import errno
import time
from collections.abc import Mapping
from typing import Any

from featurizer.scaling import (
    Batch,
    Inbox,
    Outbox,
    Transport,
    TransportError,
    decode_batch,
    encode_batch,
)

__all__ = ["ZmqTransport"]

_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "hwm": 64,
    "batch_size": 1024,
    "port": None,
    "connect_timeout": 5.0,
}


def _zmq() -> Any:
    try:
        import zmq
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise TransportError(
            "the zmq transport needs pyzmq: pip install featurizer-zmq (or pyzmq)"
        ) from error
    return zmq


class ZmqTransport(Transport):
    """Inboxes are PULL sockets bound on ``tcp://host:port``; outboxes are PUSH sockets.

    Every channel (one PUSH to one PULL) is FIFO and lossless: ZeroMQ never drops on a PUSH
    socket, it blocks when ``hwm`` batches are queued (at the sender plus at the receiver),
    which is the backpressure. Memory per channel is bounded by about ``2 * hwm`` batches plus
    the kernel's socket buffers.

    :param options: ``host`` (bind address, default ``127.0.0.1``), ``port`` (the driver's
        inbox port; ``None`` picks a free one; worker inboxes always pick free ports),
        ``hwm`` (batches, default 64), ``batch_size`` (records per batch, default 1024).

    >>> transport = ZmqTransport({"hwm": 4})
    >>> inbox = transport.open_inbox("doc")
    >>> outbox = transport.connect(inbox.address, "doc")
    >>> outbox.send(Batch(sender=0, number=0, records=[((1.0, 0, 0), 0, {"x": 1.0})]))
    >>> inbox.recv(5.0).records
    [((1.0, 0, 0), 0, {'x': 1.0})]
    >>> outbox.close(); inbox.close(); transport.close()
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        unknown = sorted(set(options or {}) - set(_DEFAULTS))
        if unknown:
            raise TransportError(
                f"zmq transport: unknown option {unknown[0]!r} (valid: {', '.join(_DEFAULTS)})"
            )
        opts = {**_DEFAULTS, **{k: v for k, v in (options or {}).items() if v is not None}}
        self.host = str(opts["host"])
        self.hwm = int(opts["hwm"])
        self.batch_size = int(opts["batch_size"])
        self.port = opts["port"]
        if self.hwm < 1 or self.batch_size < 1:
            raise TransportError(
                f"zmq transport: hwm and batch_size must be >= 1, received hwm={self.hwm}, "
                f"batch_size={self.batch_size}"
            )
        zmq = _zmq()
        self._zmq = zmq
        self.context = zmq.Context()
        self._sockets: list[Any] = []

    def open_inbox(self, name: str, *, port: int | None = None) -> Inbox:
        """Bind a PULL socket on ``tcp://host:port`` (a free port when ``port`` is ``None``).

        :raises TransportError: when the port is in use or the host cannot be bound.
        """
        zmq = self._zmq
        socket = self.context.socket(zmq.PULL)
        socket.setsockopt(zmq.RCVHWM, self.hwm)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            if port is None:
                bound = socket.bind_to_random_port(f"tcp://{self.host}")
            else:
                socket.bind(f"tcp://{self.host}:{int(port)}")
                bound = int(port)
        except zmq.ZMQError as error:
            socket.close(linger=0)
            if error.errno == errno.EADDRINUSE:
                raise TransportError(
                    f"zmq transport: port {port} on {self.host} is in use (inbox {name!r}); "
                    f"choose another port or stop what holds it",
                    address=f"tcp://{self.host}:{port}",
                ) from error
            raise TransportError(
                f"zmq transport: cannot bind inbox {name!r} on {self.host}:{port}: {error}",
                address=f"tcp://{self.host}:{port}",
            ) from error
        self._sockets.append(socket)
        return _ZmqInbox(socket, f"tcp://{self.host}:{bound}", self._zmq)

    def connect(self, address: str, name: str) -> Outbox:
        """Connect a PUSH socket to an inbox's ``tcp://`` address."""
        if not isinstance(address, str) or not address.startswith("tcp://"):
            raise TransportError(
                f"zmq transport: expected a tcp:// inbox address for {name}, received {address!r}",
                address=str(address),
            )
        zmq = self._zmq
        socket = self.context.socket(zmq.PUSH)
        socket.setsockopt(zmq.SNDHWM, self.hwm)
        socket.setsockopt(zmq.IMMEDIATE, 1)
        try:
            socket.connect(address)
        except zmq.ZMQError as error:
            socket.close(linger=0)
            raise TransportError(
                f"zmq transport: cannot connect {name} to {address}: {error}", address=address
            ) from error
        self._sockets.append(socket)
        return _ZmqOutbox(socket, address, zmq)

    def close(self) -> None:
        """Close every socket this transport opened (without waiting) and the context."""
        for socket in self._sockets:
            if not socket.closed:
                socket.close(linger=0)
        self._sockets.clear()
        self.context.term()


class _ZmqInbox(Inbox):
    def __init__(self, socket: Any, address: str, zmq: Any) -> None:
        self._socket = socket
        self.address = address
        self._zmq = zmq
        self._bytes: dict[int, int] = {}

    def recv(self, timeout: float) -> Batch | None:
        if self._socket.closed:
            raise TransportError(f"inbox {self.address} is closed", address=self.address)
        if not self._socket.poll(int(timeout * 1000), self._zmq.POLLIN):
            return None
        frame = self._socket.recv(copy=False)
        buffer = frame.buffer
        batch = decode_batch(buffer)
        self._bytes[batch.sender] = self._bytes.get(batch.sender, 0) + buffer.nbytes
        return batch

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.close(linger=0)

    def bytes_received(self) -> dict[int, int] | None:
        """Frame bytes received so far, by sending worker."""
        return self._bytes.copy()


class _ZmqOutbox(Outbox):
    def __init__(self, socket: Any, address: str, zmq: Any) -> None:
        self._socket = socket
        self.address = address
        self._zmq = zmq
        self._bytes = 0

    def bytes_sent(self) -> int | None:
        """Frame bytes handed to ZeroMQ so far (queued or delivered)."""
        return self._bytes

    def send(self, batch: Batch, *, timeout: float | None = None) -> None:
        self.send_bytes(encode_batch(batch), timeout=timeout)

    def send_bytes(self, data: bytes, *, timeout: float | None = None) -> None:
        """Send an already serialised batch (benchmarks compare this with raw pyzmq)."""
        socket = self._socket
        if socket.closed:
            raise TransportError(f"outbox to {self.address} is closed", address=self.address)
        zmq = self._zmq
        try:
            socket.send(data, zmq.NOBLOCK, copy=len(data) < 65536)
            self._bytes += len(data)
            return
        except zmq.Again:
            pass
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 100 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if socket.poll(wait, zmq.POLLOUT):
                try:
                    socket.send(data, zmq.NOBLOCK, copy=len(data) < 65536)
                    self._bytes += len(data)
                    return
                except zmq.Again:
                    pass
            if deadline is not None and time.monotonic() >= deadline:
                raise TransportError(
                    f"timed out after {timeout} s sending to {self.address}: the receiver does "
                    f"not keep up or is gone",
                    address=self.address,
                )

    def close(self, *, linger: float = 5.0) -> None:
        if not self._socket.closed:
            self._socket.close(linger=int(linger * 1000))
