"""Scaling out: plan a feature DAG over workers, run it, merge the outputs in event-time order.

* Strategies (``single``, ``by_source``, ``split``, or a plugin's) plan a
  :class:`FeatureStreamWorkerGraph`: which worker ingests, computes, outputs and ships what.
* A transport (``inproc`` here, ``zmq`` from ``featurizer-zmq``) carries batches of events
  between workers, FIFO, lossless and with backpressure.
* A scaler (``local`` here, ``ray`` from ``featurizer-ray``) starts the workers.
* :func:`run_scaled` drives a run and merges the outputs, with watermarks, into exactly the
  rows a single-process run produces for the same (replayed) input (or, with
  :class:`WorkerOutputs`, lets each worker write its own outputs); given a
  :class:`~featurizer.metrics.RunMetrics`, it reports every worker's counters and every
  channel's transport stats to it while the run goes.
* With ``checkpoint=`` (a :class:`~featurizer.checkpoint.ScaledCheckpointer`), aligned
  checkpoint barriers travel through the channels (:class:`WorkerCheckpointing` tells the
  workers where and from what to restore; a scaler's :class:`ScaledRun` forwards
  ``request_barrier`` and ``commit`` to :meth:`WorkerRuntime.request_barrier` and
  :meth:`WorkerRuntime.commit`), outputs are published exactly once at commits, and dead
  workers are replaced from the last checkpoint (``docs/fault-tolerance.md``).

See ``docs/scaling.md``.
"""

from __future__ import annotations

from featurizer.scaling._barriers import WorkerCheckpointing
from featurizer.scaling._driver import (
    LocalScaler,
    ScaledRun,
    ScaledRunRequest,
    ScaledRunSummary,
    Scaler,
    build_plan,
    make_transport,
    plan_for_request,
    registered_scalers,
    reporting_metrics,
    run_scaled,
)
from featurizer.scaling._errors import PlanError, ScalingError, TransportError, WorkerError
from featurizer.scaling._observe import ScaledRunObserver, plan_channels
from featurizer.scaling._ordering import GroupMerge, OutputCollector
from featurizer.scaling._outputs import OUTPUT_MODES, WorkerOutputs
from featurizer.scaling._plan import Edge, FeatureStreamWorkerGraph, SourceGroup, WorkerPlan
from featurizer.scaling._specs import ScalerSpec
from featurizer.scaling._strategies import (
    STRATEGIES,
    ScalingStrategy,
    plan_by_source,
    plan_single,
    plan_split,
)
from featurizer.scaling._transport import (
    END_WATERMARK,
    Batch,
    Inbox,
    InProcessTransport,
    Outbox,
    Transport,
    decode_batch,
    encode_batch,
)
from featurizer.scaling._worker import DRIVER, EmitterFactory, WorkerRuntime

__all__ = [
    "DRIVER",
    "END_WATERMARK",
    "OUTPUT_MODES",
    "STRATEGIES",
    "Batch",
    "Edge",
    "EmitterFactory",
    "FeatureStreamWorkerGraph",
    "GroupMerge",
    "InProcessTransport",
    "Inbox",
    "LocalScaler",
    "Outbox",
    "OutputCollector",
    "PlanError",
    "ScaledRun",
    "ScaledRunObserver",
    "ScaledRunRequest",
    "ScaledRunSummary",
    "Scaler",
    "ScalerSpec",
    "ScalingError",
    "ScalingStrategy",
    "SourceGroup",
    "Transport",
    "TransportError",
    "WorkerCheckpointing",
    "WorkerError",
    "WorkerOutputs",
    "WorkerPlan",
    "WorkerRuntime",
    "build_plan",
    "decode_batch",
    "encode_batch",
    "make_transport",
    "plan_by_source",
    "plan_channels",
    "plan_for_request",
    "plan_single",
    "plan_split",
    "registered_scalers",
    "reporting_metrics",
    "run_scaled",
]
