"""Building the plugin manager and the typed facade the core calls hooks through."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs
import importlib_metadata
import pluggy

from featurizer import hookspecs
from featurizer._definitions import (
    DataDefinition,
    DataSourceDefinition,
    FeatureDefinition,
    definition_name,
)
from featurizer._errors import PluginLoadError, RegistryError
from featurizer._plugin_types import EmitterSpec, ScalingStrategySpec, SinkSpec, TransportSpec

__all__ = [
    "AUTOLOAD_ENV",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "PluginInfo",
    "Plugins",
    "get_plugins",
    "make_plugin_manager",
    "reset_plugins",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "featurizer"
DISABLE_ENV = "FEATURIZER_DISABLE_PLUGINS"
"""Comma-separated entry-point names that are not loaded (e.g. ``ray,cryptofeed``)."""
AUTOLOAD_ENV = "FEATURIZER_DISABLE_PLUGIN_AUTOLOAD"
"""When set to a non-empty value, no entry point is loaded (only the core defaults)."""
PLUGINS_ENV = "FEATURIZER_PLUGINS"
"""Comma-separated modules registered as plugins without being installed (with ``PYTHONPATH``
pointing at their folder): how to try a plugin from its source tree."""

DEFAULT_PLUGINS = ("featurizer._default_plugin", "featurizer.scaling._default_plugin")


@attrs.frozen(kw_only=True)
class PluginInfo:
    """What ``featurizer plugins`` shows about one registered plugin.

    :param name: the plugin's registered name (entry-point name, or module for core defaults).
    :param distribution: the distribution that provided it (``featurizer`` for core defaults).
    :param version: that distribution's version.
    :param hooks: the hook names it implements, sorted.
    """

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


def _blocked_names(environ: Mapping[str, str]) -> set[str]:
    return {name.strip() for name in environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _load_entry_points(pm: pluggy.PluginManager, blocked: set[str]) -> dict[str, tuple[str, str]]:
    origins: dict[str, tuple[str, str]] = {}
    for entry_point in sorted(
        importlib_metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name
    ):
        dist = entry_point.dist
        dist_name = dist.metadata["Name"] if dist is not None else "<unknown>"
        version = dist.version if dist is not None else "<unknown>"
        if entry_point.name in blocked:
            pm.set_blocked(entry_point.name)
            logger.info("plugin %r disabled by %s", entry_point.name, DISABLE_ENV)
            continue
        if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
            pm.register(plugin, name=entry_point.name)
        except Exception as error:
            raise PluginLoadError(
                f'featurizer failed to load plugin "{dist_name}[{entry_point.name}]" '
                f"(entry point {entry_point.value!r}): {type(error).__name__}: {error}. "
                f"Fix or uninstall it, or disable it with {DISABLE_ENV}={entry_point.name}",
                distribution=dist_name,
                entry_point=entry_point.name,
            ) from error
        origins[entry_point.name] = (dist_name, version)
    return origins


def _load_modules(pm: pluggy.PluginManager, spec: str) -> dict[str, tuple[str, str]]:
    origins: dict[str, tuple[str, str]] = {}
    for module_name in (name.strip() for name in spec.split(",")):
        if not module_name or pm.get_plugin(module_name) is not None:
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise PluginLoadError(
                f"featurizer failed to load plugin module {module_name!r} named in "
                f"{PLUGINS_ENV}: {type(error).__name__}: {error} (is its folder on PYTHONPATH?)",
                distribution=f"<{PLUGINS_ENV}>",
                entry_point=module_name,
            ) from error
        pm.register(module, name=module_name)
        origins[module_name] = (f"<{PLUGINS_ENV}, not installed>", "")
    return origins


def _check_undecorated(
    pm: pluggy.PluginManager, plugin: Any, origins: Mapping[str, tuple[str, str]]
) -> None:
    """A function named like a hook but not marked ``@hookimpl`` would be ignored: refuse it."""
    name = pm.get_name(plugin) or repr(plugin)
    for attribute in dir(plugin):
        if not attribute.startswith("featurizer_") or not hasattr(hookspecs, attribute):
            continue
        function = getattr(plugin, attribute, None)
        if callable(function) and pm.parse_hookimpl_opts(plugin, attribute) is None:
            dist_name = origins.get(name, ("<registered in code>", ""))[0]
            raise PluginLoadError(
                f'featurizer failed to load plugin "{dist_name}[{name}]": {attribute}() is not '
                f"decorated with @featurizer.hookimpl, so it would never be called; add the "
                f"decorator",
                distribution=dist_name,
                entry_point=name,
            )


def make_plugin_manager(
    *,
    environ: Mapping[str, str] | None = None,
    extra_plugins: Iterable[Any] = (),
) -> pluggy.PluginManager:
    """Build a plugin manager: entry points, then ``extra_plugins``, then the core defaults.

    Honours :data:`DISABLE_ENV` (a block list of entry-point names) and :data:`AUTOLOAD_ENV`,
    then calls ``check_pending()`` so that a misspelled hook name is an error.

    :param environ: the environment to read the switches from (``os.environ`` by default).
    :param extra_plugins: plugin objects registered after entry points (tests use this).
    :returns: the manager; distribution origins are in ``pm.featurizer_origins``.
    :raises PluginLoadError: naming the distribution and entry point of a plugin that fails.
    """
    env = os.environ if environ is None else environ
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    origins: dict[str, tuple[str, str]] = {}
    if not env.get(AUTOLOAD_ENV):
        origins = _load_entry_points(pm, _blocked_names(env))
    origins.update(_load_modules(pm, env.get(PLUGINS_ENV, "")))
    for plugin in extra_plugins:
        pm.register(plugin)
    for _, plugin in pm.list_name_plugin():
        if plugin is not None:
            _check_undecorated(pm, plugin, origins)
    core_version = importlib_metadata.version("featurizer")
    for module_name in DEFAULT_PLUGINS:
        module = __import__(module_name, fromlist=["_"])
        pm.register(module, name=module_name)
        origins[module_name] = ("featurizer", core_version)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        name = pm.get_name(error.plugin) or repr(error.plugin)
        dist_name = origins.get(name, ("<registered in code>", ""))[0]
        raise PluginLoadError(
            f'featurizer failed to load plugin "{dist_name}[{name}]": {error}. Known hooks: '
            f"{', '.join(sorted(h for h in dir(hookspecs) if h.startswith('featurizer_')))}",
            distribution=dist_name,
            entry_point=name,
        ) from error
    pm.featurizer_origins = origins  # type: ignore[attr-defined]
    return pm


_T = TypeVar("_T")


def _by_name(kind: str, contributions: list[tuple[str, list[_T]]], name_of: Any) -> dict[str, _T]:
    found: dict[str, _T] = {}
    owner: dict[str, str] = {}
    for plugin_name, items in contributions:
        for item in items or ():
            name = name_of(item)
            if name in found:
                raise RegistryError(
                    f"{kind} {name!r} is registered by both plugin {owner[name]!r} and plugin "
                    f"{plugin_name!r}; disable one with {DISABLE_ENV}"
                )
            found[name] = item
            owner[name] = plugin_name
    return found


class Plugins:
    """The typed facade through which the core calls hooks (never ``pm.hook.*`` elsewhere).

    :param pm: a manager from :func:`make_plugin_manager`.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._cache: dict[str, Any] = {}
        self._origins: dict[str, tuple[str, str]] = getattr(pm, "featurizer_origins", {})

    def _collect(self, hook_name: str) -> list[tuple[str, list[Any]]]:
        caller = getattr(self.pm.hook, hook_name)
        results = []
        for impl in reversed(caller.get_hookimpls()):
            try:
                value = impl.function()
            except Exception as error:
                raise PluginLoadError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                    f"{type(error).__name__}: {error}",
                    distribution=self._origins.get(impl.plugin_name, ("<unknown>", ""))[0],
                    entry_point=impl.plugin_name,
                ) from error
            if value:
                results.append((impl.plugin_name, list(value)))
        return results

    def _registry(self, hook_name: str, kind: str, name_of: Any) -> dict[str, Any]:
        if hook_name not in self._cache:
            self._cache[hook_name] = _by_name(kind, self._collect(hook_name), name_of)
        return dict(self._cache[hook_name])

    def feature_definitions(self) -> dict[str, type[FeatureDefinition]]:
        """Registered feature definitions by name."""
        found = self._registry(
            "featurizer_register_feature_definitions", "feature definition", definition_name
        )
        _check_definitions(found, FeatureDefinition)
        return found

    def data_source_definitions(self) -> dict[str, type[DataSourceDefinition]]:
        """Registered data-source definitions by name."""
        found = self._registry(
            "featurizer_register_data_source_definitions", "data source definition", definition_name
        )
        _check_definitions(found, DataSourceDefinition)
        return found

    def definitions(self) -> dict[str, type[DataDefinition]]:
        """Every registered definition (data sources and features) by name."""
        sources: dict[str, type[DataDefinition]] = dict(self.data_source_definitions())
        features = self.feature_definitions()
        clash = sorted(set(sources) & set(features))
        if clash:
            raise RegistryError(
                f"name {clash[0]!r} is registered both as a data source and as a feature definition"
            )
        return {**sources, **features}

    def emitters(self) -> dict[str, EmitterSpec]:
        """Registered emitters by name, in registration order."""
        return self._registry("featurizer_register_emitters", "emitter", lambda spec: spec.name)

    def sinks(self) -> dict[str, SinkSpec]:
        """Registered output sinks by name."""
        return self._registry("featurizer_register_sinks", "sink", lambda spec: spec.name)

    def transports(self) -> dict[str, TransportSpec]:
        """Registered transports by name."""
        return self._registry("featurizer_register_transports", "transport", lambda spec: spec.name)

    def scaling_strategies(self) -> dict[str, ScalingStrategySpec]:
        """Registered scaling strategies by name."""
        return self._registry(
            "featurizer_register_scaling_strategies", "scaling strategy", lambda spec: spec.name
        )

    def scalers(self) -> dict[str, Any]:
        """Registered scalers (:class:`~featurizer.scaling.ScalerSpec`) by name."""
        return self._registry("featurizer_register_scalers", "scaler", lambda spec: spec.name)

    def make_emitter(self, name: str, options: dict[str, Any]) -> Any:
        """Ask plugins to build emitter ``name``; ``None`` when none overrides the default."""
        return self.pm.hook.featurizer_make_emitter(name=name, options=options)

    def before_run(self, context: Any) -> None:
        """Fire ``featurizer_before_run``."""
        self.pm.hook.featurizer_before_run(context=context)

    def after_run(self, context: Any, summary: Any) -> None:
        """Fire ``featurizer_after_run``."""
        self.pm.hook.featurizer_after_run(context=context, summary=summary)

    def on_run_error(self, context: Any, error: BaseException) -> None:
        """Fire ``featurizer_on_run_error``."""
        self.pm.hook.featurizer_on_run_error(context=context, error=error)

    def on_feature_error(self, error: Any) -> None:
        """Fire ``featurizer_on_feature_error``."""
        self.pm.hook.featurizer_on_feature_error(error=error)

    def describe(self) -> list[PluginInfo]:
        """One :class:`PluginInfo` per registered plugin, sorted by name."""
        origins: dict[str, tuple[str, str]] = getattr(self.pm, "featurizer_origins", {})
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist, version = origins.get(name, ("<registered in code>", ""))
            hooks = tuple(sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ()))
            infos.append(PluginInfo(name=name, distribution=dist, version=version, hooks=hooks))
        return sorted(infos, key=lambda info: info.name)


def _check_definitions(found: Mapping[str, type[DataDefinition]], base: type) -> None:
    for name, definition in found.items():
        if not (isinstance(definition, type) and issubclass(definition, base)):
            raise RegistryError(
                f"{name!r} was registered as a {base.__name__} but is {definition!r}"
            )


_current: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide :class:`Plugins`, built on first use from the installed entry points."""
    global _current
    if _current is None:
        _current = Plugins(make_plugin_manager())
    return _current


def reset_plugins(plugins: Plugins | None = None) -> None:
    """Replace (or forget, with ``None``) the process-wide plugins; tests use this."""
    global _current
    _current = plugins
