"""The ZeroMQ transport on loopback: no loss, FIFO, bounded memory, batch boundaries, shutdown."""

from __future__ import annotations

import pickle
import socket
import threading
import time

import pytest
from featurizer_zmq import ZmqTransport

from featurizer._runner import RunOptions
from featurizer.scaling import Batch, TransportError, decode_batch, run_scaled
from featurizer.testing import CollectingSink
from tests.scaling.scaling_support import memory_emitters, mid, tick, ticker


def _batch(number: int, size: int, payload: int = 0) -> Batch:
    return Batch(
        sender=0,
        number=number,
        keys=("k",),
        records=[
            ((float(number), 0, number * size + i), 0, {"x": float(i), "pad": "p" * payload})
            for i in range(size)
        ],
        watermarks={0: (float(number), number * size + size - 1)},
    )


def test_no_loss_and_fifo_under_a_slow_consumer_with_bounded_queues() -> None:
    transport = ZmqTransport({"hwm": 2})
    inbox = transport.open_inbox("slow")
    outbox = transport.connect(inbox.address, "fast")
    count, sent = 120, [0]

    def produce() -> None:
        for n in range(count):
            outbox.send(_batch(n, 4, payload=256 * 1024), timeout=30)
            sent[0] += 1

    producer = threading.Thread(target=produce)
    producer.start()
    received, in_flight = [], []
    deadline = time.monotonic() + 60
    while len(received) < count and time.monotonic() < deadline:
        batch = inbox.recv(1.0)
        if batch is None:
            continue
        received.append(batch.number)
        in_flight.append(sent[0] - len(received))
        time.sleep(0.005)  # the slow consumer
    producer.join(10)
    assert received == list(range(count))  # no loss, FIFO
    # the producer is held back: about 2 x hwm batches queued plus what the kernel buffers
    assert max(in_flight) <= 24, max(in_flight)
    outbox.close()
    inbox.close()
    transport.close()


@pytest.mark.parametrize("sizes", [[0, 1, 0, 1024, 1025, 3], [1] * 50])
def test_batch_boundaries_are_kept(sizes: list[int]) -> None:
    transport = ZmqTransport()
    inbox = transport.open_inbox("b")
    outbox = transport.connect(inbox.address, "b")
    sent = [_batch(n, size) for n, size in enumerate(sizes)]
    for batch in sent:
        outbox.send(batch)
    got = [inbox.recv(5.0) for _ in sent]
    assert got == sent
    assert inbox.recv(0.05) is None
    outbox.close()
    inbox.close()
    transport.close()


def test_decoding_refuses_anything_but_plain_data() -> None:
    evil = pickle.dumps(
        (
            1,
            0,
            0,
            (),
            [((1.0, 0, 0), 0, {"x": __import__("datetime").date(2024, 1, 1)})],
            {},
            False,
            0,
            None,
            [],
            {},
        )
    )
    with pytest.raises(TransportError, match="plain data only"):
        decode_batch(evil)
    with pytest.raises(TransportError, match="wire version"):
        decode_batch(pickle.dumps(("not", "a", "batch")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("featurizer-worker")]


def test_a_port_in_use_is_a_clear_error_before_anything_starts() -> None:
    a = ticker("A")
    port = _free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        with pytest.raises(TransportError, match=f"port {port} on 127.0.0.1 is in use"):
            run_scaled(
                [mid(a)],
                RunOptions(),
                CollectingSink(),
                transport="zmq",
                transport_options={"port": port},
                make_emitters=memory_emitters([(a, tick(1.0, 1.0))]),
            )
    finally:
        holder.close()
    assert not _worker_threads()


def test_shutdown_mid_stream_leaves_no_socket_or_thread() -> None:
    a, b = ticker("A"), ticker("B")
    events = [(s, tick(float(i), 1.0 + i % 3)) for i in range(100_000) for s in (a, b)]
    port = _free_port()
    sink = CollectingSink()
    summary = run_scaled(
        [mid(a), mid(b)],
        RunOptions(duration=0.5),
        sink,
        workers=2,
        strategy="by_source",
        transport="zmq",
        transport_options={"port": port, "hwm": 4},
        make_emitters=memory_emitters(events, delay=0.0001),
    )
    assert summary.stopped_by == "duration"
    assert 0 < summary.events_in < len(events)
    assert not _worker_threads()
    with socket.socket() as s:  # the driver's port is free again at once
        s.bind(("127.0.0.1", port))


# -- CURVE: peers without the run's keys are refused -----------------------------------------


def _keys() -> dict[str, bytes]:
    import zmq

    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    return {
        "server_public": server_public,
        "server_secret": server_secret,
        "client_public": client_public,
        "client_secret": client_secret,
    }


def test_curve_is_on_by_default_off_loopback_and_its_keys_are_shared() -> None:
    off_loopback = ZmqTransport({"host": "192.0.2.10"})  # documentation address: never bound
    loopback = ZmqTransport({})
    try:
        shared = off_loopback.shared_options()["curve"]
        assert sorted(shared) == [
            "client_public",
            "client_secret",
            "server_public",
            "server_secret",
        ]
        assert loopback.shared_options() == {"curve": False}
        assert ZmqTransport({"curve": shared}).curve == off_loopback.curve
    finally:
        off_loopback.close()
        loopback.close()


def test_a_peer_without_the_runs_keys_is_refused() -> None:
    keys = _keys()
    server = ZmqTransport({"curve": keys})  # CURVE on loopback too, when asked
    friend = ZmqTransport(server.shared_options())
    stranger = ZmqTransport({"curve": False})
    impostor_keys = {**_keys(), "server_public": keys["server_public"]}  # knows the server key
    impostor = ZmqTransport({"curve": impostor_keys})
    inbox = server.open_inbox("secure")
    try:
        for peer in (stranger, impostor):
            outbox = peer.connect(inbox.address, "intruder")
            with pytest.raises(TransportError, match="timed out"):
                outbox.send(_batch(0, 2), timeout=1.0)  # no handshake: nothing to send to
            assert inbox.recv(0.2) is None
        outbox = friend.connect(inbox.address, "member")
        outbox.send(_batch(0, 2), timeout=10.0)
        got = inbox.recv(10.0)
        assert got is not None and got.records == _batch(0, 2).records
    finally:
        for transport in (server, friend, stranger, impostor):
            transport.close()


def test_a_scaled_run_over_curve_equals_a_plain_one() -> None:
    a, b = ticker("A"), ticker("B")
    outputs = [mid(a), mid(b)]
    events = [(a if i % 2 else b, tick(float(i), float(i % 7 + 1))) for i in range(200)]
    rows = []
    for options in ({"curve": _keys()}, {}):
        sink = CollectingSink()
        run_scaled(
            outputs,
            RunOptions(),
            sink,
            workers=2,
            strategy="by_source",
            transport="zmq",
            transport_options=options,
            make_emitters=memory_emitters(events),
        )
        rows.append(sink.rows)
    assert rows[0] == rows[1] and len(rows[0]) > 0
