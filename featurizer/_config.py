"""FeaturizerConfig: the YAML file users write, and turning it into features."""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from featurizer._alias import alias_feature
from featurizer._definitions import DataDefinition, FeatureDefinition, definition_name
from featurizer._errors import ConfigError
from featurizer._feature import Feature
from featurizer._params import parse_duration, resolve_params
from featurizer._plugins import Plugins, get_plugins
from featurizer.checkpoint._settings import CheckpointSettings
from featurizer.storage._settings import StorageSettings

__all__ = ["FeatureConfig", "FeaturizerConfig", "construct_features_from_configs", "load_config"]

_TOP_LEVEL = (
    "feature_configs",
    "start_date",
    "end_date",
    "features_to_store",
    "storage",
    "warmup",
    "checkpoint",
)
_ENTRY_FIELDS = ("feature_definition", "params", "name", "deps")
_RESERVED_PARAMS = ("data_source", "feature")


@attrs.frozen(kw_only=True)
class FeatureConfig:
    """One entry of ``feature_configs``.

    :param feature_definition: a registered definition name (``mid_price``) or
        ``package.module:Class``.
    :param params: the feature's own params, plus ``data_source`` (params of every data-source
        leaf below it) and ``feature`` (params of each dependency, by dependency name, nested the
        same way).
    :param name: a readable name for the output (unique in the config).
    :param deps: dependency name to the ``name`` of another entry whose feature to use instead of
        the default dependency.
    :param index: the entry's position in the file (for error messages).
    :param dep_fields: dependency name to a field mapping (expected name to the name the other
        entry provides) for a ``deps`` entry whose fields are named otherwise
        (``deps: {mid: {entry: micro, fields: {mid_price: microprice}}}``).
    """

    feature_definition: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    name: str | None = None
    deps: Mapping[str, str] = attrs.field(factory=dict)
    index: int = 0
    dep_fields: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)

    @property
    def label(self) -> str:
        """How errors refer to this entry: ``0 (name 'mid_btc')`` or ``0``."""
        return f"{self.index} (name {self.name!r})" if self.name else str(self.index)


def _parse_date(value: Any, path: str | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                f"expected an ISO date or datetime such as '2024-01-31' or "
                f"'2024-01-31T12:00:00Z', received {value!r}",
                path=path,
                field=field,
            ) from None
    else:
        raise ConfigError(
            f"expected an ISO date or datetime, received {type(value).__name__} {value!r}",
            path=path,
            field=field,
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@attrs.frozen(kw_only=True)
class FeaturizerConfig:
    """A whole config: feature entries and the offline date range.

    :param feature_configs: the entries, in file order; each becomes an output feature.
    :param start_date: start of the offline range (UTC), if any.
    :param end_date: end of the offline range (UTC), if any.
    :param path: the file it was loaded from, for error messages.
    :param features_to_store: what ``featurizer record`` stores: entry names, node names,
        feature keys (or unique prefixes), ``data_sources`` or ``outputs``; ``None`` stores
        every data source and every output (see ``docs/storage.md``).
    :param storage: the storage root and how blocks are cut (``docs/storage.md``).
    :param warmup: seconds of data an offline replay reads before ``start_date`` to warm
        windowed features up; ``None`` derives it from the features' duration params.
    :param checkpoint: where and how often ``featurizer run`` checkpoints
        (``docs/fault-tolerance.md``); ``--checkpoint`` wins over it.
    """

    feature_configs: tuple[FeatureConfig, ...]
    start_date: dt.datetime | None = None
    end_date: dt.datetime | None = None
    path: str | None = None
    features_to_store: tuple[str, ...] | None = None
    storage: StorageSettings | None = None
    warmup: float | None = None
    checkpoint: CheckpointSettings | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> FeaturizerConfig:
        """Load and check the shape of a YAML config file.

        :param path: the file.
        :raises ConfigError: naming the file and the field.
        """
        text_path = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"cannot read config: {error.strerror}", path=text_path) from error
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"cannot read config: not UTF-8 text (byte {error.start}: "
                f"{error.object[error.start : error.start + 1]!r}); save the file as UTF-8",
                path=text_path,
            ) from error
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"invalid YAML: {error}", path=text_path) from error
        return cls.from_dict(data, path=text_path)

    @classmethod
    def from_dict(cls, data: Any, *, path: str | None = None) -> FeaturizerConfig:
        """Build a config from plain data (as parsed from YAML).

        :param data: a mapping with ``feature_configs`` and optional dates.
        :param path: where it came from, for error messages.
        :raises ConfigError: naming the file, entry and field.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"expected a mapping with 'feature_configs', received {type(data).__name__}",
                path=path,
            )
        unknown = sorted(set(data) - set(_TOP_LEVEL))
        if unknown:
            raise ConfigError(
                f"unknown top-level field {unknown[0]!r} (valid: {', '.join(_TOP_LEVEL)})",
                path=path,
                field=str(unknown[0]),
            )
        raw_entries = data.get("feature_configs")
        if not isinstance(raw_entries, list) or not raw_entries:
            raise ConfigError(
                "expected a non-empty list of feature entries, each with 'feature_definition' "
                f"and 'params'; received {raw_entries!r}",
                path=path,
                field="feature_configs",
            )
        entries = tuple(_parse_entry(raw, i, path) for i, raw in enumerate(raw_entries))
        names = [entry.name for entry in entries if entry.name]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(
                f"name {duplicates[0]!r} is used by more than one entry; names must be unique",
                path=path,
                field="name",
            )
        start = _parse_date(data.get("start_date"), path, "start_date")
        end = _parse_date(data.get("end_date"), path, "end_date")
        if start is not None and end is not None and not start < end:
            raise ConfigError(
                f"start_date {start.isoformat()} must be before end_date {end.isoformat()}",
                path=path,
                field="end_date",
            )
        return cls(
            feature_configs=entries,
            start_date=start,
            end_date=end,
            path=path,
            features_to_store=_parse_features_to_store(data.get("features_to_store"), path),
            storage=(
                StorageSettings.from_config_value(data["storage"], path=path)
                if data.get("storage") is not None
                else None
            ),
            warmup=_parse_warmup(data.get("warmup"), path),
            checkpoint=(
                CheckpointSettings.from_config_value(data["checkpoint"], path=path)
                if data.get("checkpoint") is not None
                else None
            ),
        )


def _parse_features_to_store(value: Any, path: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(
            "expected a non-empty list of entry names, node names, feature keys, "
            f"'data_sources' or 'outputs'; received {value!r}",
            path=path,
            field="features_to_store",
        )
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise ConfigError(
                f"expected an entry name, a node name, a feature key, 'data_sources' or "
                f"'outputs'; received {item!r}",
                path=path,
                field=f"features_to_store[{i}]",
            )
    return tuple(value)


def _parse_warmup(value: Any, path: str | None) -> float | None:
    if value is None:
        return None
    if value == 0 and not isinstance(value, bool):
        return 0.0
    try:
        return parse_duration(value)
    except ValueError as error:
        raise ConfigError(f"{error} (or 0 for none)", path=path, field="warmup") from None


def _parse_entry(raw: Any, index: int, path: str | None) -> FeatureConfig:
    label = str(index)
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"expected a mapping with 'feature_definition' and 'params', received {raw!r}",
            path=path,
            entry=label,
        )
    if isinstance(raw.get("name"), str):
        label = f"{index} (name {raw['name']!r})"
    unknown = sorted(set(raw) - set(_ENTRY_FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown field (valid: {', '.join(_ENTRY_FIELDS)})",
            path=path,
            entry=label,
            field=str(unknown[0]),
        )
    definition = raw.get("feature_definition")
    if not isinstance(definition, str) or not definition:
        raise ConfigError(
            f"expected a registered definition name (e.g. 'mid_price') or 'package.module:Class', "
            f"received {definition!r}",
            path=path,
            entry=label,
            field="feature_definition",
        )
    params = raw.get("params", {}) or {}
    if not isinstance(params, Mapping):
        raise ConfigError(
            f"expected a mapping, received {params!r}", path=path, entry=label, field="params"
        )
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError(
            f"expected a non-empty string, received {name!r}", path=path, entry=label, field="name"
        )
    deps, dep_fields = _parse_deps(raw.get("deps", {}) or {}, path, label)
    return FeatureConfig(
        feature_definition=definition,
        params=dict(params),
        name=name,
        deps=deps,
        index=index,
        dep_fields=dep_fields,
    )


def _is_field_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    )


def _parse_deps(
    deps: Any, path: str | None, label: str
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """``deps``: dependency name to an entry name, or to ``{entry: NAME, fields: {...}}``."""
    expected = (
        "a mapping of dependency name to the name of another entry, or to {entry: NAME, "
        "fields: {EXPECTED_FIELD: ITS_FIELD}}"
    )
    if not isinstance(deps, Mapping) or not all(isinstance(k, str) for k in deps):
        raise ConfigError(
            f"expected {expected}, received {deps!r}", path=path, entry=label, field="deps"
        )
    names: dict[str, str] = {}
    fields: dict[str, dict[str, str]] = {}
    for dep, value in deps.items():
        if isinstance(value, str):
            names[dep] = value
            continue
        ok = (
            isinstance(value, Mapping)
            and set(value) <= {"entry", "fields"}
            and isinstance(value.get("entry"), str)
            and _is_field_map(value.get("fields", {}))
        )
        if not ok:
            raise ConfigError(
                f"expected {expected}, received {value!r}",
                path=path,
                entry=label,
                field=f"deps.{dep}",
            )
        names[dep] = value["entry"]
        if value.get("fields"):
            fields[dep] = dict(value["fields"])
    return names, fields


def load_config(path: str | Path) -> FeaturizerConfig:
    """Load a YAML config file (same as :meth:`FeaturizerConfig.from_yaml`)."""
    return FeaturizerConfig.from_yaml(path)


class _Builder:
    def __init__(self, config: FeaturizerConfig, plugins: Plugins) -> None:
        self.config = config
        self.registry = plugins.definitions()
        self.by_name = {entry.name: entry for entry in config.feature_configs if entry.name}
        self.built: dict[int, Feature] = {}
        self.building: list[int] = []
        self.interned: dict[str, Feature] = {}

    def error(self, entry: FeatureConfig, field: str, message: str) -> ConfigError:
        return ConfigError(message, path=self.config.path, entry=entry.label, field=field)

    def resolve_definition(self, entry: FeatureConfig) -> type[DataDefinition]:
        reference = entry.feature_definition
        if reference in self.registry:
            return self.registry[reference]
        if ":" not in reference:
            raise self.error(
                entry,
                "feature_definition",
                f"unknown definition {reference!r}; registered definitions: "
                f"{', '.join(sorted(self.registry)) or 'none (is a plugin disabled?)'} "
                f"(or write 'package.module:Class')",
            )
        module_name, _, attr = reference.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as error:
            raise self.error(
                entry, "feature_definition", f"cannot import {reference!r}: {error}"
            ) from error
        if not (isinstance(target, type) and issubclass(target, DataDefinition)):
            raise self.error(
                entry,
                "feature_definition",
                f"{reference!r} is {target!r}, expected a FeatureDefinition or "
                f"DataSourceDefinition subclass",
            )
        return target

    def intern(self, feature: Feature) -> Feature:
        return self.interned.setdefault(feature.key, feature)

    def entry_feature(self, entry: FeatureConfig) -> Feature:
        if entry.index in self.built:
            return self.built[entry.index]
        if entry.index in self.building:
            cycle = [self.config.feature_configs[i].label for i in self.building]
            raise self.error(
                entry, "deps", f"dependency cycle through entries {' -> '.join(cycle)}"
            )
        self.building.append(entry.index)
        definition = self.resolve_definition(entry)
        feature = self.build(entry, definition, entry.params, None, "params", dict(entry.deps))
        self.building.pop()
        if entry.name:
            feature = feature.renamed(entry.name)
            self.interned[feature.key] = feature
        self.built[entry.index] = feature
        return feature

    def build(
        self,
        entry: FeatureConfig,
        definition: type[DataDefinition],
        raw: Mapping[str, Any],
        inherited_source: Mapping[str, Any] | None,
        field: str,
        deps: dict[str, str],
    ) -> Feature:
        if not isinstance(raw, Mapping):
            raise self.error(entry, field, f"expected a mapping of params, received {raw!r}")
        source_params = raw.get("data_source", inherited_source)
        if source_params is not None and not isinstance(source_params, Mapping):
            raise self.error(
                entry,
                f"{field}.data_source",
                f"expected a mapping such as {{exchange: synthetic, symbol: BTC-USDT}}, received "
                f"{source_params!r}; to give dependencies different sources, set "
                f"{field}.feature.<dependency>.data_source",
            )
        if definition.is_data_source():
            own = dict(source_params or {})
            own.update({k: v for k, v in raw.items() if k not in _RESERVED_PARAMS})
            if "feature" in raw:
                raise self.error(
                    entry, f"{field}.feature", "a data source has no dependencies to configure"
                )
            return self.intern(
                Feature.create(
                    definition, self.params(entry, definition, own, f"{field}.data_source")
                )
            )
        assert issubclass(definition, FeatureDefinition)
        own = {k: v for k, v in raw.items() if k not in _RESERVED_PARAMS}
        params = self.params(entry, definition, own, field)
        upstream = dict(definition.dep_upstream_schema())
        dep_params = raw.get("feature", {}) or {}
        if not isinstance(dep_params, Mapping):
            raise self.error(
                entry,
                f"{field}.feature",
                f"expected a mapping keyed by dependency name ({', '.join(upstream)})",
            )
        for dep in sorted(set(dep_params) & set(deps)):
            raise self.error(
                entry,
                f"deps.{dep}",
                f"dependency {dep!r} is given both by deps.{dep} and by {field}.feature.{dep}; "
                f"keep one (deps reuses another entry's feature, params configure a new one)",
            )
        for dep in list(dep_params) + list(deps):
            if dep not in upstream:
                where = f"{field}.feature.{dep}" if dep in dep_params else f"deps.{dep}"
                raise self.error(
                    entry,
                    where,
                    f"{definition_name(definition)!r} has no dependency {dep!r} "
                    f"(its dependencies: {', '.join(upstream) or 'none'})",
                )
        children: dict[str, Feature] = {}
        for dep, dep_definition in upstream.items():
            if dep in deps:
                children[dep] = self.reference(
                    entry, dep, deps.pop(dep), dep_definition, entry.dep_fields.get(dep)
                )
                continue
            child_raw = dep_params.get(dep, {}) or {}
            children[dep] = self.build(
                entry, dep_definition, child_raw, source_params, f"{field}.feature.{dep}", {}
            )
        return self.intern(Feature.create(definition, params, children))

    def reference(
        self,
        entry: FeatureConfig,
        dep: str,
        target_name: str,
        expected: type[DataDefinition],
        fields: Mapping[str, str] | None = None,
    ) -> Feature:
        target = self.by_name.get(target_name)
        if target is None:
            raise self.error(
                entry,
                f"deps.{dep}",
                f"no entry is named {target_name!r} (named entries: "
                f"{', '.join(sorted(self.by_name)) or 'none'})",
            )
        feature = self.entry_feature(target)
        if fields:
            try:
                feature = alias_feature(feature, fields)
            except KeyError as error:
                raise self.error(
                    entry,
                    f"deps.{dep}.fields",
                    f"entry {target_name!r} ({feature.definition_name}) has no field "
                    f"{error.args[0]!r} (its fields: "
                    f"{', '.join(feature.definition.event_schema()) or 'none'})",
                ) from None
        provided = feature.definition.event_schema()
        for field_name, field_type in expected.event_schema().items():
            if provided.get(field_name) is not field_type:
                raise self.error(
                    entry,
                    f"deps.{dep}",
                    f"entry {target_name!r} ({feature.definition_name}) does not provide field "
                    f"{field_name!r} of type {field_type.__name__} that dependency {dep!r} expects "
                    f"(its fields: {', '.join(provided) or 'none'})",
                )
        return feature

    def params(
        self,
        entry: FeatureConfig,
        definition: type[DataDefinition],
        given: Mapping[str, Any],
        field: str,
    ) -> dict[str, Any]:
        try:
            return resolve_params(definition.params, given)
        except KeyError as error:
            name, valid = error.args
            raise self.error(
                entry,
                f"{field}.{name}",
                f"{definition_name(definition)!r} has no parameter {name!r} "
                f"(valid: {', '.join(valid) or 'none'})",
            ) from None
        except ValueError as error:
            name, reason = error.args
            raise self.error(
                entry, f"{field}.{name}", f"{definition_name(definition)!r}: {name} {reason}"
            ) from None


def construct_features_from_configs(
    config: FeaturizerConfig, plugins: Plugins | None = None
) -> list[Feature]:
    """Build the output features of a config, one per entry, sharing equal sub-features.

    :param config: the config.
    :param plugins: the plugins whose definitions names resolve against (installed ones by
        default).
    :returns: the features in entry order; equal sub-features are the same object.
    :raises ConfigError: naming the file, the entry and the field.
    """
    builder = _Builder(config, plugins or get_plugins())
    features = [builder.entry_feature(entry) for entry in config.feature_configs]
    first_entry: dict[Feature, FeatureConfig] = {}
    for entry, feature in zip(config.feature_configs, features, strict=True):
        earlier = first_entry.setdefault(feature, entry)
        if earlier is not entry:
            raise ConfigError(
                f"defines the same feature as entry {earlier.label} (definition "
                f"{feature.definition_name!r}, same params and sources, key {feature.short_key}); "
                f"remove one of them",
                path=config.path,
                entry=entry.label,
            )
    return features
