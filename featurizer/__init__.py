"""Featurizer: define market-data features once, run them live, offline and scaled out."""

from __future__ import annotations

from featurizer._config import (
    FeatureConfig,
    FeaturizerConfig,
    construct_features_from_configs,
    load_config,
)
from featurizer._definitions import (
    DataDefinition,
    DataSourceDefinition,
    FeatureDefinition,
    definition_name,
)
from featurizer._emitter import (
    DataSourceEventEmitter,
    EmitterOption,
    EventCallback,
    GeneratorEmitter,
)
from featurizer._errors import (
    ConfigError,
    DefinitionError,
    EmitterError,
    EventValidationError,
    FeatureComputationError,
    FeaturizerError,
    FeaturizerWarning,
    PluginLoadError,
    RegistryError,
)
from featurizer._events import (
    Event,
    GroupedNamedDataEvent,
    NamedDataEvent,
    Schema,
    validate_event,
)
from featurizer._feature import Feature
from featurizer._graph import ERROR_POLICIES, FeatureStreamGraph
from featurizer._params import Param, parse_duration, parse_pace, parse_timestamp
from featurizer._plugin_types import EmitterSpec, ScalingStrategySpec, SinkSpec, TransportSpec
from featurizer._plugins import (
    PluginInfo,
    Plugins,
    get_plugins,
    make_plugin_manager,
    reset_plugins,
)
from featurizer._runner import RunContext, RunOptions, RunSummary, run
from featurizer._sinks import flatten_grouped
from featurizer.hookspecs import hookimpl
from featurizer.scaling._strategies import ScalingStrategy

__all__ = [
    "ERROR_POLICIES",
    "ConfigError",
    "DataDefinition",
    "DataSourceDefinition",
    "DataSourceEventEmitter",
    "DefinitionError",
    "EmitterError",
    "EmitterOption",
    "EmitterSpec",
    "Event",
    "EventCallback",
    "GeneratorEmitter",
    "EventValidationError",
    "Feature",
    "FeatureComputationError",
    "FeatureConfig",
    "FeatureDefinition",
    "FeatureStreamGraph",
    "FeaturizerConfig",
    "FeaturizerError",
    "FeaturizerWarning",
    "GroupedNamedDataEvent",
    "NamedDataEvent",
    "Param",
    "PluginInfo",
    "PluginLoadError",
    "Plugins",
    "RegistryError",
    "RunContext",
    "RunOptions",
    "RunSummary",
    "ScalingStrategy",
    "ScalingStrategySpec",
    "Schema",
    "SinkSpec",
    "TransportSpec",
    "construct_features_from_configs",
    "definition_name",
    "flatten_grouped",
    "get_plugins",
    "hookimpl",
    "load_config",
    "make_plugin_manager",
    "parse_duration",
    "parse_pace",
    "parse_timestamp",
    "reset_plugins",
    "run",
    "validate_event",
]
