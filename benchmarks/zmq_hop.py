"""ZeroMQ hop between two processes on loopback: featurizer's zmq transport vs raw pyzmq.

Both sides serialise the same batches of event dicts (pickle protocol 5 of the same tuples):
the raw baseline with ``pickle.dumps``/``pickle.loads`` on bare PUSH/PULL sockets, featurizer
with :class:`featurizer_zmq.ZmqTransport` (its checked, plain-data-only decoder included).

* throughput: events/s for batches of 1024 events, as fast as possible, over windows of
  2,000,000 events (a few seconds each; a pool of prepared batches is sent again and again),
  in ``ROUNDS`` interleaved rounds (raw, featurizer, featurizer with CURVE, the order rotating
  each round); the ratio reported is the median of the per-round ratios;
* latency: per-event latency (creation to decoded at the receiver) at 50,000 events/s, batches
  flushed every millisecond (so an event waits up to 1 ms for its batch), p50/p99.

Run: ``python benchmarks/zmq_hop.py`` (about a minute). Prints ratios against the raw baseline
measured in the same rounds. The machine may be shared: numbers are noisy.
"""

from __future__ import annotations

import multiprocessing
import pickle
import statistics
import sys
import time
from typing import Any

EVENTS = 2_000_000
POOL = 256
"""Prepared batches the sender cycles through (memory stays small whatever ``EVENTS``)."""
ROUNDS = 3
BATCH = 1024
RATE = 50_000
LATENCY_SECONDS = 3.0


def _event(i: int) -> dict[str, Any]:
    t = 1_704_067_200.0 + i * 0.001
    return {
        "timestamp": t,
        "receipt_timestamp": t + 0.002,
        "bid": 100.0 + i % 7,
        "ask": 100.5 + i % 7,
        "bid_size": 1.25,
        "ask_size": 0.75,
    }


def _records(start: int, count: int, stamp: float | None = None) -> list[tuple[Any, ...]]:
    out = []
    for i in range(start, start + count):
        event = _event(i)
        if stamp is not None:
            event["created"] = stamp
        out.append(((event["timestamp"], 0, i), 0, event))
    return out


def _raw_tuple(number: int, records: list[Any]) -> tuple[Any, ...]:
    return (
        1,
        0,
        number,
        ("k" * 64,),
        records,
        {0: (records[-1][0][0], records[-1][0][2])},
        False,
        0,
        None,
        [],
        {},
    )


# -- receivers ------------------------------------------------------------------------------


def _receiver(
    kind: str, address_queue: Any, result_queue: Any, expected: int, timed: bool, options: Any
) -> None:
    import zmq

    if kind == "raw":
        context = zmq.Context()
        sock = context.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, 64)
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        address_queue.put(f"tcp://127.0.0.1:{port}")

        def recv() -> list[Any]:
            return pickle.loads(sock.recv(copy=False).buffer)[4]
    else:
        from featurizer_zmq import ZmqTransport

        transport = ZmqTransport({"hwm": 64, **options})
        inbox = transport.open_inbox("bench")
        address_queue.put(inbox.address)

        def recv() -> list[Any]:
            batch = inbox.recv(10.0)
            assert batch is not None
            return batch.records

    got = 0
    latencies = []
    start = None
    while got < expected:
        records = recv()
        if start is None:
            start = time.perf_counter()
        now = time.monotonic()
        got += len(records)
        if timed:
            latencies.extend(now - r[2]["created"] for r in records)
    elapsed = time.perf_counter() - start if start is not None else 0.0
    result_queue.put((got, elapsed, latencies))


# -- senders --------------------------------------------------------------------------------


def _sender(kind: str, address: str, timed: bool, options: Any) -> None:
    import zmq

    from featurizer.scaling import Batch

    if kind == "raw":
        context = zmq.Context()
        sock = context.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDHWM, 64)
        sock.connect(address)

        def send(number: int, records: list[Any]) -> None:
            sock.send(pickle.dumps(_raw_tuple(number, records), protocol=5))
    else:
        from featurizer_zmq import ZmqTransport

        transport = ZmqTransport({"hwm": 64, **options})
        outbox = transport.connect(address, "bench")

        def send(number: int, records: list[Any]) -> None:
            outbox.send(
                Batch(
                    sender=0,
                    number=number,
                    keys=("k" * 64,),
                    records=records,
                    watermarks={0: (records[-1][0][0], records[-1][0][2])},
                )
            )

    if not timed:
        pool = [_records(i * BATCH, BATCH) for i in range(POOL)]
        for number in range(-(-EVENTS // BATCH)):
            send(number, pool[number % POOL])
    else:
        per_batch = RATE // 1000  # a batch every millisecond
        total = int(RATE * LATENCY_SECONDS)
        begin = time.monotonic()
        i = number = 0
        while i < total:
            due = begin + (i + per_batch) / RATE
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            created = time.monotonic()
            # events created across the last millisecond: stamp each with its creation time
            records = _records(i, per_batch, stamp=created)
            for k, r in enumerate(records):
                r[2]["created"] = created - (per_batch - 1 - k) / RATE
            send(number, records)
            i += per_batch
            number += 1
    time.sleep(0.5)


def _run(kind: str, timed: bool, options: Any = None) -> tuple[int, float, list[float]]:
    options = options or {}
    ctx = multiprocessing.get_context("spawn")
    addresses, results = ctx.Queue(), ctx.Queue()
    expected = (
        int(RATE * LATENCY_SECONDS)
        if timed
        else (EVENTS // BATCH) * BATCH + (BATCH if EVENTS % BATCH else 0)
    )
    expected = min(expected, EVENTS) if not timed else expected
    receiver = ctx.Process(
        target=_receiver, args=(kind, addresses, results, expected, timed, options)
    )
    receiver.start()
    address = addresses.get(timeout=30)
    sender = ctx.Process(target=_sender, args=(kind, address, timed, options))
    sender.start()
    got, elapsed, latencies = results.get(timeout=300)
    sender.join(30)
    receiver.join(30)
    return got, elapsed, latencies


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    import zmq

    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    curve = {
        "curve": {
            "server_public": server_public,
            "server_secret": server_secret,
            "client_public": client_public,
            "client_secret": client_secret,
        }
    }
    kinds: list[tuple[str, str, Any]] = [
        ("raw", "raw", None),
        ("featurizer", "featurizer", None),
        ("featurizer+curve", "featurizer", curve),
    ]
    ratios: dict[str, list[float]] = {"featurizer": [], "featurizer+curve": []}
    for round_ in range(ROUNDS):
        rates = {}
        for label, kind, options in kinds[round_ % 3 :] + kinds[: round_ % 3]:
            got, elapsed, _ = _run(kind, timed=False, options=options)
            rates[label] = got / elapsed
            print(
                f"round {round_ + 1} {label:16} throughput: {got:,} events in {elapsed:.3f} s "
                f"= {got / elapsed:,.0f} events/s"
            )
        for label, values in ratios.items():
            values.append(rates[label] / rates["raw"])
    for label, values in ratios.items():
        print(
            f"throughput ratio {label} / raw pyzmq: median {statistics.median(values):.2f}x "
            f"over {ROUNDS} rounds ({', '.join(f'{v:.2f}' for v in values)})"
            + (" (target >= 0.8x)" if label == "featurizer" else "")
        )
    for kind in ("raw", "featurizer"):
        got, _, latencies = _run(kind, timed=True)
        ms = [x * 1000 for x in latencies]
        print(
            f"{kind:10} latency at {RATE:,} events/s ({got:,} events, 1 ms batches): "
            f"p50 {statistics.median(ms):.3f} ms  p99 {_p(ms, 0.99):.3f} ms  max {max(ms):.3f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
