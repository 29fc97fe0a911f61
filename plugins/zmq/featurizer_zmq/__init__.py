"""ZeroMQ transport for Featurizer's scaled-out runs.

Registers the ``zmq`` transport: one PULL socket per receiving worker (and the driver), one
PUSH socket per sending channel, batches serialised with
:func:`featurizer.scaling.encode_batch`, high-water marks in batches so that a slow consumer
blocks its producers instead of growing memory. ``pyzmq`` is imported only when a transport is
built, so discovery works without it.
"""

from __future__ import annotations

from featurizer import TransportSpec, hookimpl
from featurizer_zmq.transport import ZmqTransport

__all__ = ["ZmqTransport"]


@hookimpl
def featurizer_register_transports() -> list[TransportSpec]:
    """The ``zmq`` transport."""
    return [
        TransportSpec(
            name="zmq",
            factory=ZmqTransport,
            description="ZeroMQ PUSH/PULL over TCP: batched frames, high-water-mark backpressure",
        )
    ]
