"""The ZeroMQ transport: PUSH/PULL over TCP, batches as single frames, CURVE off loopback.

Between machines anyone who can reach an inbox's port could push batches into it. So off
loopback the transport uses ZeroMQ's CURVE security: every inbox is a CURVE server, every
outbox a CURVE client, and a ZAP authenticator in each process admits only the run's client
key. The driver's transport generates the keys (:meth:`ZmqTransport.shared_options`) and the
scaler hands them to every worker with the run request; a peer without them is refused during
the handshake and never delivers a frame.
"""

from __future__ import annotations

import errno
import ipaddress
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
    "curve": None,
}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_keys(curve: Any) -> dict[str, bytes]:
    names = ("server_public", "server_secret", "client_public", "client_secret")
    if not isinstance(curve, dict) or sorted(curve) != sorted(names):
        raise TransportError(
            f"zmq transport: option 'curve' must be a dict of {', '.join(names)} (Z85 keys as "
            f"made by zmq.curve_keypair()), received {type(curve).__name__}"
        )
    return {
        name: curve[name].encode() if isinstance(curve[name], str) else curve[name]
        for name in names
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
        ``hwm`` (batches, default 64), ``batch_size`` (records per batch, default 1024),
        ``curve``: ``None`` (the default: off on a loopback ``host``, else keys are generated
        here), ``False`` (off), or the run's keys from :meth:`shared_options`.

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
        curve = opts["curve"]
        if curve is None and not _is_loopback(self.host):
            server_public, server_secret = zmq.curve_keypair()
            client_public, client_secret = zmq.curve_keypair()
            curve = {
                "server_public": server_public,
                "server_secret": server_secret,
                "client_public": client_public,
                "client_secret": client_secret,
            }
        self.curve: dict[str, bytes] | None = _check_keys(curve) if curve else None
        if self.curve is not None and not zmq.has("curve"):  # pragma: no cover - libzmq build
            raise TransportError("zmq transport: this libzmq has no CURVE support")
        self.context = zmq.Context()
        self._sockets: list[Any] = []
        self._auth: Any = None

    def shared_options(self) -> dict[str, Any]:
        """The options every process of the run needs: with CURVE, the run's keys (so that
        each worker's transport uses them instead of making its own)."""
        return {"curve": dict(self.curve) if self.curve is not None else False}

    def _authenticator(self) -> None:
        """Admit only the run's client key on this process's inboxes (ZAP)."""
        if self._auth is not None or self.curve is None:
            return
        from zmq.auth.thread import ThreadAuthenticator

        allowed = self.curve["client_public"]

        class _RunKey:
            def callback(self, domain: str, key: bytes) -> bool:
                return key == allowed

        auth = ThreadAuthenticator(self.context)
        auth.start()
        auth.configure_curve_callback(domain="*", credentials_provider=_RunKey())
        self._auth = auth

    def open_inbox(self, name: str, *, port: int | None = None) -> Inbox:
        """Bind a PULL socket on ``tcp://host:port`` (a free port when ``port`` is ``None``).

        :raises TransportError: when the port is in use or the host cannot be bound.
        """
        zmq = self._zmq
        self._authenticator()
        socket = self.context.socket(zmq.PULL)
        socket.setsockopt(zmq.RCVHWM, self.hwm)
        socket.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            socket.curve_server = True
            socket.curve_secretkey = self.curve["server_secret"]
            socket.curve_publickey = self.curve["server_public"]
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
        if self.curve is not None:
            socket.curve_serverkey = self.curve["server_public"]
            socket.curve_publickey = self.curve["client_public"]
            socket.curve_secretkey = self.curve["client_secret"]
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
        auth, self._auth = self._auth, None
        if auth is not None:
            auth.stop()
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
        # counted before the frame can arrive: a reader comparing the receiver's count (read
        # first) with this one never sees more received than sent
        self._bytes += len(data)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            try:
                socket.send(data, zmq.NOBLOCK, copy=len(data) < 65536)
                return
            except zmq.Again:
                pass
            while True:
                wait = (
                    100 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
                )
                if socket.poll(wait, zmq.POLLOUT):
                    try:
                        socket.send(data, zmq.NOBLOCK, copy=len(data) < 65536)
                        return
                    except zmq.Again:
                        pass
                if deadline is not None and time.monotonic() >= deadline:
                    raise TransportError(
                        f"timed out after {timeout} s sending to {self.address}: the receiver "
                        f"does not keep up or is gone",
                        address=self.address,
                    )
        except BaseException:
            self._bytes -= len(data)  # not handed to ZeroMQ
            raise

    def close(self, *, linger: float = 5.0) -> None:
        if not self._socket.closed:
            self._socket.close(linger=int(linger * 1000))
