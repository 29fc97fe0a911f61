"""Recording: run a config live (or on a synthetic market) and store its data sources and
features, through exactly the code path of ``featurizer run``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from featurizer.hookspecs import hookimpl
from featurizer.storage._compactors import Compactor
from featurizer.storage._errors import StorageError

if TYPE_CHECKING:
    from featurizer._config import FeaturizerConfig
    from featurizer._plugins import Plugins
    from featurizer._runner import RunContext, RunOptions, RunSummary
    from featurizer._sinks import Sink
    from featurizer.storage._storage import Storage
    from featurizer.storage._writer import BlockWriter

__all__ = ["DiscardSink", "RecordSummary", "record"]

logger = logging.getLogger(__name__)


class DiscardSink:
    """A sink that drops every row (``featurizer record`` without ``--out``)."""

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Drop the row."""

    def close(self, ok: bool = True) -> None:
        """Nothing to publish."""


@attrs.frozen(kw_only=True)
class RecordSummary:
    """What :func:`record` did.

    :param run: the run's summary (events in, outputs, elapsed time).
    :param series: the names of the recorded series.
    :param acknowledged: events stored (every one of them is in a committed block).
    :param blocks: blocks written.
    :param bytes: bytes of block files written.
    :param session: the recording session id.
    :param root: the storage root.
    """

    run: RunSummary
    series: tuple[str, ...]
    acknowledged: int
    blocks: int
    bytes: int
    session: str
    root: str

    @property
    def bytes_per_event(self) -> float:
        """Bytes on disk per stored event."""
        return self.bytes / self.acknowledged if self.acknowledged else 0.0

    def describe(self) -> str:
        """One human-readable line."""
        return (
            f"recorded {self.acknowledged:,} events of {len(self.series)} series into "
            f"{self.blocks:,} blocks ({self.bytes:,} bytes, {self.bytes_per_event:.1f} "
            f"bytes/event) under {self.root} (session {self.session})"
        )


class _AttachRecorder:
    """A plugin object attaching the writer to the run's graph before emitters start."""

    def __init__(self, writer: BlockWriter) -> None:
        self.writer = writer

    @hookimpl
    def featurizer_before_run(self, context: RunContext) -> None:
        """Record every selected node through a graph callback."""
        context.graph.set_callbacks(
            {feature: self.writer.graph_callback(feature) for feature in self.writer.features}
        )


def record(
    config: FeaturizerConfig,
    options: RunOptions,
    storage: Storage,
    *,
    sink: Sink | None = None,
    plugins: Plugins | None = None,
    features_to_store: Sequence[str] | None = None,
    compactor: Compactor | None = None,
    sync_interval: float | None = None,
    on_acknowledged: Callable[[int], None] | None = None,
    sink_factory: Callable[[], Sink] | None = None,
    writer_options: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RecordSummary:
    """Run ``config`` like ``featurizer run`` and store the selected nodes' events.

    The graph, emitters, bounds and error handling are those of :func:`featurizer run
    <featurizer._runner.run>`; a :class:`~featurizer.storage.BlockWriter` is attached to the
    graph with one callback per stored node before any emitter starts, and stopped (everything
    written and committed) when the run ends, however it ends.

    :param config: the features to compute; its ``features_to_store`` and ``storage``
        sections say what to store and how.
    :param options: emitter, bounds, seed, pace, error policy.
    :param storage: where to store.
    :param sink: where the run's combined output goes (dropped by default).
    :param plugins: the plugins to use (installed ones by default).
    :param features_to_store: overrides the config's selection.
    :param compactor: overrides the config's compactor.
    :param sync_interval: overrides the config's WAL flush interval.
    :param on_acknowledged: called with the number of events acknowledged after every WAL
        fsync (from the writer's thread).
    :param sink_factory: builds the sink once the writer is open (so a writer that cannot
        open leaves no partial output file); exclusive with ``sink``.
    :param writer_options: further :class:`~featurizer.storage.BlockWriter` options.
    :param progress: called about 20 times a second with the input events and output rows
        so far (see :func:`featurizer._runner.run`).
    :returns: what was recorded.
    :raises ConfigError: for a bad ``features_to_store``.
    :raises StorageError: if the root is locked by another recorder or writing fails.
    """
    from featurizer._config import construct_features_from_configs
    from featurizer._plugins import get_plugins
    from featurizer._runner import run
    from featurizer.storage._select import select_features
    from featurizer.storage._settings import StorageSettings

    plugins = plugins or get_plugins()
    outputs = construct_features_from_configs(config, plugins)
    selected = select_features(config, outputs, features_to_store)
    settings = config.storage or StorageSettings()
    writer = storage.writer(
        selected,
        compactor=compactor or settings.make_compactor(),
        sync_interval=sync_interval if sync_interval is not None else settings.sync_interval,
        on_acknowledged=on_acknowledged,
        **{"process": settings.writer == "process", **dict(writer_options or {})},
    )
    attach = _AttachRecorder(writer)
    plugins.pm.register(attach, name=f"featurizer-recorder-{id(attach)}")
    try:
        if sink is None:
            sink = sink_factory() if sink_factory is not None else DiscardSink()
        summary = run(config, options, sink, plugins=plugins, progress=progress)
    except BaseException:
        plugins.pm.unregister(attach)
        try:
            writer.stop()
        except StorageError:
            logger.exception("the block writer failed while the run was failing")
        raise
    plugins.pm.unregister(attach)
    writer.stop()
    return RecordSummary(
        run=summary,
        series=tuple(feature.name for feature in selected),
        acknowledged=writer.acknowledged,
        blocks=writer.blocks_written,
        bytes=writer.bytes_written,
        session=writer.session,
        root=str(storage.root),
    )
