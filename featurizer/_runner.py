"""Running a config: build the graph, connect emitters, write outputs, stop cleanly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from featurizer._config import FeaturizerConfig, construct_features_from_configs
from featurizer._emitter import DataSourceEventEmitter
from featurizer._errors import EmitterError, FeaturizerError
from featurizer._events import Event, GroupedNamedDataEvent
from featurizer._feature import Feature
from featurizer._graph import ERROR_POLICIES, FeatureStreamGraph, check_output_event
from featurizer._plugin_types import EmitterSpec
from featurizer._plugins import Plugins, get_plugins
from featurizer._sinks import Sink, flatten_grouped
from featurizer._ties import TieOrder

if TYPE_CHECKING:
    from featurizer.checkpoint import Checkpointer
    from featurizer.metrics import RunMetrics

__all__ = [
    "RunContext",
    "RunOptions",
    "RunSummary",
    "assign_emitters",
    "check_emitter_settings",
    "check_sources",
    "refuse_warmup",
    "run",
]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05

_STOP_WAIT = 5.0
"""Seconds a run waits for an emitter's ``stop()`` before it gives up on it."""


@attrs.frozen(kw_only=True)
class RunOptions:
    """How ``featurizer run`` runs a config.

    :param emitter: use this emitter for every data source (else each source's default).
    :param max_events: stop after this many input events (passed to emitters as a bound too).
    :param duration: stop after this many wall-clock seconds.
    :param seed: seed for emitters that generate data.
    :param pace: ``"max"`` (as fast as possible) or a speed factor for replaying emitters.
    :param combine_outputs: write one row per input with every output (else a row per output
        event).
    :param error_policy: ``"raise"`` or ``"skip"`` (see :data:`featurizer.ERROR_POLICIES`).
    :param emitter_options: extra options passed to emitters.
    :param check: check every output event against its feature's declared schema (see
        :func:`~featurizer._graph.check_output_event`); a bad one fails the run naming the
        feature.
    :param emitter_settings: options the user gave the emitters (``--emitter-option
        KEY=VALUE``): each must be declared by an emitter of the run (see
        :attr:`featurizer.DataSourceEventEmitter.declared_options`), checked before anything
        starts; passed to the emitters with the other options.
    """

    emitter: str | None = None
    max_events: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1))
    )
    duration: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0))
    )
    seed: int = 0
    pace: str | float = "max"
    combine_outputs: bool = True
    error_policy: str = attrs.field(default="raise", validator=attrs.validators.in_(ERROR_POLICIES))
    emitter_options: Mapping[str, Any] = attrs.field(factory=dict)
    emitter_settings: Mapping[str, Any] = attrs.field(factory=dict)
    check: bool = False

    def emitter_option_dict(self) -> dict[str, Any]:
        """The options every emitter receives."""
        return {
            "seed": self.seed,
            "max_events": self.max_events,
            "duration": self.duration,
            "pace": self.pace,
            **self.emitter_options,
            **self.emitter_settings,
        }


@attrs.frozen(kw_only=True)
class RunSummary:
    """What a run did.

    :param events_in: data-source events pushed into the graph.
    :param outputs_out: rows written to the sink.
    :param errors: feature errors counted under the ``skip`` policy.
    :param elapsed_seconds: wall time from emitters' start to their stop.
    :param stopped_by: ``"completed"``, ``"max_events"``, ``"duration"`` or ``"interrupted"``.
    :param silent_outputs: with combined outputs, the output features that never produced a
        value: a combined row needs one from every output, so while any is silent no row is
        written (a one-minute bar over 40 seconds of data).
    """

    events_in: int
    outputs_out: int
    errors: int
    elapsed_seconds: float
    stopped_by: str
    silent_outputs: tuple[str, ...] = ()

    @property
    def events_per_second(self) -> float:
        """Input events per wall-clock second."""
        return self.events_in / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def describe(self) -> str:
        """One human-readable line."""
        return (
            f"events in: {self.events_in:,}  outputs out: {self.outputs_out:,}  errors: "
            f"{self.errors:,}  elapsed: {self.elapsed_seconds:.2f} s  events/s: "
            f"{self.events_per_second:,.0f}  stopped by: {self.stopped_by}"
        )


@attrs.define(kw_only=True)
class RunContext:
    """What lifecycle hooks receive about a run."""

    config: FeaturizerConfig
    options: RunOptions
    graph: FeatureStreamGraph
    emitters: dict[str, DataSourceEventEmitter]


def assign_emitters(
    sources: Sequence[Feature], emitters: Mapping[str, EmitterSpec], override: str | None
) -> dict[str, list[Feature]]:
    """Choose the emitter of each data source: the override, else the first default for it.

    :param sources: the graph's data-source features.
    :param emitters: registered emitters by name.
    :param override: an emitter name that serves every source, or ``None``.
    :returns: emitter name to its sources, in registration order.
    :raises EmitterError: listing the emitters and what they serve, before anything starts.
    """

    def served() -> str:
        return (
            "; ".join(
                f"{spec.name}: {', '.join(spec.data_sources)} on "
                f"{', '.join(spec.exchanges) or 'explicit --emitter only'}"
                for spec in emitters.values()
            )
            or "no emitter is installed"
        )

    if override is not None and override not in emitters:
        raise EmitterError(
            f"unknown emitter {override!r}; registered emitters: {', '.join(emitters) or 'none'}"
        )
    plan: dict[str, list[Feature]] = {}
    for source in sources:
        definition = source.definition_name
        if override is not None:
            if not emitters[override].serves(definition):
                raise EmitterError(
                    f"emitter {override!r} cannot serve data source {source.name!r} "
                    f"(definition {definition!r}); emitters: {served()}"
                )
            plan.setdefault(override, []).append(source)
            continue
        exchange = str(source.params.get("exchange", ""))
        chosen = next(
            (spec for spec in emitters.values() if spec.is_default_for(definition, exchange)), None
        )
        if chosen is None:
            raise EmitterError(
                f"no emitter serves data source {source.name!r} (definition {definition!r}, "
                f"exchange {exchange!r}); choose one with --emitter. Emitters: {served()}"
            )
        plan.setdefault(chosen.name, []).append(source)
    return plan


def check_emitter_settings(
    plan: Mapping[str, Sequence[Feature]], emitters: Mapping[str, EmitterSpec], options: RunOptions
) -> None:
    """Every ``--emitter-option`` must be declared by at least one emitter of the run.

    :raises EmitterError: naming the option and what each emitter of the run declares.
    """
    declared = {
        name: {option.name for option in emitters[name].emitter_class.declared_options}
        for name in plan
    }
    for key in options.emitter_settings:
        if not any(key in names for names in declared.values()):
            known = "; ".join(
                f"{name}: {', '.join(sorted(names)) or 'none'}" for name, names in declared.items()
            )
            raise EmitterError(
                f"emitter option {key!r} is not declared by the emitters of this run "
                f"(declared options: {known})"
            )


def check_sources(
    plan: Mapping[str, Sequence[Feature]], plugins: Plugins, options: RunOptions
) -> None:
    """Ask each emitter of ``plan`` to check its data sources, without starting anything.

    ``featurizer validate`` calls it: a missing CSV file or an unknown symbol is found then.

    :raises EmitterError: (or :class:`ConfigError` for a bad option) from the first emitter
        that refuses a source.
    """
    check_emitter_settings(plan, plugins.emitters(), options)
    built = _build_emitters(plan, plugins, options)
    try:
        for name, sources in plan.items():
            for source in sources:
                built[name].check_source(source)
    finally:
        _stop_all(built)


def _build_emitters(
    plan: Mapping[str, Sequence[Feature]], plugins: Plugins, options: RunOptions
) -> dict[str, DataSourceEventEmitter]:
    specs = plugins.emitters()
    built: dict[str, DataSourceEventEmitter] = {}
    for name in plan:
        option_dict = options.emitter_option_dict()
        emitter = plugins.make_emitter(name, option_dict)
        if emitter is None:
            emitter = specs[name].emitter_class.from_options(option_dict)
        built[name] = emitter
    return built


class _InputCounter:
    """Counts input events and enforces ``max_events`` across emitters."""

    def __init__(self, max_events: int | None, limit_reached: threading.Event) -> None:
        self.count = 0
        self._max = max_events
        self._limit_reached = limit_reached

    def wrap(
        self, dispatch: Callable[[Event], None], lock: threading.Lock | None
    ) -> Callable[[Event], None]:
        limit = self._max
        reached = self._limit_reached

        def counted(event: Event) -> None:
            if limit is not None and self.count >= limit:
                reached.set()
                return
            self.count += 1
            dispatch(event)
            if self.count == limit:
                reached.set()

        if lock is None:
            return counted

        def locked(event: Event) -> None:
            with lock:
                counted(event)

        return locked


def run(
    config: FeaturizerConfig,
    options: RunOptions,
    sink: Sink,
    *,
    plugins: Plugins | None = None,
    on_combined: Callable[[GroupedNamedDataEvent], None] | None = None,
    metrics: RunMetrics | None = None,
    progress: Callable[[int, int], None] | None = None,
    checkpoint: Checkpointer | None = None,
) -> RunSummary:
    """Run ``config`` until its emitters finish, ``max_events``, ``duration`` or Ctrl-C.

    :param config: the features to compute.
    :param options: emitter choice, bounds, output shape, error policy.
    :param sink: receives output rows; closed (published) when the run ends cleanly, discarded
        when it fails.
    :param plugins: the plugins to use (installed ones by default).
    :param on_combined: also called with every combined output (tests, dashboards).
    :param metrics: instrument the graph with ``metrics.nodes`` and attach the graph and its
        emitters to it (see :mod:`featurizer.metrics`); ``None`` runs uninstrumented.
    :param progress: called about 20 times a second, from the calling thread, with the input
        events and the output rows so far (a progress line).
    :param checkpoint: checkpoint the run (``sink`` is its segmented sink): resume from the
        newest checkpoint, log the input, commit outputs with checkpoints (see
        :mod:`featurizer.checkpoint`).
    :returns: the summary.
    :raises FeaturizerError: for config or emitter problems (before anything starts) and for
        feature errors under the ``raise`` policy.
    """
    plugins = plugins or get_plugins()
    features = construct_features_from_configs(config, plugins)
    outputs = [0]
    quiet = [False]  # while a warm-up event is dispatched: none of its outputs is written

    def write_combined(grouped: GroupedNamedDataEvent) -> None:
        if quiet[0]:
            return
        if options.check:
            for feature, event in grouped:
                check_output_event(feature, event)
        outputs[0] += 1
        sink.write_row(flatten_grouped(grouped))
        if on_combined is not None:
            on_combined(grouped)

    graph = FeatureStreamGraph(
        features,
        combine_outputs=options.combine_outputs,
        combined_out_callback=write_combined,
        error_policy=options.error_policy,
        error_callback=plugins.on_feature_error,
        metrics=metrics.nodes if metrics is not None else None,
    )
    if not options.combine_outputs:
        for feature in graph.get_outs():
            graph.set_callback(feature, _per_feature_writer(sink, outputs, options.check, quiet))
    plan = assign_emitters(graph.get_ins(), plugins.emitters(), options.emitter)
    check_emitter_settings(plan, plugins.emitters(), options)
    emitters = _build_emitters(plan, plugins, options)
    if metrics is not None:
        metrics.attach(graph, emitters, plan)
    limit_reached = threading.Event()
    counter = _InputCounter(options.max_events, limit_reached)
    lock = threading.Lock() if len(emitters) > 1 else None
    if checkpoint is not None:
        replayable = all(emitter.replays_input for emitter in emitters.values())
        _resume(checkpoint, graph, counter, sink, replayable=replayable)
    ties = TieOrder(features)  # same-timestamp events in the order every scaler uses
    for name, sources in plan.items():
        for source in sources:
            dispatch = graph.input_callback(source)
            if checkpoint is not None:  # logs and cuts in dispatch order, inside the tie order
                dispatch = checkpoint.around(source, dispatch)
            callback = counter.wrap(ties.wrap(source, dispatch), lock)
            if checkpoint is not None:  # skips what a restarted emitter sends again
                callback = checkpoint.resume_filter(source, callback)
            emitters[name].register_callback(source, callback)
            if checkpoint is None:
                warmup = ties.wrap(source, _quietly(graph.input_callback(source), quiet))
            else:  # neither logged nor cut: a resumed run could not rebuild their state
                warmup = refuse_warmup(
                    source, "a checkpointed run (its input log)", "run it without checkpoints"
                )
            emitters[name].register_warmup_callback(source, _locked(warmup, lock))
    context = RunContext(config=config, options=options, graph=graph, emitters=emitters)
    plugins.before_run(context)
    started = time.perf_counter()
    stopped_by = "completed"
    try:
        for emitter in emitters.values():
            emitter.start()
        report = None if progress is None else (lambda: progress(counter.count, outputs[0]))
        stopped_by = _wait(emitters, options, limit_reached, started, report)
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    except BaseException as error:
        _stop_all(emitters)
        ties.close(flush=False)
        if checkpoint is not None:
            checkpoint.close()
        sink.close(ok=False)
        plugins.on_run_error(context, error)
        raise
    stuck = _stop_all(emitters)
    elapsed = time.perf_counter() - started
    failure = next((e.failure() for e in emitters.values() if e.failure() is not None), None)
    if failure is None and stuck:
        failure = EmitterError(
            f"emitter(s) {', '.join(map(repr, stuck))} did not stop within {_STOP_WAIT:g} s "
            f"(a feature that never returns?); the run is abandoned and nothing is published"
        )
    try:
        ties.close(flush=failure is None)  # the events of the last timestamp
    except Exception as error:
        failure = error
    if failure is not None:
        if checkpoint is not None:
            checkpoint.close()
        sink.close(ok=False)
        plugins.on_run_error(context, failure)
        if isinstance(failure, FeaturizerError):
            raise failure
        raise EmitterError(f"an emitter failed: {type(failure).__name__}: {failure}") from failure
    if checkpoint is not None:
        checkpoint.finish()
    sink.close(ok=True)
    if (
        stopped_by == "completed"
        and options.max_events is not None
        and counter.count >= options.max_events
    ):
        stopped_by = "max_events"
    summary = RunSummary(
        events_in=counter.count,
        outputs_out=outputs[0],
        errors=sum(graph.error_counts.values()),
        elapsed_seconds=elapsed,
        stopped_by=stopped_by,
        silent_outputs=_silent_outputs(graph) if options.combine_outputs else (),
    )
    if graph.error_counts:
        logger.warning(
            "feature errors skipped: %s",
            ", ".join(f"{f.name!r}: {n:,}" for f, n in graph.error_counts.most_common()),
        )
    plugins.after_run(context, summary)
    return summary


def _silent_outputs(graph: FeatureStreamGraph) -> tuple[str, ...]:
    return tuple(feature.name for feature in graph.silent_outputs())


def _resume(
    checkpoint: Checkpointer,
    graph: FeatureStreamGraph,
    counter: _InputCounter,
    sink: Sink,
    *,
    replayable: bool,
) -> None:
    """Restore the newest checkpoint and replay the logged input after it (before emitters
    start); on failure the log is closed and the sink discarded.

    :param replayable: every emitter of the run replays its input itself: the run keeps no
        input log (see :class:`~featurizer.checkpoint.Checkpointer`).
    """

    def set_count(count: int) -> None:
        counter.count = count

    try:
        checkpoint.start(graph, set_count, replayable=replayable)
        checkpoint.recover({source: graph.input_callback(source) for source in graph.get_ins()})
    except BaseException:
        checkpoint.close()
        sink.close(ok=False)
        raise


def _quietly(dispatch: Callable[[Event], None], quiet: list[bool]) -> Callable[[Event], None]:
    """``dispatch`` for a warm-up event: the graph sees it, the sink gets none of its rows."""

    def warm(event: Event) -> None:
        quiet[0] = True
        try:
            dispatch(event)
        finally:
            quiet[0] = False

    return warm


def refuse_warmup(source: Feature, run: str, instead: str) -> Callable[[Event], None]:
    """A warm-up callback (see :meth:`DataSourceEventEmitter.register_warmup_callback`) for a
    run that cannot take warm-up events: the first one fails the emitter with one line.

    :param source: the data source.
    :param run: what cannot take them and why (``"a checkpointed run, which cannot log
        them"``).
    :param instead: what to do instead (``"run it without checkpoints"``).
    """

    def refuse(event: Event) -> None:
        raise EmitterError(
            f"data source {source.name!r} is replayed from its last snapshot before the run's "
            f"start (warm-up events), which {run} cannot take: start the run at or before that "
            f"snapshot, or {instead}"
        )

    return refuse


def _locked(
    callback: Callable[[Event], None], lock: threading.Lock | None
) -> Callable[[Event], None]:
    if lock is None:
        return callback

    def locked(event: Event) -> None:
        with lock:
            callback(event)

    return locked


def _per_feature_writer(
    sink: Sink, outputs: list[int], check: bool, quiet: list[bool]
) -> Callable[[Feature, Event], None]:
    def write(feature: Feature, event: Event) -> None:
        if quiet[0]:
            return
        if check:
            check_output_event(feature, event)
        outputs[0] += 1
        sink.write_row({"feature": feature.name, **event})

    return write


def _wait(
    emitters: Mapping[str, DataSourceEventEmitter],
    options: RunOptions,
    limit_reached: threading.Event,
    started: float,
    report: Callable[[], None] | None = None,
) -> str:
    pending = dict(emitters)
    while pending:
        if report is not None:
            report()
        for name, emitter in list(pending.items()):
            if emitter.failure() is not None:
                return "failed"
            if emitter.wait(_POLL_SECONDS / max(len(pending), 1)):
                del pending[name]
        if limit_reached.is_set():
            return "max_events"
        if options.duration is not None and time.perf_counter() - started >= options.duration:
            return "duration"
    return "max_events" if limit_reached.is_set() else "completed"


def _stop_all(emitters: Mapping[str, DataSourceEventEmitter]) -> list[str]:
    """Stop every emitter, waiting :data:`_STOP_WAIT` seconds at most for each (a ``stop()``
    joining a thread stuck in a feature must not hang the run); returns the names of the
    emitters that did not stop in time."""
    stuck = []
    for name, emitter in emitters.items():
        stopper = threading.Thread(
            target=_stop_one, args=(name, emitter), name=f"featurizer-stop-{name}", daemon=True
        )
        stopper.start()
        stopper.join(_STOP_WAIT)
        if stopper.is_alive():
            stuck.append(name)
    return stuck


def _stop_one(name: str, emitter: DataSourceEventEmitter) -> None:
    try:
        emitter.stop()
    except Exception:
        logger.exception("emitter %r failed to stop cleanly", name)
