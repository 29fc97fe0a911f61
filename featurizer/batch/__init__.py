"""Backfills at columnar speed, bit-identical to live: the vectorized offline path.

* :func:`backfill` / :class:`Backfill` — the combined feature vectors of a config over a stored
  range as Arrow tables: the rows of ``featurizer replay``, computed a chunk of columns at a
  time (``featurizer backfill``); ``workers=N`` (:class:`ParallelBackfill`) splits the range
  over processes or Ray tasks, a failed part ending it with a :class:`BackfillPartError`.
* :class:`BatchKernel`, :class:`Columns`, :class:`KernelOutput` — the protocol of a feature's
  columnar implementation (:meth:`FeatureDefinition.batch_kernel`).
* :class:`BatchExecutor` — a feature DAG over chunks of columns: kernels where nodes have one,
  the per-event graph for the rest; :class:`Combiner` turns node outputs into rows.
* :func:`backfill_events` — the same over events in memory.
* :func:`restore_states` — continue live from a backfill's carried per-event states.

numpy and pyarrow are needed (``pip install 'featurizer[batch]'``); they are imported when used.
"""

from __future__ import annotations

from featurizer.batch._backfill import Backfill, backfill
from featurizer.batch._combine import Combiner
from featurizer.batch._executor import BatchExecutor, NodeOutput, SourceBatch
from featurizer.batch._kernel import (
    BatchKernel,
    Columns,
    ErrorHandler,
    KernelOutput,
    columns_from_events,
    events_from_columns,
)
from featurizer.batch._memory import backfill_events, chunk_events
from featurizer.batch._parallel import ParallelBackfill
from featurizer.batch._states import restore_states
from featurizer.batch._workers import BackfillPartError

__all__ = [
    "Backfill",
    "BackfillPartError",
    "BatchExecutor",
    "BatchKernel",
    "Columns",
    "Combiner",
    "ErrorHandler",
    "KernelOutput",
    "NodeOutput",
    "ParallelBackfill",
    "SourceBatch",
    "backfill",
    "backfill_events",
    "chunk_events",
    "columns_from_events",
    "events_from_columns",
    "restore_states",
]
