"""Continuing live from a backfill: carried kernel states copied into a live graph."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from featurizer._errors import FeaturizerError
from featurizer._feature import Feature
from featurizer._graph import FeatureStreamGraph

__all__ = ["restore_states"]


def _fields(state: Any) -> list[str]:
    slots = [s for cls in type(state).__mro__ for s in getattr(cls, "__slots__", ())]
    return slots or list(vars(state))


def restore_states(graph: FeatureStreamGraph, states: Mapping[Feature, Any]) -> list[Feature]:
    """Set the state objects of ``graph``'s nodes to copies of ``states``.

    After a backfill (:meth:`featurizer.batch.Backfill.states`), a live graph whose nodes take
    these states continues from where the backfill stopped, without a discontinuity: every
    window holds what it would hold had the graph processed the backfilled events itself. The
    combined output starts again once every output has produced an event.

    :param graph: the live graph (built from the same features).
    :param states: state per feature; ``None`` values (stateless features) are skipped.
    :returns: the features whose state was restored.
    :raises FeaturizerError: a feature is not in the graph, keeps no state there, or keeps a
        state of another class.
    """
    restored = []
    for feature, state in states.items():
        if state is None:
            continue
        target = graph.get_state(feature)
        if type(target) is not type(state):
            raise FeaturizerError(
                f"feature {feature.name!r}: the graph keeps a state of type "
                f"{type(target).__name__}, the backfill carried a {type(state).__name__}"
            )
        for name in _fields(state):
            setattr(target, name, copy.deepcopy(getattr(state, name)))
        restored.append(feature)
    return restored
