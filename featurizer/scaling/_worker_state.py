"""A worker's snapshot at a checkpoint barrier, and its restore into a freshly built worker.

What a worker carries between events, all of it taken under its lock at the barrier:

* its graph's feature states (:func:`featurizer.checkpoint.snapshot_graph`, keyed by feature
  keys);
* where each of its data sources stands (events consumed, the largest receipt time);
* the sequencing of each source group it ingests (running maximum time, sequence, the
  watermark, the events held for a live watermark);
* the merges of the groups it receives from several workers (records not yet released) and
  their frontiers;
* its counters, and in worker-output mode its local collector (the records held back by
  watermarks, the latest value of every output).

Wall-clock timers are not in it: a restored worker learns its event clock again from
its first event (as at a start, see :meth:`WorkerRuntime._advance_watermarks`) and its idle
timeouts count from the restore, so that a replayed input is not made late by the time the run
was down.

Channels are not in it: a restored run starts every channel anew, and every record before
the cut that a channel still carried is either in a receiver's snapshot or was not yet sent
(it is in the sender's state then, computed again from the rewound sources).
"""

from __future__ import annotations

import heapq
import pickle
from typing import TYPE_CHECKING, Any

from featurizer.checkpoint import restore_graph, snapshot_graph

if TYPE_CHECKING:
    from featurizer.scaling._worker import WorkerRuntime

__all__ = ["restore_worker", "snapshot_worker"]


def snapshot_worker(runtime: WorkerRuntime) -> bytes:
    """The state of ``runtime`` (under its lock, between two events), pickled.

    :raises SnapshotError: naming a feature whose state cannot be snapshotted.
    """
    keys = runtime._dispatch_keys
    groups = {
        group: {
            "max_time": state.max_time,
            "sequence": state.sequence,
            "done_time": state.done_time,
            "done_sequence": state.done_sequence,
            "announced": state.announced,
            "idle": state.idle,
            "held": [(ts, arrival, keys[id(fn)], event) for ts, arrival, fn, event in state.held],
        }
        for group, state in runtime._groups.items()
    }
    value = {
        "graph": snapshot_graph(runtime.graph),
        "positions": {key: list(p) for key, p in runtime._positions.items()},
        "groups": groups,
        "merges": {group: merge.snapshot() for group, merge in runtime._merges.items()},
        "frontiers": dict(runtime._frontiers),
        "current": runtime._current[0],
        "arrivals": runtime._arrivals,
        "inputs_done": runtime._inputs_done,
        "counters": {
            "events_in": runtime.events_in,
            "late_count": runtime.late_count,
            "errors": runtime.errors,
            "rows_out": runtime.rows_out,
        },
        "local": None if runtime._local is None else runtime._local.snapshot(),
    }
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _restore_counters(runtime: WorkerRuntime, counters: dict[str, Any]) -> None:
    runtime.events_in = int(counters.get("events_in", 0))
    runtime.late_count = int(counters.get("late_count", counters.get("late_events", 0)))
    runtime.errors = int(counters.get("errors", 0))
    runtime.rows_out = int(counters.get("rows_out", 0))


def restore_worker(runtime: WorkerRuntime, ack: dict[str, Any]) -> None:
    """Make a freshly built ``runtime`` continue from its acknowledgement ``ack``.

    A worker that had ended is restored as ended: it ingests nothing and ends its channels
    as soon as its upstream workers ended theirs.
    """
    sources = {key: (int(p[1]), p[2]) for key, p in ack["sources"].items()}
    for key, (consumed, receipt) in sources.items():
        runtime._positions[key] = [consumed, float("-inf") if receipt is None else receipt]
    if ack["finished"]:
        runtime.restored_finished = True
        runtime._inputs_done = True
        runtime._final_ack = pickle.dumps(ack, protocol=pickle.HIGHEST_PROTOCOL)
        _restore_counters(runtime, ack["metrics"])
        return
    runtime._skip = {
        key: (consumed, float("-inf") if receipt is None else receipt)
        for key, (consumed, receipt) in sources.items()
    }
    state = pickle.loads(ack["state"])
    restore_graph(runtime.graph, state["graph"])
    dispatch = {
        source.key: runtime.graph.input_callback(source) for source in runtime.worker.sources
    }
    for key, function in dispatch.items():
        runtime._dispatch_keys[id(function)] = key
    for group, saved in state["groups"].items():
        target = runtime._groups[group]
        target.max_time = saved["max_time"]
        target.sequence = saved["sequence"]
        target.done_time = saved["done_time"]
        target.done_sequence = saved["done_sequence"]
        target.announced = saved["announced"]
        target.idle = saved["idle"]
        target.held = [
            (ts, arrival, dispatch[key], event) for ts, arrival, key, event in saved["held"]
        ]
        heapq.heapify(target.held)
    for group, merge in state["merges"].items():
        runtime._merges[group].restore(merge, runtime._by_key)
    runtime._frontiers.update(state["frontiers"])
    runtime._current[0] = state["current"]
    runtime._arrivals = state["arrivals"]
    runtime._inputs_done = state["inputs_done"]
    _restore_counters(runtime, state["counters"])
    if runtime._local is not None and state["local"] is not None:
        runtime._local.restore(state["local"])
