"""The exception and warning hierarchy: one root, small subclasses carrying what failed."""

from __future__ import annotations

from typing import Any


class FeaturizerError(Exception):
    """Root of every error raised by featurizer."""


class FeaturizerWarning(UserWarning):
    """Root of every warning issued by featurizer."""


class ConfigError(FeaturizerError):
    """A configuration is invalid.

    The message names the file, the feature entry and the field, says what was expected and
    lists the valid choices.

    :param message: what is wrong and how to fix it.
    :param path: the configuration file, if the config came from one.
    :param entry: the feature entry (its ``name`` or its index) the error is about.
    :param field: the dotted field inside the entry.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        entry: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.entry = entry
        self.field = field
        self.reason = message
        where = []
        if path is not None:
            where.append(f"{path}")
        if entry is not None:
            where.append(f"feature_configs[{entry}]")
        if field is not None:
            where.append(field)
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class DefinitionError(FeaturizerError):
    """A definition class is malformed (bad params declaration, missing schema, ...)."""


class PluginLoadError(FeaturizerError):
    """A plugin could not be imported or registered.

    :param distribution: the distribution that declared the entry point.
    :param entry_point: the entry point's name.
    """

    def __init__(self, message: str, *, distribution: str, entry_point: str) -> None:
        self.distribution = distribution
        self.entry_point = entry_point
        super().__init__(message)


class RegistryError(FeaturizerError):
    """Two plugins registered the same name, or a name is not registered."""


class EventValidationError(FeaturizerError):
    """An event does not match its definition's schema (raised at the boundaries only).

    :param event: the offending event.
    """

    def __init__(self, message: str, *, event: Any) -> None:
        self.event = event
        super().__init__(message)


class FeatureComputationError(FeaturizerError):
    """A feature raised while processing an event.

    :param feature: the feature (graph node) whose code raised.
    :param event: the input event the feature was processing.
    """

    def __init__(self, feature: Any, event: Any, cause: BaseException) -> None:
        self.feature = feature
        self.event = event
        self.cause = cause
        super().__init__(
            f"feature {feature.name!r} (definition {feature.definition_name!r}, key "
            f"{feature.short_key}) raised {type(cause).__name__}: {cause} while processing "
            f"event {event!r}"
        )


class EmitterError(FeaturizerError):
    """An emitter cannot serve the data sources it was given, or failed while running."""
