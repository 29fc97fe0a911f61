"""Field aliasing: use a feature as a dependency that expects other field names.

A config entry may map a dependency's expected fields to the fields another entry provides
(``deps: {mid: {entry: micro, fields: {mid_price: microprice}}}``): the dependency is then an
alias node that renames those fields of each event of ``micro`` (other fields pass through).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamz import Stream

from featurizer._definitions import DataDefinition, FeatureDefinition
from featurizer._events import Event, Schema
from featurizer._feature import Feature
from featurizer._params import Param

__all__ = ["ALIAS_DEFINITION_NAME", "alias_feature"]

ALIAS_DEFINITION_NAME = "field_alias"


def _spec(mapping: Mapping[str, str]) -> str:
    return ",".join(f"{target}={source}" for target, source in sorted(mapping.items()))


_DEFINITIONS: dict[tuple[type[DataDefinition], str], type[FeatureDefinition]] = {}


def _alias_definition(upstream: type[DataDefinition], spec: str) -> type[FeatureDefinition]:
    """One alias definition per upstream definition and mapping (equal ones are shared)."""
    known = _DEFINITIONS.get((upstream, spec))
    if known is None:
        known = _DEFINITIONS[(upstream, spec)] = _make_alias_definition(upstream, spec)
    return known


def _make_alias_definition(upstream: type[DataDefinition], spec: str) -> type[FeatureDefinition]:
    renames = dict(pair.split("=", 1) for pair in spec.split(","))
    sources = set(renames.values())
    provided = upstream.event_schema()
    schema = {
        **{name: kind for name, kind in provided.items() if name not in sources},
        **{target: provided[source] for target, source in renames.items()},
    }

    class FieldAlias(FeatureDefinition):
        """Renames fields of its upstream's events (``target=source`` pairs)."""

        name = ALIAS_DEFINITION_NAME
        description = "renames fields of a feature for a dependency expecting other names"
        params: ClassVar[Mapping[str, Param]] = {
            "fields": Param(kind="str", default="", doc="target=source pairs, comma-separated")
        }

        @classmethod
        def event_schema(cls) -> Schema:
            return dict(schema)

        @classmethod
        def dep_upstream_schema(
            cls, dep_schema: str | None = None
        ) -> Mapping[str, type[DataDefinition]]:
            return {"source": upstream}

        @classmethod
        def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
            pairs = tuple(renames.items())
            dropped = sources - set(renames)

            def rename(event: Event) -> Event:
                out = {k: v for k, v in event.items() if k not in dropped}
                for target, source in pairs:
                    out[target] = event[source]
                return out

            return upstreams["source"].map(rename)

    return FieldAlias


def alias_feature(feature: Feature, mapping: Mapping[str, str]) -> Feature:
    """A feature emitting ``feature``'s events with ``mapping``'s fields renamed.

    :param feature: the upstream feature.
    :param mapping: expected field name to the name ``feature`` provides.
    :raises KeyError: with the first source field ``feature`` does not provide.
    """
    provided = feature.definition.event_schema()
    for source in mapping.values():
        if source not in provided:
            raise KeyError(source)
    spec = _spec(mapping)
    definition = _alias_definition(feature.definition, spec)
    return Feature.create(
        definition,
        {"fields": spec},
        {"source": feature},
        name=f"{feature.name}[{spec}]",
    )
