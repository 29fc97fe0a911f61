"""The hook specifications every featurizer plugin implements a subset of.

Plugins are discovered through the ``featurizer`` entry-point group and decorate their hook
functions with :data:`featurizer.hookimpl`. Hook families:

* ``featurizer_register_<things>()`` returns a list; every plugin contributes.
* ``featurizer_make_<thing>(...)`` is ``firstresult``: the first non-``None`` answer wins.
* ``featurizer_before_<phase>`` / ``featurizer_after_<phase>`` / ``featurizer_on_<phase>_error``
  for the run lifecycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from featurizer._definitions import DataSourceDefinition, FeatureDefinition
    from featurizer._errors import FeatureComputationError
    from featurizer._plugin_types import (
        EmitterSpec,
        ScalingStrategySpec,
        SinkSpec,
        TransportSpec,
    )
    from featurizer._runner import RunContext, RunSummary
    from featurizer.scaling._specs import ScalerSpec

PROJECT_NAME = "featurizer"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def featurizer_register_feature_definitions() -> list[type[FeatureDefinition]]:
    """Contribute feature definitions, registered under their ``name``.

    Called once when the registry is first built.

    :returns: definition classes; each ``name`` must be unique across all plugins.
    """


@hookspec
def featurizer_register_data_source_definitions() -> list[type[DataSourceDefinition]]:
    """Contribute data-source definitions, registered under their ``name``.

    Called once when the registry is first built.

    :returns: definition classes; each ``name`` must be unique across all plugins.
    """


@hookspec
def featurizer_register_emitters() -> list[EmitterSpec]:
    """Contribute emitters: the classes that push data-source events into a graph.

    Called when a run chooses the emitter for each data source.

    :returns: one :class:`~featurizer.EmitterSpec` per emitter (name, class, the data-source
        definitions and exchanges it serves).
    """


@hookspec
def featurizer_register_sinks() -> list[SinkSpec]:
    """Contribute output sinks (where ``featurizer run`` writes feature vectors).

    :returns: one :class:`~featurizer.SinkSpec` per sink (name, file suffixes, factory).
    """


@hookspec
def featurizer_register_transports() -> list[TransportSpec]:
    """Contribute transports: channels carrying events between workers of a scaled-out graph.

    Called when a scaled-out run wires the edges that cross workers.

    :returns: one :class:`~featurizer.TransportSpec` per transport (name, factory).
    """


@hookspec
def featurizer_register_scaling_strategies() -> list[ScalingStrategySpec]:
    """Contribute scaling strategies: planners that split a feature DAG over workers.

    Called by ``featurizer plan`` and scaled-out runs.

    :returns: one :class:`~featurizer.ScalingStrategySpec` per strategy (name, planner).
    """


@hookspec
def featurizer_register_scalers() -> list[ScalerSpec]:
    """Contribute scalers: the backends that run the workers of a scaled-out plan.

    Called when ``featurizer run --scaler NAME`` (or :func:`featurizer.scaling.run_scaled`)
    looks up its scaler. The core contributes ``local`` (worker threads in the driver process);
    ``featurizer-ray`` contributes ``ray``.

    :returns: one :class:`~featurizer.scaling.ScalerSpec` per scaler (name, factory).
    """


@hookspec(firstresult=True)
def featurizer_make_emitter(name: str, options: dict[str, Any]) -> Any:
    """Build the emitter called ``name`` with run ``options``, overriding the default factory.

    Stops at the first non-None result.

    :param name: the registered emitter name.
    :param options: run options (``seed``, ``max_events``, ``duration``, ``pace``, ...).
    :returns: a :class:`~featurizer.DataSourceEventEmitter`, or ``None`` to let the
        registered class build itself.
    """


@hookspec
def featurizer_before_run(context: RunContext) -> None:
    """Called once the graph and emitters of a run are built, before any emitter starts.

    :param context: the run's config, graph, emitters and options.
    """


@hookspec
def featurizer_after_run(context: RunContext, summary: RunSummary) -> None:
    """Called after a run stopped cleanly (all emitters stopped, sinks closed).

    :param context: the run's config, graph, emitters and options.
    :param summary: events in, outputs out, errors, elapsed seconds.
    """


@hookspec
def featurizer_on_run_error(context: RunContext, error: BaseException) -> None:
    """Called when a run fails, after emitters were stopped and before the error propagates.

    :param context: the run's config, graph, emitters and options.
    :param error: the exception that ended the run.
    """


@hookspec
def featurizer_on_feature_error(error: FeatureComputationError) -> None:
    """Called for every feature error under the ``skip`` error policy of ``featurizer run``.

    :param error: names the feature, its definition and the event.
    """
