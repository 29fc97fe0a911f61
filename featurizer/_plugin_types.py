"""Values plugins return from ``featurizer_register_*`` hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from featurizer._emitter import DataSourceEventEmitter

__all__ = ["EmitterSpec", "ScalingStrategySpec", "SinkSpec", "TransportSpec"]

_name = attrs.validators.matches_re(r"^[a-z][a-z0-9_]*$")


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class EmitterSpec:
    """An emitter a plugin provides.

    :param name: registered name, used by ``--emitter NAME``.
    :param emitter_class: the :class:`~featurizer.DataSourceEventEmitter` subclass.
    :param data_sources: names of the data-source definitions it can serve.
    :param exchanges: exchanges it serves by default (matched case-insensitively); empty means
        it is only used when chosen explicitly with ``--emitter``.
    :param description: one line for ``featurizer plugins``.
    """

    name: str = attrs.field(validator=_name)
    emitter_class: type[DataSourceEventEmitter]
    data_sources: tuple[str, ...] = attrs.field(converter=_strings)
    exchanges: tuple[str, ...] = attrs.field(converter=_strings, default=())
    description: str = ""

    def serves(self, definition_name: str) -> bool:
        """Whether this emitter can produce events of the named data-source definition."""
        return definition_name in self.data_sources

    def is_default_for(self, definition_name: str, exchange: str) -> bool:
        """Whether this emitter is chosen by default for a data source on ``exchange``."""
        return self.serves(definition_name) and exchange.lower() in {
            e.lower() for e in self.exchanges
        }


@attrs.frozen(kw_only=True)
class SinkSpec:
    """An output sink a plugin provides.

    :param name: registered name, used by ``--format NAME``.
    :param suffixes: file suffixes that select it (``(".jsonl",)``).
    :param factory: ``factory(path_or_None, outputs) -> Sink``.
    :param description: one line for ``featurizer plugins``.
    """

    name: str = attrs.field(validator=_name)
    suffixes: tuple[str, ...] = attrs.field(converter=_strings)
    factory: Callable[..., Any]
    description: str = ""


@attrs.frozen(kw_only=True)
class TransportSpec:
    """A transport carrying events between workers.

    :param name: registered name, used by ``--transport NAME``.
    :param factory: builds the transport's endpoints (see the scale-out docs).
    :param description: one line for ``featurizer plugins``.
    """

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    description: str = ""


@attrs.frozen(kw_only=True)
class ScalingStrategySpec:
    """A scaling strategy: plans which worker computes which part of the DAG.

    :param name: registered name, used by ``--strategy NAME``.
    :param planner: ``planner(features, workers) -> plan``.
    :param description: one line for ``featurizer plugins``.
    """

    name: str = attrs.field(validator=_name)
    planner: Callable[..., Any]
    description: str = ""
