"""The test kit: what our own tests use, for plugin authors too.

* :class:`InMemoryEmitter` and :class:`CollectingSink`: in-memory sources and sinks, so a graph
  test is a few lines long.
* :mod:`featurizer.testing.strategies`: hypothesis strategies generating valid event streams
  for a definition's schema.
* :func:`write_distribution`: a real ``*.dist-info`` on disk, to test entry-point discovery.
* :class:`ExampleTicker` and :class:`ExampleMid`: two tiny definitions for examples.
* :class:`EventByEventKeeper`: a state keeper fed event by event, the reference to test a
  keeper's ``apply_table`` against.
"""

from __future__ import annotations

from featurizer.testing._distributions import write_distribution
from featurizer.testing._examples import ExampleMid, ExampleTicker
from featurizer.testing._keepers import EventByEventKeeper
from featurizer.testing._memory import CollectingSink, InMemoryEmitter, run_graph

__all__ = [
    "CollectingSink",
    "EventByEventKeeper",
    "ExampleMid",
    "ExampleTicker",
    "InMemoryEmitter",
    "run_graph",
    "write_distribution",
]
