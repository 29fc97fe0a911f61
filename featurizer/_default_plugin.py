"""The core's own contributions, registered like any plugin after the entry points."""

from __future__ import annotations

from featurizer._plugin_types import SinkSpec
from featurizer._sinks import JsonLinesSink, ParquetSink
from featurizer.hookspecs import hookimpl


@hookimpl
def featurizer_register_sinks() -> list[SinkSpec]:
    """JSON Lines (stdout or file) and Parquet."""
    return [
        SinkSpec(
            name="jsonl",
            suffixes=(".jsonl", ".json"),
            factory=JsonLinesSink,
            description="one JSON object per row, to stdout or a file",
        ),
        SinkSpec(
            name="parquet",
            suffixes=(".parquet",),
            factory=ParquetSink,
            description="Parquet file in row groups (needs pyarrow)",
        ),
    ]
