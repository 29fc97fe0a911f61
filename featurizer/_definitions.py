"""Definitions: what a data source emits and how a feature is computed from its dependencies.

Definitions are classes used through classmethods (never instantiated), so that a definition is
a name in a registry and two features built from it never share state: all per-feature state
lives in the streamz nodes returned by :meth:`FeatureDefinition.stream`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamz import Stream

from featurizer._errors import DefinitionError
from featurizer._events import Schema
from featurizer._params import Param

__all__ = [
    "DataDefinition",
    "DataSourceDefinition",
    "FeatureDefinition",
    "definition_name",
]


def definition_name(definition: type[DataDefinition]) -> str:
    """The stable name of a definition: its ``name`` attribute, else ``module:QualName``.

    :param definition: a definition class.
    :returns: the name used in configs, keys and registries.
    """
    own = definition.__dict__.get("name")
    if isinstance(own, str) and own:
        return own
    return f"{definition.__module__}:{definition.__qualname__}"


class DataDefinition:
    """Common base of data-source and feature definitions.

    Subclasses set ``name`` (the registered name used in configs), ``params`` (the declared
    parameters) and implement :meth:`event_schema`.
    """

    name: ClassVar[str] = ""
    params: ClassVar[Mapping[str, Param]] = {}
    description: ClassVar[str] = ""

    @classmethod
    def event_schema(cls) -> Schema:
        """The fields of the events this definition produces, besides the two timestamps.

        :returns: field name to Python type.
        """
        raise DefinitionError(f"{definition_name(cls)} does not declare event_schema()")

    @classmethod
    def is_data_source(cls) -> bool:
        """Whether this definition is a leaf of the DAG fed by an emitter."""
        return False


class DataSourceDefinition(DataDefinition):
    """A leaf of the feature DAG: a stream of events pushed by an emitter.

    Its params identify one stream (exchange and symbol by default); emitters declare which
    data-source definitions they can serve.
    """

    params: ClassVar[Mapping[str, Param]] = {
        "exchange": Param(kind="str", doc="exchange (or venue) name, e.g. 'synthetic', 'BINANCE'"),
        "symbol": Param(kind="str", doc="instrument symbol, e.g. 'BTC-USDT'"),
    }

    @classmethod
    def is_data_source(cls) -> bool:
        """Data sources are leaves: always ``True``."""
        return True


class FeatureDefinition(DataDefinition):
    """A computation over one or more upstream streams.

    Subclasses implement :meth:`dep_upstream_schema` (their dependencies by name and the
    default definition of each) and :meth:`stream` (the per-event logic, declared with streamz).
    """

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """The dependencies of this feature: dependency name to its default definition.

        :param dep_schema: an optional family of data sources to resolve the dependencies
            against (for definitions that support several source families); ``None`` for the
            default family.
        :returns: an ordered mapping; its order is the order of ``upstreams`` in :meth:`stream`.
        """
        raise DefinitionError(f"{definition_name(cls)} does not declare dep_upstream_schema()")

    @classmethod
    def stream(
        cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]
    ) -> Stream | tuple[Stream, Any]:
        """Declare the per-event logic.

        Build streamz operators on ``upstreams`` and return the output stream (optionally with
        the state object it keeps, for introspection). The stream must emit events (dicts with
        ``timestamp`` and ``receipt_timestamp``); a ``None`` element means "no output".

        Chains of ``map``, ``filter`` and ``accumulate`` over a single upstream are fused by the
        graph compiler into direct calls; anything else runs through streamz itself.

        Checkpointed runs (``docs/fault-tolerance.md``) snapshot a feature's state: the state
        of the streamz operators built here and the returned state object, which must hold
        everything the functions mutate between events. It is pickled and restored in place,
        unless it defines ``snapshot_state()`` and ``restore_state(snapshot)``
        (:class:`featurizer.checkpoint.Snapshotable`).

        :param upstreams: one streamz ``Stream`` per dependency name.
        :param params: this feature's resolved params.
        :returns: the output stream, or ``(stream, state)``.
        """
        raise DefinitionError(f"{definition_name(cls)} does not implement stream()")

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """Optionally, a columnar implementation of :meth:`stream` for offline runs.

        Backfills (:mod:`featurizer.batch`) call this for every node; a node that returns a
        :class:`featurizer.batch.BatchKernel` is computed a chunk of columns at a time, the
        others per event, transparently. The kernel must give the values :meth:`stream` gives,
        bit for bit, for any input and any chunking, and carry the same per-event state object
        (``kernel.state``) so that a backfill can continue live. Only features with a single
        dependency may have one.

        :param params: this feature's resolved params.
        :param state: a per-event state (as returned by :meth:`stream`) to continue from;
            ``None`` for a fresh one.
        :returns: the kernel, or ``None`` (the default) when the feature has none.
        """
        return None
