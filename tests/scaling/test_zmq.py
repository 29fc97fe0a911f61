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
