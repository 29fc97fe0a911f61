"""Featurizer Storage: recorded events of data sources and features, and replaying them.

* :class:`Storage` — a root directory: Parquet block files (one series per data source or
  feature key, partitioned by day), a SQLite catalog of series, sessions and blocks, and a
  write-ahead log.
* :class:`BlockWriter` with a :class:`Compactor` (:class:`MemoryBasedCompactor`,
  :class:`TimeBasedCompactor`) — records events from graph callbacks or emitters without
  blocking the hot path; crash-safe.
* :class:`Replay` — stored data sources over a time range, prefetched and merged in timestamp
  order (what the ``offline`` emitter and :class:`featurizer.offline.OfflineFeatureStreamGenerator`
  use).
* :func:`record` — ``featurizer record``: run a config and store what it selects.

pyarrow is needed to read and write blocks; it is imported only when used.
"""

from __future__ import annotations

from featurizer.storage._blocks import NUMERIC_ENCODINGS, BlockFormat
from featurizer.storage._catalog import BlockInfo, SeriesInfo, SessionInfo
from featurizer.storage._codec import SEQ_COLUMN
from featurizer.storage._compactors import (
    Compactor,
    MemoryBasedCompactor,
    OpenBlockState,
    TimeBasedCompactor,
)
from featurizer.storage._errors import (
    CorruptBlockError,
    DataHoleWarning,
    MissingBlockError,
    NoDataError,
    OverlapError,
    SchemaMismatchError,
    StorageError,
    StorageLockedError,
)
from featurizer.storage._reader import Hole, SeriesPlan, format_ts
from featurizer.storage._rebuild import RebuildReport, rebuild_catalog
from featurizer.storage._record import DiscardSink, RecordSummary, record
from featurizer.storage._recovery import RecoveryReport
from featurizer.storage._replay import HOLE_POLICIES, Replay, ReplayChunk
from featurizer.storage._select import select_features
from featurizer.storage._settings import (
    STORAGE_ENV,
    StorageSettings,
    parse_size,
    resolve_root,
)
from featurizer.storage._storage import Problem, Storage, VerifyReport
from featurizer.storage._writer import BlockWriter

__all__ = [
    "HOLE_POLICIES",
    "NUMERIC_ENCODINGS",
    "SEQ_COLUMN",
    "STORAGE_ENV",
    "BlockFormat",
    "BlockInfo",
    "BlockWriter",
    "Compactor",
    "CorruptBlockError",
    "DataHoleWarning",
    "DiscardSink",
    "Hole",
    "MemoryBasedCompactor",
    "MissingBlockError",
    "NoDataError",
    "OpenBlockState",
    "OverlapError",
    "Problem",
    "RebuildReport",
    "RecordSummary",
    "RecoveryReport",
    "Replay",
    "ReplayChunk",
    "SchemaMismatchError",
    "SeriesInfo",
    "SeriesPlan",
    "SessionInfo",
    "Storage",
    "StorageError",
    "StorageLockedError",
    "StorageSettings",
    "TimeBasedCompactor",
    "VerifyReport",
    "format_ts",
    "parse_size",
    "rebuild_catalog",
    "record",
    "resolve_root",
    "select_features",
]
